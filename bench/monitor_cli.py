"""``shipyard monitor drift`` on two Parquet files: the command's wall time against the
comparison it runs, measured in-process; the difference is the command's own overhead.

The script generates (seeded, no downloads) ``ref.parquet`` and ``cur.parquet`` of 400,000
rows x 30 columns (20 numeric: normal, log-normal, exponential, uniform, integers, two with
1 % nulls; 10 categorical strings of 3 to 40 categories) under ``bench/.work/monitor_cli/``
(gitignored). The current table has two planted shifts (``num00`` mean + 0.5 sd, ``cat00``
its first category from 50 % to 55 %) and 3 % nulls injected into ``num01``, which had none.

Three measurements, each the median of ``--repeat`` (3) runs, each run in a fresh process
(command and comparison alternate), in wall time and in CPU time (user + system, which other
work on the machine disturbs less):

- **command**: ``.venv/bin/shipyard monitor drift --reference ref.parquet --current
  cur.parquet --json`` as a subprocess, from start to exit (stdout read and parsed);
- **comparison**: :func:`shipyard.monitoring.drift.compare` on the two paths in a fresh
  interpreter, after a warm-up ``compare`` of two 100-row tables, so that every library it
  imports is imported before the clock starts (what the Python API costs); the same call
  with ``quality=False`` right after says what the data quality checks cost;
- **overhead**: command minus comparison: interpreter start, imports, argument parsing,
  reading what the command reads beyond the comparison, and printing the JSON.

Run: ``.venv/bin/python bench/monitor_cli.py [--rows 400000] [--repeat 3] [--json PATH]``;
``--profile`` also prints ``python -X importtime``'s slowest imports of the command;
``--src DIR`` runs another tree's ``src/`` (e.g. ``git archive`` of an earlier commit) with
this venv, for a before/after in one session.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "monitor_cli"
SHIPYARD = ROOT / ".venv" / "bin" / "shipyard"
NUMERIC, CATEGORICAL = 20, 10
TARGET_OVERHEAD = 0.5


# --- data ------------------------------------------------------------------------------------


def make_table(n: int, seed: int, *, current: bool) -> Any:
    """One side of the benchmark data: 20 numeric and 10 categorical columns."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    makers = (
        lambda: rng.normal(10.0, 3.0, n),
        lambda: rng.lognormal(0.0, 1.0, n),
        lambda: rng.exponential(2.0, n),
        lambda: rng.uniform(-1.0, 1.0, n),
        lambda: rng.integers(0, 100, n),
    )
    columns: dict[str, Any] = {}
    for i in range(NUMERIC):
        values = makers[i % len(makers)]()
        if i == 0 and current:
            values = values + 1.5  # planted: + 0.5 sd
        if i in (7, 13):
            values = pa.array(values, mask=rng.random(n) < 0.01)
        elif i == 1 and current:
            values = pa.array(values, mask=rng.random(n) < 0.03)  # nulls it never had
        columns[f"num{i:02d}"] = values
    for i in range(CATEGORICAL):
        k = (3, 5, 8, 12, 20, 40)[i % 6]
        shares = np.arange(k, 0, -1, dtype=np.float64)
        shares /= shares.sum()
        if i == 0 and current:
            shares[0] += 0.1
            shares /= shares.sum()
        names = pa.array([f"c{i}_{j}" for j in range(k)])
        columns[f"cat{i:02d}"] = names.take(pa.array(rng.choice(k, n, p=shares)))
    return pa.table(columns)


def prepare(n: int) -> tuple[Path, Path]:
    """Write (once) ``ref.parquet`` and ``cur.parquet`` of ``n`` rows."""
    import pyarrow.parquet as pq

    folder = WORK / f"n{n}"
    ref, cur = folder / "ref.parquet", folder / "cur.parquet"
    if not (ref.exists() and cur.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        for path, is_current in ((ref, False), (cur, True)):
            temp = path.with_suffix(".tmp")
            pq.write_table(make_table(n, 2 if is_current else 1, current=is_current), temp)
            temp.replace(path)
    return ref, cur


# --- measurements ----------------------------------------------------------------------------


def worker_compare(ref: str, cur: str) -> dict[str, Any]:
    """In a fresh process: ``compare`` on the two paths, after a warm-up on small tables."""
    import pyarrow.parquet as pq

    from shipyard.monitoring.drift import compare

    small = [pq.read_table(path).slice(0, 100) for path in (ref, cur)]
    compare(*small)  # imports what compare imports lazily (numpy, scipy, DuckDB ...)
    start, cpu = time.perf_counter(), _cpu_self()
    report = compare(ref, cur)
    seconds, cpu = time.perf_counter() - start, _cpu_self() - cpu
    drift_only = None
    if hasattr(report, "findings"):  # a tree from before the quality checks has no switch
        start = time.perf_counter()
        compare(ref, cur, quality=False)
        drift_only = time.perf_counter() - start
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "drift_only_seconds": drift_only,
        "drifted": list(report.drifted_columns),
        "findings": [f"{f.check}:{f.column}" for f in getattr(report, "findings", ())],
    }


