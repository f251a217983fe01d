"""Data versioning side by side: Shipyard vs DVC, both driven through their CLIs.

What is timed is the wall time of one whole CLI command (``subprocess.run``), interpreter
start-up included, because that is what a user waits for. Both tools see identical data,
generated once under ``bench/.work/data/`` (or ``--workdir``) and copied (untimed) into a fresh,
git-less project folder per tool and workload: ``dvc init --no-scm`` / ``shipyard init``.

* ``add_2gb``: add one 2 GiB file of random bytes into a fresh store. DVC: ``dvc add big.bin``
  (its default ``cache.type`` is ``reflink,copy``, i.e. a copy on ext4). Shipyard: ``shipyard
  data add big.bin --name big`` (copies into the store) and, in another fresh project, with
  ``--link`` (hardlinks into the store). The file is read once before each timed add, so it
  is in the page cache; the floor is a plain read of it from the page cache (8 MiB
  ``readinto``), and Shipyard's add should stay within 2x of it. Also timed: the same add
  again with nothing changed (a no-op for both).
* ``add_20k``: add one folder of 20,000 files of 4 KiB random bytes (100 folders of 200).
* ``status_2gb`` / ``status_20k``: ``dvc status`` vs ``shipyard data status`` in the project
  where the item was just added, nothing changed; median of 3 (all warm: add just hashed the
  files). Then ``status_20k touched``: the same after changing the mtime (not the content) of
  one small file before each of 3 runs; both must still report "unchanged".
* ``push_20k``: after ``add_20k``, push the folder's objects to an empty local-folder remote
  (``dvc remote add -d local PATH`` + ``dvc push`` vs ``shipyard data push --remote PATH``).
* ``CLI start-up`` (info): ``dvc --version`` vs ``shipyard --version``, median of 3: the floor
  under every other row.
* ``cp + sync``: a plain durable copy of the 2 GiB file on the same disk (``cp`` then ``sync``),
  and ``shipyard data add`` + ``sync`` of it in a fresh project, in 4 pairs in ABBA order with
  5 s of quiet around each (the VM's disk speed moves by 2-5x from one minute to the next): the
  add should take at most 1.25x the copy.

Targets (issue 18): add_20k >= 10x DVC; status_20k >= 5x; status_2gb >= 2x; push_20k >= 10x;
add_2gb <= 1.25x cp + sync.

Before every timed command the script flushes dirty pages (``os.sync``, untimed) and checks
the 1-minute load average; above 1.5 it waits up to 3 minutes. DVC runs from its own venv,
``bench/.venvs/dvc`` (created when missing), with analytics and update checks off and its
state/index folder (``DVC_SITE_CACHE_DIR``) inside the project, so every store is fresh.

Run: ``.venv/bin/python bench/data_vs_dvc.py [--quick] [--json PATH] [--only WORKLOAD...]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DVC_VERSION = "3.67.1"
DVC_VENV = ROOT / "bench" / ".venvs" / "dvc"
DVC = str(DVC_VENV / "bin" / "dvc")
SHIPYARD = str(Path(sys.executable).parent / "shipyard")
PROJECTS = Path(tempfile.gettempdir()) / "shipyard-bench-data-vs-dvc"
CHUNK = 8 << 20
FILE_SIZE = 4096
PER_DIR = 200
# label -> (size of the big file, number of small files)
SIZES = {"full": (2 << 30, 20_000), "quick": (256 << 20, 2_000)}
MAX_LOAD, MAX_WAIT = 1.5, 180.0
REPEAT = 3
PAIRS, SETTLE = 4, 5.0  # add vs cp + sync: interleaved pairs, seconds of quiet around each
WORKLOADS = ("add_2gb", "add_20k", "status_2gb", "status_20k", "push_20k")
Result = dict[str, Any]
LOADS: list[tuple[str, float]] = []


class ToolError(Exception):
    """A tool command failed: the exact command, its exit code and stderr."""


# --- data ------------------------------------------------------------------------------------


def prepare_data(folder: Path, big_size: int, n_files: int) -> None:
    """Generate big.bin and small/ unless the manifest says they exist with these sizes."""
    manifest = folder / "manifest.json"
    want = {"big": big_size, "files": n_files, "file_size": FILE_SIZE}
    big, small = folder / "big.bin", folder / "small"
    if manifest.exists() and json.loads(manifest.read_text()) == want:
        if big.exists() and big.stat().st_size == big_size and small.is_dir():
            return
    print(f"generating {folder} ({big_size >> 20} MiB file, {n_files:,} small files) ...")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with open(big, "wb") as out:
        for offset in range(0, big_size, CHUNK):
            out.write(os.urandom(min(CHUNK, big_size - offset)))
    for i in range(n_files):
        sub = small / f"d{i // PER_DIR:03d}"
        if i % PER_DIR == 0:
            sub.mkdir(parents=True)
        (sub / f"f{i % PER_DIR:03d}.bin").write_bytes(os.urandom(FILE_SIZE))
    manifest.write_text(json.dumps(want))


def read_file(path: Path) -> float:
    """Read ``path`` sequentially into a reused 8 MiB buffer; return the seconds taken."""
    buf = bytearray(CHUNK)
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as file:
        while file.readinto(buf):
            pass
    return time.perf_counter() - start


def warm(path: Path) -> None:
    """Read a file, or every file under a folder, so that it is in the page cache."""
    for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if file.is_file():
            read_file(file)


def rmtree(path: Path) -> None:
    """Remove a folder even when a tool made files or folders in it read-only."""

    def force(func: Callable[[str], object], name: str, _exc: object) -> None:
        os.chmod(os.path.dirname(name), 0o700)
        if os.path.isdir(name) and not os.path.islink(name):
            os.chmod(name, 0o700)
        func(name)

    if path.exists():
        shutil.rmtree(path, onerror=force)


# --- tools -----------------------------------------------------------------------------------


def tool_env(cwd: Path) -> dict[str, str]:
    """No analytics; DVC keeps its state and index (site cache) inside the project."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "SHIPYARD_"))}
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # both tools run as installed: bytecode cached
    site = str(cwd / ".dvc" / "site")
    return env | {"DVC_NO_ANALYTICS": "1", "DO_NOT_TRACK": "1", "DVC_SITE_CACHE_DIR": site}


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=tool_env(cwd), capture_output=True, text=True)
    if proc.returncode != 0:
        shown = " ".join(Path(c).name if c in (DVC, SHIPYARD) else c for c in cmd)
        output = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise ToolError(f"`{shown}` in {cwd} -> exit {proc.returncode}: {output}")
    return proc


