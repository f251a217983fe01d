"""Several processes adding versions of one dataset at once get distinct, complete versions."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shipyard.store import open_backend

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_four_writers_number_versions_without_clashes(tmp_path: Path, store_url: str) -> None:
    home = tmp_path / ".shipyard"
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from shipyard import data
        worker = sys.argv[1]
        for i in range(5):
            path = Path(sys.argv[2]) / f"w{worker}-{i}.txt"
            path.write_text(f"content {worker} {i}")
            print(data.add(path, "shared", pointer=False).version.digest, flush=True)
    """)
    env = dict(
        os.environ,
        SHIPYARD_HOME=str(home),
        SHIPYARD_STORE_URL=store_url,
        PYTHONPATH=str(ROOT / "src"),
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(w), str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    digests = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, err
            digests += out.split()
    finally:  # a failed writer must not leave the others running into the next test
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    backend = open_backend(store_url)
    try:
        versions = backend.list_dataset_versions("shared")
    finally:
        backend.close()
    assert [v.version for v in versions] == list(range(1, 21))
    assert sorted(v.digest for v in versions) == sorted(digests)
