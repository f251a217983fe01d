"""The README's examples run as written, in order, in one fresh folder.

Every ```bash and ```python block of README.md runs, top to bottom, in one bash process (so a
shell variable set by one block is there in the next, as in a reader's terminal), in an empty
folder holding a copy of ``examples/``, with this environment's ``shipyard`` and ``python``
first on PATH. Each command (one line; a trailing backslash continues it) must exit 0; a
python block runs as ``python -`` and must exit 0 too.

The one convention: a block right after ``<!-- not run: REASON -->`` is not run. A reason that
says ``an excerpt of FILE`` makes the test check that the block's lines are in FILE instead.
Kept to a few (``MAX_NOT_RUN``): today the Quick start (it sets up the checkout the rest runs
in) and the pipeline excerpt.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_NOT_RUN = 2
FAILED = 97  # the script's own exit code when a README command failed

_FENCE = re.compile(r"^```(\w*)\s*$")
_NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.+?)\s*-->\s*$")
_EXCERPT = re.compile(r"an excerpt of (\S+?)[,.;]?(?:\s|$)")


@dataclass(frozen=True, slots=True)
class Block:
    """A fenced code block of the README."""

    language: str
    code: str
    line: int  # of its first code line, 1-based
    not_run: str | None  # the reason, when marked


def readme_blocks(text: str) -> list[Block]:
    """The fenced blocks of ``text`` in order, each with its ``not run`` reason if marked."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        before = index - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        marker = _NOT_RUN.match(lines[before]) if before >= 0 else None
        end = index + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        blocks.append(
            Block(
                language=opening.group(1),
                code="\n".join(lines[index + 1 : end]) + "\n",
                line=index + 2,
                not_run=marker.group(1) if marker else None,
            )
        )
        index = end + 1
    return blocks


def commands(block: Block) -> list[tuple[int, str]]:
    """The shell commands of a bash block with their README line: one a line, a trailing
    backslash joining the next; blank and comment-only lines skipped."""
    found: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for offset, line in enumerate(block.code.splitlines()):
        if not pending:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            start = block.line + offset
        pending.append(line)
        if not line.endswith("\\"):
            found.append((start, "\n".join(pending)))
            pending = []
    assert not pending, f"README.md:{start}: a command ends with a backslash"
    return found


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def script(blocks: list[Block]) -> str:
    """One bash script: every command of every runnable block, each checked on its own."""
    parts = ["set -uo pipefail"]
    for block in blocks:
        if block.not_run is not None:
            continue
        if block.language == "bash":
            steps = commands(block)
        elif block.language == "python":
            steps = [(block.line, f"python - <<'README_PYTHON'\n{block.code}README_PYTHON")]
        else:
            continue
        for line, command in steps:
            where = _quoted(f"README.md:{line}: {command.splitlines()[0]}")
            # A newline before the closing brace: a trailing comment cannot swallow it.
            parts.append(
                f"printf '\\n$ %s\\n' {where} >&2\n"
                f"{{ {command}\n}} || {{ code=$?; printf 'FAILED (exit %s): %s\\n' $code "
                f"{where} >&2; exit {FAILED}; }}"
            )
    return "\n".join(parts) + "\n"


def test_blocks_and_commands_are_found_as_a_reader_sees_them() -> None:
    text = (
        "<!-- not run: needs a cloud bucket -->\n\n```bash\naws s3 ls\n```\n"
        "```bash\n# a comment\nshipyard init   # here\nshipyard data add a \\\n  --name b\n"
        "\n```\n```python\nprint(1)\n```\n"
    )
    first, second, third = readme_blocks(text)
    assert first.not_run == "needs a cloud bucket" and first.code == "aws s3 ls\n"
    assert second.not_run is None and second.line == 7
    assert commands(second) == [
        (8, "shipyard init   # here"),
        (9, "shipyard data add a \\\n  --name b"),
    ]
    assert third.language == "python" and third.not_run is None


def test_a_failing_command_stops_the_script_and_says_which(tmp_path: Path) -> None:
    text = "```bash\ntrue  # fine\nfalse && true\necho never\n```\n"
    done = subprocess.run(
        ["bash", "-c", script(readme_blocks(text))],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == FAILED
    assert "FAILED (exit 1): README.md:3: false && true" in done.stderr
    assert "never" not in done.stdout


def test_excerpts_are_in_the_files_they_quote() -> None:
    excerpts = 0
    for block in readme_blocks(README.read_text(encoding="utf-8")):
        found = _EXCERPT.search(block.not_run or "")
        if found is None:
            continue
        excerpts += 1
        source = (ROOT / found.group(1)).read_text(encoding="utf-8")
        for line in block.code.splitlines():
            code = line.split("#")[0].strip()
            if code and code != "...":
                assert code in source, f"README.md:{block.line}: {code!r} not in {found.group(1)}"
    assert excerpts >= 1


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_the_readme_examples_run_in_order_in_a_fresh_folder(tmp_path: Path) -> None:
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    not_run = [b for b in blocks if b.not_run is not None]
    assert len(not_run) <= MAX_NOT_RUN, (
        f"{len(not_run)} README blocks are marked not run (at most {MAX_NOT_RUN}): "
        + "; ".join(f"line {b.line}: {b.not_run}" for b in not_run)
    )
    assert sum(b.language == "bash" and b.not_run is None for b in blocks) >= 6
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "shipyard").exists():
        pytest.fail(f"no shipyard beside {sys.executable}: install the checkout (make test)")
    for tool in ("curl", "jq"):
        if shutil.which(tool) is None:
            pytest.skip(f"the README's examples use {tool}, which is not installed")
    if not _port_is_free(8080):
        pytest.skip("port 8080 is taken; the README's model servers listen on it")

    project = tmp_path / "project"
    project.mkdir()
    shutil.copytree(ROOT / "examples", project / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(tmp_path / "home"),  # nothing the examples write lands in the real home
        SHIPYARD_USER="alice",
        COLUMNS="100",
    )
    (tmp_path / "home").mkdir()
    (tmp_path / "run.sh").write_text(script(blocks), encoding="utf-8")
    # Output to files, not pipes: a server the script left running would hold a pipe open.
    with (tmp_path / "out.txt").open("w") as out, (tmp_path / "err.txt").open("w") as err:
        process = subprocess.Popen(
            ["bash", str(tmp_path / "run.sh")],
            cwd=project,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,  # its own process group: what it left running is ended
        )
        try:
            process.wait(timeout=280)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait()
    output = (tmp_path / "out.txt").read_text()
    errors = (tmp_path / "err.txt").read_text()
    assert process.returncode == 0, f"{errors[-6000:]}\n--- stdout ---\n{output[-3000:]}"
    # What the examples say they made is there.
    assert (project / "data" / "churn.csv.ship").is_file()
    assert (project / "best" / "models" / "churn").is_dir()
    assert (project / "churn.html").is_file()
    assert (project / ".github" / "workflows" / "shipyard.yml").is_file()
    assert any((tmp_path / "shipyard-remote").iterdir())
