"""Data drift side by side: Shipyard's ``monitoring.drift.compare`` vs Evidently's DataDriftPreset.

The script generates (seeded, no downloads) a reference and a current table of 100,000 and
1,000,000 rows with 20 numeric and 5 categorical columns, and plants five shifts of different
sizes in the current one:

======  ====================================================  ===============================
column  planted shift                                          size
======  ====================================================  ===============================
num00   normal, mean + 0.05 sd                                 tiny (Evidently's default misses)
num01   normal, mean + 0.5 sd                                  large
num02   exponential, scale x 1.15                              moderate
cat00   top category 30 % -> 35 %, others scaled down          mild (Evidently's default misses)
cat01   a new category takes 10 %, others scaled down          large
======  ====================================================  ===============================

The other 17 numeric columns (normal, log-normal, exponential, uniform, integer 0-99, two of
them with 1 % nulls) and 3 categorical ones are drawn from the same distributions on both
sides. Both tables are written to Parquet under ``bench/.work/drift/`` (gitignored).

Each tool runs in its own fresh process, from the two Parquet paths to the list of flagged
columns: Shipyard as ``compare(ref_path, cur_path)`` with the project interpreter; Evidently
(``bench/.venvs/evidently``, created with ``evidently`` and ``pandas<3`` when missing) as
``pd.read_parquet`` of both files + ``Report([DataDriftPreset()]).run(...)``, defaults
everywhere. Libraries are imported before the clock starts. The worker reports its wall time,
its peak RSS (``ru_maxrss``: the whole process) and its RSS just before the work (interpreter +
imported libraries), so the increase is the difference.

Shipyard runs ``--repeat`` (3) times per size, each in a fresh process, and the median run is
reported (all times are in the JSON); Evidently runs once.

Finally the false-alarm rate: Shipyard alone on ``--seeds`` (20) fresh pairs of 100,000-row
tables, counting flagged unchanged columns (and found planted ones).

Run: ``.venv/bin/python bench/drift_vs_evidently.py [--sizes 100000 1000000] [--seeds 20]
[--json PATH] [--skip-evidently]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "drift"
EVIDENTLY_VENV = ROOT / "bench" / ".venvs" / "evidently"
EVIDENTLY_PYTHON = EVIDENTLY_VENV / "bin" / "python"
PLANTED = ("num00", "num01", "num02", "cat00", "cat01")
SHARES = (0.30, 0.25, 0.20, 0.15, 0.10)
LETTERS = ("alpha", "bravo", "charlie", "delta", "echo")
TARGET_SPEEDUP = 20.0
TARGET_MEMORY = 1.5


# --- data ------------------------------------------------------------------------------------


def _scaled(shares: tuple[float, ...], first: float) -> list[float]:
    rest = sum(shares[1:])
    return [first, *(s * (1 - first) / rest for s in shares[1:])]


def make_table(n: int, seed: int, *, current: bool) -> Any:
    """One side of the benchmark data (numpy + pyarrow, project interpreter)."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    drift = current
    columns: dict[str, Any] = {
        "num00": rng.normal(0.05 if drift else 0.0, 1.0, n),
        "num01": rng.normal(0.5 if drift else 0.0, 1.0, n),
        "num02": rng.exponential(1.15 if drift else 1.0, n),
    }
    makers = (
        lambda: rng.normal(10.0, 3.0, n),
        lambda: rng.lognormal(0.0, 1.0, n),
        lambda: rng.exponential(2.0, n),
        lambda: rng.uniform(-1.0, 1.0, n),
        lambda: rng.integers(0, 100, n),
    )
    for i in range(3, 20):
        values = makers[i % len(makers)]()
        if i in (7, 13):
            values = pa.array(values, mask=rng.random(n) < 0.01)
        columns[f"num{i:02d}"] = values
    dictionary = pa.array([*LETTERS, "new"])
    cat_shares = {
        "cat00": _scaled(SHARES, 0.35) if drift else list(SHARES),
        "cat01": [s * 0.9 for s in SHARES] + [0.1] if drift else [*SHARES, 0.0],
    }
    for i in range(5):
        name = f"cat{i:02d}"
        shares = cat_shares.get(name, list(SHARES))
        shares = shares + [0.0] * (6 - len(shares))
        codes = rng.choice(6, n, p=np.array(shares) / sum(shares))
        columns[name] = dictionary.take(pa.array(codes))
    return pa.table(columns)