def quiet_load(label: str) -> float:
    """The 1-minute load average, after waiting (up to MAX_WAIT) for it to drop below 1.5."""
    load, waited = os.getloadavg()[0], 0.0
    while load > MAX_LOAD and waited < MAX_WAIT:
        print(f"    load {load:.2f} > {MAX_LOAD} before {label}: waiting ...", flush=True)
        time.sleep(15)
        waited += 15
        load = os.getloadavg()[0]
    if load > MAX_LOAD:
        print(f"    load still {load:.2f} after {waited:.0f} s: measuring anyway", flush=True)
    LOADS.append((label, load))
    return load


def timed(label: str, cmd: list[str], cwd: Path) -> tuple[float, str]:
    """Sync, check the load, then time one CLI command; return (seconds, stdout)."""
    os.sync()
    load = quiet_load(label)
    start = time.perf_counter()
    proc = run(cmd, cwd)
    seconds = time.perf_counter() - start
    print(f"    {label:<34} {fmt(seconds):>9}  (load {load:.2f})", flush=True)
    return seconds, proc.stdout


def new_project(tool: str, name: str) -> Path:
    project = PROJECTS / f"{tool}-{name}"
    rmtree(project)
    project.mkdir(parents=True)
    if tool == "dvc":
        run([DVC, "init", "--no-scm", "-q"], project)
        for key in ("core.analytics", "core.check_update"):
            run([DVC, "config", key, "false"], project)
    else:
        run([SHIPYARD, "init"], project)
    return project