def _cpu_self() -> float:
    times = os.times()
    return times.user + times.system


def _cpu_children() -> float:
    times = os.times()
    return times.children_user + times.children_system


def _env(src: Path, home: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return env | {"SHIPYARD_HOME": str(home)} if home is not None else env


def time_compare(ref: Path, cur: Path, src: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", str(ref), str(cur)],
        capture_output=True,
        text=True,
        check=True,
        env=_env(src),
    )
    return dict(json.loads(done.stdout))


def time_command(ref: Path, cur: Path, home: Path, src: Path) -> dict[str, Any]:
    command = [str(SHIPYARD), "monitor", "drift", "--reference", str(ref)]
    command += ["--current", str(cur), "--json"]
    start, cpu = time.perf_counter(), _cpu_children()
    done = subprocess.run(command, capture_output=True, text=True, cwd=home, env=_env(src, home))
    seconds, cpu = time.perf_counter() - start, _cpu_children() - cpu
    if done.returncode not in (0, 1):
        raise SystemExit(f"error: the command failed ({done.returncode}): {done.stderr.strip()}")
    report = json.loads(done.stdout)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "exit_code": done.returncode,
        "drifted": report["drifted_columns"],
        "findings": [f"{f['check']}:{f['column']}" for f in report.get("findings", [])],
        "reported_seconds": report.get("seconds"),
    }


def import_profile(
    ref: Path, cur: Path, home: Path, src: Path, top: int = 12
) -> list[tuple[float, str]]:
    """The command's slowest top-level imports (cumulative ms) by ``python -X importtime``:
    those its modules run at start-up and those its functions run when first called."""
    command = [sys.executable, "-X", "importtime", str(SHIPYARD), "monitor", "drift"]
    command += ["--reference", str(ref), "--current", str(cur), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=home, env=_env(src, home))
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        if not name.startswith("  "):  # one space, then the name: imported at top level
            rows.append((int(cumulative) / 1000, name.strip()))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="Also write every measurement here.")
    parser.add_argument("--profile", action="store_true", help="Show the slowest imports.")
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="The src/ to run.")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker_compare(*args.worker)))
        return
    import tempfile

    ref, cur = prepare(args.rows)
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-") as folder:
        home = Path(folder)
        load = os.getloadavg()[0]
        time_command(ref, cur, home, args.src)  # warm the page cache and any first-run work
        commands, compares = [], []
        for _ in range(args.repeat):  # alternated, so that a busy moment hits both alike
            commands.append(time_command(ref, cur, home, args.src))
            compares.append(time_compare(ref, cur, args.src))
        profile = import_profile(ref, cur, home, args.src) if args.profile else []
    command = statistics.median(r["seconds"] for r in commands)
    comparison = statistics.median(r["seconds"] for r in compares)
    overhead = command - comparison
    cpu_command = statistics.median(r["cpu_seconds"] for r in commands)
    cpu_comparison = statistics.median(r["cpu_seconds"] for r in compares)
    status = "PASS" if overhead < TARGET_OVERHEAD else f"MISS ({overhead / TARGET_OVERHEAD:.1f}x)"
    print(f"data: {args.rows:,} rows x {NUMERIC + CATEGORICAL} columns, {ref.parent}")
    print(f"code: {args.src}; load average {load:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"command (monitor drift --json), median of {args.repeat}: {command:.2f} s")
    print(f"comparison (compare() in-process), median of {args.repeat}: {comparison:.2f} s")
    if all(r["drift_only_seconds"] is not None for r in compares):
        drift_only = statistics.median(r["drift_only_seconds"] for r in compares)
        print(f"  of which the quality checks: {comparison - drift_only:.2f} s")
    print(f"overhead: {overhead:.2f} s (target < {TARGET_OVERHEAD} s): {status}")
    print(
        f"CPU time (user + system, both cores): command {cpu_command:.2f} s, comparison "
        f"{cpu_comparison:.2f} s, overhead {cpu_command - cpu_comparison:.2f} s"
    )
    print(f"drifted: {commands[0]['drifted']}; findings: {commands[0]['findings']}")
    for ms, name in profile:
        print(f"  import {name.strip()}: {ms:.0f} ms")
    if args.json:
        args.json.write_text(json.dumps({"commands": commands, "compares": compares}, indent=2))


if __name__ == "__main__":
    main()