def prepare(n: int, seed: int) -> tuple[Path, Path, int]:
    """Write (once) the reference and current Parquet files; return their paths and the two
    tables' size in Arrow (bytes)."""
    import pyarrow.parquet as pq

    folder = WORK / f"n{n}-s{seed}"
    ref, cur = folder / "reference.parquet", folder / "current.parquet"
    size_file = folder / "arrow_bytes.json"
    if not (ref.exists() and cur.exists() and size_file.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        total = 0
        for path, is_current, offset in ((ref, False, 0), (cur, True, 1)):
            table = make_table(n, seed * 2 + offset, current=is_current)
            total += table.nbytes
            pq.write_table(table, path)
            del table
        size_file.write_text(json.dumps(total))
    return ref, cur, int(json.loads(size_file.read_text()))


# --- workers (one fresh process per tool and size) -------------------------------------------


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def worker_shipyard(ref: str, cur: str) -> dict[str, Any]:
    import duckdb  # noqa: F401
    import numpy  # noqa: F401
    import pyarrow.compute
    import pyarrow.parquet  # noqa: F401
    import scipy.stats  # noqa: F401

    import shipyard.data.tables  # noqa: F401
    from shipyard.monitoring.drift import compare

    baseline = _rss_kib()
    start = time.perf_counter()
    report = compare(ref, cur)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "baseline_kib": baseline,
        "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "flagged": list(report.drifted_columns),
        "methods": {c.column: f"{c.test}+{c.distance_metric}" for c in report.columns},
    }