def add_cmd(tool: str, target: str, link: bool = False) -> list[str]:
    if tool == "dvc":
        return [DVC, "add", target]
    name = target.split(".")[0]
    return [SHIPYARD, "data", "add", target, "--name", name, *(["--link"] if link else [])]


def status_cmd(tool: str) -> list[str]:
    return [DVC, "status"] if tool == "dvc" else [SHIPYARD, "data", "status"]


def check_pointer(tool: str, project: Path, target: str) -> None:
    """After an add, DVC must have written TARGET.dvc and Shipyard TARGET.ship."""
    if not (project / f"{target}.{'dvc' if tool == 'dvc' else 'ship'}").exists():
        raise ToolError(f"{tool}: no pointer file for {target} in {project} after add")


def statuses(tool: str, project: Path, label: str, touch: Path | None = None) -> Result:
    """Run status REPEAT times (touching ``touch`` before each); median, all times, output."""
    times, outputs = [], []
    for i in range(REPEAT):
        if touch is not None:
            stamp = time.time_ns() + i * 1_000_000_000
            os.utime(touch, ns=(stamp, stamp))
        seconds, out = timed(f"{label} #{i + 1}", status_cmd(tool), project)
        if tool == "dvc" and "up to date" not in out:
            raise ToolError(f"dvc status reports a change ({label}): {out.strip()}")
        times.append(seconds)
        outputs.append(out.strip()[-300:])
    return {"seconds": statistics.median(times), "times": times, "output": outputs[-1]}


def bench_big(tool: str, source: Path, link: bool, with_status: bool) -> Result:
    name = "big-link" if link else "big"
    project = new_project(tool, name)
    try:
        shutil.copyfile(source, project / "big.bin")
        warm(project / "big.bin")
        mode = "--link" if link else "default"
        label = f"{tool} add_2gb ({mode})"
        seconds, out = timed(label, add_cmd(tool, "big.bin", link), project)
        check_pointer(tool, project, "big.bin")
        result: Result = {"seconds": seconds, "output": out.strip()[-300:]}
        if with_status:
            result["status"] = statuses(tool, project, f"{tool} status_2gb")
        again, _ = timed(f"{tool} add_2gb again", add_cmd(tool, "big.bin", link), project)
        result["again"] = again
        return result
    finally:
        rmtree(project)


def bench_small(tool: str, source: Path, with_status: bool, with_push: bool) -> Result:
    project = new_project(tool, "small")
    remote = PROJECTS / f"{tool}-remote"
    try:
        shutil.copytree(source, project / "small")
        warm(project / "small")
        seconds, out = timed(f"{tool} add_20k", add_cmd(tool, "small"), project)
        check_pointer(tool, project, "small")
        result: Result = {"seconds": seconds, "output": out.strip()[-300:]}
        if with_status:
            result["status"] = statuses(tool, project, f"{tool} status_20k")
            first = sorted((project / "small").rglob("*.bin"))[0]
            label = f"{tool} status_20k touched"
            result["touched"] = statuses(tool, project, label, touch=first)
        if with_push:
            rmtree(remote)
            remote.mkdir()
            if tool == "dvc":
                run([DVC, "remote", "add", "-d", "local", str(remote)], project)
                cmd = [DVC, "push", "-q"]
            else:
                cmd = [SHIPYARD, "data", "push", "--remote", str(remote)]
            pushed, out = timed(f"{tool} push_20k", cmd, project)
            files = sum(1 for p in remote.rglob("*") if p.is_file())
            result["push"] = {"seconds": pushed, "remote_files": files, "output": out[-300:]}
            print(f"    {tool} push_20k wrote {files:,} files in the remote", flush=True)
        return result
    finally:
        rmtree(project)
        rmtree(remote)


def add_vs_copy(source: Path) -> Result:
    """``shipyard data add`` of the 2 GiB file against ``cp`` + ``sync`` of the same file on
    the same disk, in REPEAT interleaved pairs (this VM's disk moves by 2-5x between minutes:
    only a pair measured together says how the two compare)."""
    pairs = []
    for i in range(PAIRS):
        project = new_project("shipyard", f"pair-{i}")
        try:
            shutil.copyfile(source, project / "big.bin")
            warm(project / "big.bin")
            time.sleep(SETTLE)  # let the disk finish with the copy just made
            copy_cmd = ["sh", "-c", "cp big.bin copy.bin && sync"]
            # both end with a machine-wide sync, so that neither leaves writing to the other
            add_cmd_sync = ["sh", "-c", f"{shlex.join(add_cmd('shipyard', 'big.bin'))} && sync"]
            times = {}
            order = ["copy", "add"] if i % 2 == 0 else ["add", "copy"]  # ABBA: no order bias
            for which in order:
                cmd = copy_cmd if which == "copy" else add_cmd_sync
                label = "cp + sync" if which == "copy" else "shipyard add_2gb + sync"
                times[which], _ = timed(f"{label} #{i + 1}", cmd, project)
                time.sleep(SETTLE)
            (project / "copy.bin").unlink()
            pairs.append((times["copy"], times["add"]))
        finally:
            rmtree(project)
    return {
        "copy": statistics.median(c for c, _ in pairs),
        "add": statistics.median(a for _, a in pairs),
        "ratio": statistics.median(a / c for c, a in pairs),
        "pairs": pairs,
    }


# --- driver ----------------------------------------------------------------------------------


def dvc_ready() -> str:
    """Create the DVC venv when missing; return the installed DVC version."""
    python = DVC_VENV / "bin" / "python"
    if not python.exists():
        base = shutil.which("python3.11") or sys.executable
        print(f"creating {DVC_VENV} and installing dvc=={DVC_VERSION} ...")
        subprocess.run([base, "-m", "venv", str(DVC_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, f"dvc=={DVC_VERSION}"], check=True)
    code = "import importlib.metadata as m; print(m.version('dvc'))"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True).stdout.strip()


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def get(result: Result, path: str) -> float | None:
    value: Any = result
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, float) else None


# (workload, row label, DVC result path, Shipyard result path, target: DVC/Shipyard >= it)
ROWS: list[tuple[str, str, str, str, float | None]] = [
    ("startup", "CLI start-up", "dvc.startup.seconds", "shipyard.startup.seconds", None),
    ("add_2gb", "add_2gb", "dvc.big.seconds", "shipyard.big.seconds", None),
    ("add_2gb", "add_2gb --link", "dvc.big.seconds", "shipyard.link.seconds", None),
    ("add_2gb", "add_2gb again", "dvc.big.again", "shipyard.big.again", None),
    ("add_20k", "add_20k", "dvc.small.seconds", "shipyard.small.seconds", 10.0),
    ("status_2gb", "status_2gb", "dvc.big.status.seconds", "shipyard.big.status.seconds", 2.0),
    ("status_20k", "status_20k", "dvc.small.status.seconds",
     "shipyard.small.status.seconds", 5.0),
    ("status_20k", "status_20k touched", "dvc.small.touched.seconds",
     "shipyard.small.touched.seconds", None),
    ("push_20k", "push_20k (folder)", "dvc.small.push.seconds",
     "shipyard.small.push.seconds", 10.0),
]  # fmt: skip