def worker_evidently(ref: str, cur: str) -> dict[str, Any]:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    baseline = _rss_kib()
    start = time.perf_counter()
    reference, current = pd.read_parquet(ref), pd.read_parquet(cur)
    read = time.perf_counter() - start
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    seconds = time.perf_counter() - start
    flagged, methods = [], {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if not config.get("type", "").endswith("ValueDrift"):
            continue
        method, threshold, value = config["method"], config["threshold"], metric["value"]
        methods[config["column"]] = method
        p_value = "p_value" in method.lower().replace("-", "_")
        if (value < threshold) if p_value else (value >= threshold):
            flagged.append(config["column"])
    return {
        "seconds": seconds,
        "read_seconds": read,
        "baseline_kib": baseline,
        "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "flagged": flagged,
        "methods": methods,
    }


def run_worker(tool: str, ref: Path, cur: Path) -> dict[str, Any]:
    if tool == "evidently":
        command = [str(EVIDENTLY_PYTHON)]
        env = {**os.environ, "DO_NOT_TRACK": "1", "EVIDENTLY_DISABLE_TELEMETRY": "1"}
    else:
        command = [sys.executable]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command += [__file__, "--worker", tool, "--ref", str(ref), "--cur", str(cur)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{tool} worker failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def ensure_evidently() -> str:
    if not EVIDENTLY_PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        pip = [str(EVIDENTLY_PYTHON), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "evidently", "pandas<3"], check=True)
    code = "import evidently, pandas; print(evidently.__version__, pandas.__version__)"
    out = subprocess.run([str(EVIDENTLY_PYTHON), "-c", code], capture_output=True, text=True)
    return out.stdout.strip()


# --- driver ----------------------------------------------------------------------------------


def false_alarms(seeds: int, n: int) -> dict[str, Any]:
    """Shipyard alone on fresh pairs of tables: flagged unchanged columns and found shifts."""
    from shipyard.monitoring.drift import compare

    alarms = tests = found = 0
    per_seed = []
    for seed in range(1, seeds + 1):
        ref, cur, _ = prepare(n, seed)
        report = compare(ref, cur)
        flagged = set(report.drifted_columns)
        unchanged = [c.column for c in report.columns if c.column not in PLANTED]
        alarms += len(flagged - set(PLANTED))
        tests += len(unchanged)
        found += len(flagged & set(PLANTED))
        per_seed.append(sorted(flagged))
    return {
        "rows": n,
        "seeds": seeds,
        "false_alarms": alarms,
        "unchanged_tests": tests,
        "rate": alarms / tests if tests else 0.0,
        "planted_found": found,
        "planted_total": seeds * len(PLANTED),
        "flagged_per_seed": per_seed,
    }


def _mib(kib: float) -> str:
    return f"{kib / 1024:,.0f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument(
        "--repeat", type=int, default=3, help="Shipyard runs per size (median kept)"
    )
    parser.add_argument("--worker", choices=["shipyard", "evidently"], help=argparse.SUPPRESS)
    parser.add_argument("--ref", help=argparse.SUPPRESS)
    parser.add_argument("--cur", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        work = worker_shipyard if args.worker == "shipyard" else worker_evidently
        print(json.dumps(work(args.ref, args.cur)))
        return 0

    sys.path.insert(0, str(ROOT / "src"))
    versions = {"python": platform.python_version(), "machine": platform.machine()}
    versions["evidently (pandas)"] = "skipped" if args.skip_evidently else ensure_evidently()
    import numpy
    import pyarrow
    import scipy

    versions |= {"numpy": numpy.__version__, "scipy": scipy.__version__}
    versions["pyarrow"] = pyarrow.__version__
    print(f"versions: {versions}; load: {os.getloadavg()}", flush=True)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": versions,
        "nproc": os.cpu_count(),
        "sizes": {},
    }
    failed = False
    for n in args.sizes:
        ref, cur, arrow_bytes = prepare(n, 0)
        row: dict[str, Any] = {"arrow_bytes": arrow_bytes, "load_before": os.getloadavg()[0]}
        for tool in ("shipyard", "evidently"):
            if tool == "evidently" and args.skip_evidently:
                continue
            print(f"{n:,} rows: {tool} ...", flush=True)
            runs = [
                run_worker(tool, ref, cur) for _ in range(args.repeat if tool == "shipyard" else 1)
            ]
            runs.sort(key=lambda r: r["seconds"])
            row[tool] = runs[len(runs) // 2] | {"all_seconds": [r["seconds"] for r in runs]}
            row[tool]["max_peak_kib"] = max(r["peak_kib"] for r in runs)
            row[tool]["load_after"] = os.getloadavg()[0]
            missed = sorted(set(PLANTED) - set(row[tool]["flagged"]))
            extra = sorted(set(row[tool]["flagged"]) - set(PLANTED))
            row[tool] |= {"missed": missed, "false_alarms": extra}
        results["sizes"][str(n)] = row
        failed |= bool(row["shipyard"]["missed"])
    print(f"false-alarm runs: {args.seeds} seeds x 100,000 rows (Shipyard) ...", flush=True)
    results["false_alarms"] = false_alarms(args.seeds, 100_000)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if failed else 0


def report(results: dict[str, Any]) -> None:
    print()
    print("| rows | tool | wall time (median) | peak RSS (whole process) | RSS increase | flagged "
          "| missed planted | false alarms |")  # fmt: skip
    print("|---:|---|---:|---:|---:|---|---|---|")
    for n, row in results["sizes"].items():
        for tool in ("shipyard", "evidently"):
            if tool not in row:
                continue
            r = row[tool]
            increase = r["peak_kib"] - r["baseline_kib"]
            print(
                f"| {int(n):,} | {tool} | {r['seconds']:.2f} s | {_mib(r['peak_kib'])} | "
                f"{_mib(increase)} | {', '.join(r['flagged']) or '-'} | "
                f"{', '.join(r['missed']) or '-'} | {', '.join(r['false_alarms']) or '-'} |"
            )
    print()
    for n, row in results["sizes"].items():
        arrow = row["arrow_bytes"] / 1024
        ship = row["shipyard"]
        line = f"{int(n):,} rows: two tables in Arrow {_mib(arrow)}; Shipyard peak "
        line += f"{ship['peak_kib'] / arrow:.2f}x of that (increase {(ship['peak_kib'] - ship['baseline_kib']) / arrow:.2f}x)"  # noqa: E501
        if "evidently" in row:
            ratio = row["evidently"]["seconds"] / ship["seconds"]
            status = "PASS" if ratio >= TARGET_SPEEDUP else "MISS"
            line += f"; Evidently / Shipyard time {ratio:.1f}x (target >= 20x: {status})"
            mem = row["evidently"]["peak_kib"] / ship["peak_kib"]
            line += f"; Evidently / Shipyard peak RSS {mem:.1f}x"
        print(line)
    fa = results["false_alarms"]
    print(
        f"false alarms: {fa['false_alarms']} of {fa['unchanged_tests']} unchanged columns "
        f"({fa['rate']:.2%}) over {fa['seeds']} seeds x {fa['rows']:,} rows; planted shifts "
        f"found {fa['planted_found']} of {fa['planted_total']}"
    )


if __name__ == "__main__":
    sys.exit(main())