def table(results: Result, read: float | None, only: set[str]) -> list[str]:
    head = f"{'workload':<20} {'DVC':>9} {'Shipyard':>9} {'ratio':>7}  {'target':<9} status"
    lines = [head, "-" * len(head)]
    for workload, label, dvc_path, ship_path, target in ROWS:
        if workload not in only | {"startup"}:
            continue
        d, s = get(results, dvc_path), get(results, ship_path)
        ratio = f"{d / s:.1f}x" if d and s else "-"
        status = (
            "ERROR" if d is None or s is None else ("PASS" if d / s >= (target or 0) else "MISS")
        )
        status = "-" if target is None and status != "ERROR" else status
        shown = "info" if target is None else f">={target:g}x"
        lines.append(f"{label:<20} {fmt(d):>9} {fmt(s):>9} {ratio:>7}  {shown:<9} {status}")
    if "add_2gb" in only:
        pair = results.get("add_vs_copy") or {}
        copy, add, ratio = pair.get("copy"), pair.get("add"), pair.get("ratio")
        shown = f"{ratio:.2f}x" if ratio else "-"
        status = "ERROR" if ratio is None else ("PASS" if ratio <= 1.25 else "MISS")
        label = "add / cp+sync"
        lines.append(
            f"{label:<20} {fmt(copy):>9} {fmt(add):>9} {shown:>7}  {'<=1.25x':<9} {status}"
        )
        lines.append(
            f"(add / cp+sync: DVC column = cp + sync; median of {PAIRS} pairs (ABBA), the"
            f" ratio is the median of the pairs' ratios; plain read {fmt(read)})"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 MiB and 2,000 small files")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also save results here")
    parser.add_argument("--only", nargs="+", choices=WORKLOADS, help="run only these")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / ".work")
    args = parser.parse_args()
    only = set(args.only or WORKLOADS)

    label = "quick" if args.quick else "full"
    big_size, n_files = SIZES[label]
    data = args.workdir / "data" / label
    prepare_data(data, big_size, n_files)
    ship_version = run([SHIPYARD, "--version"], ROOT).stdout.strip()
    info: Result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "dvc": dvc_ready(),
        "shipyard": ship_version,
        "big_bytes": big_size,
        "small_files": n_files,
    }
    print(json.dumps(info), flush=True)

    results: Result = {"dvc": {}, "shipyard": {}}
    errors: list[str] = []
    read: float | None = None
    rmtree(PROJECTS)
    PROJECTS.mkdir()

    def attempt(tool: str, key: str, action: Callable[[], Result]) -> None:
        try:
            results[tool][key] = action()
        except ToolError as exc:
            errors.append(str(exc))
            print(f"    ERROR {exc}", flush=True)

    try:
        for tool, cmd in [("dvc", [DVC, "--version"]), ("shipyard", [SHIPYARD, "--version"])]:
            times = [timed(f"{tool} start-up", cmd, PROJECTS)[0] for _ in range(REPEAT)]
            results[tool]["startup"] = {"seconds": statistics.median(times), "times": times}
        if only & {"add_2gb", "status_2gb"}:
            big = data / "big.bin"
            warm(big)
            quiet_load("read")
            read = statistics.median(read_file(big) for _ in range(REPEAT))
            print(f"    plain read of big.bin (median of {REPEAT}): {fmt(read)}", flush=True)
            if "add_2gb" in only:
                results["add_vs_copy"] = add_vs_copy(big)
            status = "status_2gb" in only
            for tool in ("dvc", "shipyard"):
                attempt(tool, "big", lambda t=tool: bench_big(t, big, False, status))
            if "add_2gb" in only:
                attempt("shipyard", "link", lambda: bench_big("shipyard", big, True, False))
        if only & {"add_20k", "status_20k", "push_20k"}:
            status, push = "status_20k" in only, "push_20k" in only
            for tool in ("dvc", "shipyard"):
                attempt(tool, "small", lambda t=tool: bench_small(t, data / "small", status, push))
    finally:
        rmtree(PROJECTS)

    lines = table(results, read, only)
    print("\n" + "\n".join(lines))
    loads = [load for _, load in LOADS]
    if loads:
        print(f"1-min load before timed commands: min {min(loads):.2f}, max {max(loads):.2f}")
    print(f"DVC {info['dvc']}, Shipyard {ship_version}; start-up and statuses: median of {REPEAT}")
    for error in errors:
        print(f"ERROR: {error}")
    if args.json:
        out = {**info, "read_seconds": read, "results": results, "loads": LOADS, "errors": errors}
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
