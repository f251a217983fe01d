"""What a deployment's routing costs: one route vs a 10 % canary vs a 100 % shadow (issue 13).

Four servers, one at a time, each ``--workers 1`` with the prediction log on (the default),
on the same machine in the same run, from the CLI in a fresh workspace (``shipyard init``):

* ``single``: ``shipyard serve lr@1`` (a model served by reference: the baseline);
* ``canary``: ``shipyard serve --deployment lr-canary``, where ``lr-canary`` was created with
  ``--model lr@1`` and then ``deploy canary lr-canary --model lr@2 --steps 10,100 --interval
  1h`` (10 % canary for the whole run, which with its baseline route splits 80/10/10 as
  stable/baseline/canary; the controller runs inside the server);
* ``canary_nc``: the same canary (``lr-canary-nc``) served with ``--no-controller``: under this
  load a controller could end the rollout (before the baseline route, a 10 % canary's requests
  waited longer for batch company and its latency rule fired), and then the run would no
  longer measure a split; without a controller the split holds for the whole run;
* ``shadow``: ``shipyard serve --deployment lr-shadow``, created with ``--model lr@1`` and then
  ``deploy shadow lr-shadow --model lr@2 --percent 100`` (every answered request mirrored);
* ``one_route`` (a diagnostic, only with ``--only``): ``serve --deployment lr-one``, a deployment
  of ``lr@1`` alone: the cost of following a deployment without splitting its traffic.

``lr@1`` is LogisticRegression(max_iter=5000) and ``lr@2`` the same with C=0.5, both fitted on
sklearn's breast_cancer and logged with the Python API (as ``bench/serving_vs_mlserver.py``
does). Every request is the first breast_cancer row as an OIP v2 ``[1, 30]`` FP64 tensor,
``POST /v2/models/lr/infer``; load comes from ``wrk`` (one thread, closed loop), 3 s warm-up
then a timed run at 16 and 64 connections, 127.0.0.1 only.

Each server (and each round, with ``--rounds``) gets a deployment of its own, created just
before it starts, so no counts or decisions carry over.

Target: canary and shadow keep >= 90 % of the single route's requests/s with a p99 <= 1.2x.
After each timed run the deployment's own counts (``shipyard deploy status NAME --json``) are
read: the share of requests each canary route answered, and for the shadow how many requests
were compared and how many mirrors were dropped (its queue full); and the controller's
decisions (``deploy history``), if it made any.

Run: ``.venv/bin/python bench/deploy_routes.py [--duration 15] [--rounds 1] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

from serving_vs_mlserver import (
    PROJECT_PYTHON,
    ROOT,
    Server,
    body,
    clean_env,
    ensure_wrk,
    lua,
    predicted_class,
    run_json,
    version_of,
    wait_quiet,
    wrk,
)

# The CLI through the project's interpreter: the console script's shebang can point elsewhere
SHIPYARD = [str(PROJECT_PYTHON), "-c", "from shipyard.cli import main; main()"]
CONCURRENCY = (16, 64)
PORT = 18180
SERVERS = ("single", "canary", "canary_nc", "shadow")
EXTRAS = ("one_route",)  # a diagnostic, run only when named with --only
DEPLOYMENTS = {  # each server and round gets a fresh one: lr-canary, lr-canary-2, ...
    "canary": "lr-canary",
    "canary_nc": "lr-canary-nc",
    "shadow": "lr-shadow",
    "one_route": "lr-one",
}
EXPECTED_STATE = {
    "canary": "progressing",
    "canary_nc": "progressing",
    "shadow": "stable",
    "one_route": "stable",
}
MIN_THROUGHPUT = 0.9
MAX_P99 = 1.2
Result = dict[str, Any]

SETUP = textwrap.dedent(
    """
    import json, shipyard
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    frame = load_breast_cancer(as_frame=True).frame
    x, y = frame.drop(columns="target"), frame["target"]
    for c in (1.0, 0.5):  # lr@1, then lr@2
        model = LogisticRegression(C=c, max_iter=5000).fit(x, y)
        with shipyard.start_run(experiment="bench", log_code=False) as run:
            run.log_model(model, "lr", input_example=x.head())
    print(json.dumps({"columns": list(x.columns), "row": [float(v) for v in x.iloc[0]]}))
    """
)


def shipyard(env: dict[str, str], cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        [*SHIPYARD, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        raise RuntimeError(f"shipyard {' '.join(args)} failed:\n{proc.stderr.strip()[-3000:]}")
    return proc.stdout


def routes_of(env: dict[str, str], cwd: Path, deployment: str) -> dict[str, Any]:
    """``deploy status --json``: the deployment's state and its routes by name."""
    status = json.loads(shipyard(env, cwd, "deploy", "status", deployment, "--json"))
    return {"state": status["state"], "routes": {r["name"]: r for r in status["routes"]}}


def counts_between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Result]:
    """Per route, what was counted between two ``routes_of`` snapshots."""
    delta: dict[str, Result] = {}
    for name, now in after["routes"].items():
        was = before["routes"].get(name, {})
        entry = {"mode": now["mode"], "weight": now["weight"], "version": now["version"]}
        for key in ("requests", "errors", "compared", "mirrored_dropped"):
            entry[key] = now.get(key, 0) - was.get(key, 0)
        agreed = [round((s.get("agreement") or 0) * s.get("compared", 0)) for s in (was, now)]
        entry["agreements"] = agreed[1] - agreed[0]
        delta[name] = entry
    return delta


def history(env: dict[str, str], cwd: Path, deployment: str, after: int = 0) -> list[Result]:
    """The deployment's events after ``after`` (``deploy history --json``), oldest first."""
    events = json.loads(shipyard(env, cwd, "deploy", "history", deployment, "--json"))
    keep = ("seq", "actor", "action", "reason", "details")
    return [{k: e[k] for k in keep} for e in sorted(events, key=lambda e: e["seq"])
            if e["seq"] > after]  # fmt: skip


def deploy(env: dict[str, str], cwd: Path, label: str, round_: int) -> str | None:
    """Create the deployment ``label`` serves in round ``round_`` (fresh: no earlier counts)."""
    base = DEPLOYMENTS.get(label)
    if base is None:
        return None
    name = base if round_ == 0 else f"{base}-{round_ + 1}"
    shipyard(env, cwd, "deploy", "create", name, "--model", "lr@1")
    if label.startswith("canary"):  # 90/10 for the whole run: an hour before the next step
        canary = ["--model", "lr@2", "--steps", "10,100", "--interval", "1h"]
        shipyard(env, cwd, "deploy", "canary", name, *canary)
    elif label == "shadow":
        shipyard(env, cwd, "deploy", "shadow", name, "--model", "lr@2", "--percent", "100")
    return name


def server_for(label: str, deployment: str | None, info: dict[str, Any]) -> Server:
    cmd = [*SHIPYARD, "serve", "--port", str(PORT), "--workers", "1"]
    if deployment is None:
        cmd.append("lr@1")
    else:
        cmd += ["--deployment", deployment]
    if label == "canary_nc":
        cmd.append("--no-controller")
    return Server(label, "v2", {"all": cmd}, info["env"], info["home"], {"lr": PORT})


def source_state() -> str:
    """The commit and a digest of uncommitted changes under src/ (others may edit meanwhile)."""
    import hashlib

    def git(*args: str) -> str:
        cmd = ["git", "-C", str(ROOT), *args]
        return subprocess.run(cmd, capture_output=True, text=True).stdout

    diff = git("diff", "HEAD", "--", "src")
    dirty = f"+{hashlib.sha256(diff.encode()).hexdigest()[:8]}" if diff else ""
    return git("rev-parse", "--short", "HEAD").strip() + dirty


def setup(tmp: Path) -> dict[str, Any]:
    """A fresh workspace with lr@1 and lr@2 registered; the row to send."""
    home = tmp / "shipyard"
    home.mkdir()
    env = clean_env(SHIPYARD_HOME=str(home / ".shipyard"))
    shipyard(env, home, "init")
    print("training + registering lr@1 (C=1) and lr@2 (C=0.5) ...", flush=True)
    info: dict[str, Any] = run_json([str(PROJECT_PYTHON), "-c", SETUP], env, home)
    info["env"], info["home"] = env, home
    return info


def port_taken() -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", PORT)) == 0


def alive(server: Server) -> None:
    """Fail unless our server is still running (else another one may have answered)."""
    if any(p.poll() is not None for p in server.procs):
        tail = "".join(p.read_text(errors="replace")[-3000:] for p in server.logs)
        raise RuntimeError(f"{server.label}: the server exited:\n{tail}")


def wait_ready(server: Server, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        alive(server)
        try:
            with urllib.request.urlopen(server.ready_url("lr"), timeout=2) as r:  # noqa: S310
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.label}: not ready after {timeout:.0f} s")
        time.sleep(0.5)


def settled(env: dict[str, str], cwd: Path, deployment: str) -> dict[str, Any]:
    """The deployment's counts once the server has stored them (it does so every second) and
    the shadow's queue has drained."""
    time.sleep(2.5)
    return routes_of(env, cwd, deployment)


def bench_server(
    label: str,
    info: dict[str, Any],
    args: argparse.Namespace,
    tmp: Path,
    tool: str,
    round_: int,
) -> list[Result]:
    env, home = info["env"], info["home"]
    deployment = deploy(env, home, label, round_)
    server = server_for(label, deployment, info)
    payload = body("v2", info["columns"], info["row"])
    script = lua(tmp / "v2.lua", payload)
    url = server.url("lr")
    rows: list[Result] = []
    seen = max((e["seq"] for e in history(env, home, deployment)), default=0) if deployment else 0
    if port_taken():
        raise RuntimeError(f"something else listens on 127.0.0.1:{PORT}: stop it first")
    server.start(tmp / f"{server.label}-{round_}")
    try:
        wait_ready(server)
        got = predicted_class(url, payload)
        info.setdefault("class", got)
        if got != info["class"]:
            raise RuntimeError(f"{server.label}: class {got} != {info['class']}")
        for c in CONCURRENCY:
            wrk(tool, url, script, c, args.warmup)
            before = settled(env, home, deployment) if deployment else None
            result = wrk(tool, url, script, c, args.duration)
            alive(server)
            result |= {"server": label, "c": c, "round": round_, "deployment": deployment}
            if deployment and before is not None:
                after = settled(env, home, deployment)
                result["state"] = after["state"]
                result["routes"] = counts_between(before, after)
                result["events"] = history(env, home, deployment, seen)
                seen = max((e["seq"] for e in result["events"]), default=seen)
            print(
                f"  {server.label:7} c{c:<3} {result['rps']:8.0f} req/s  "
                f"p50 {result['p50'] * 1e3:6.2f} ms  p99 {result['p99'] * 1e3:6.2f} ms  "
                f"errors {result['errors']}  load1 {result['load1']:.2f}",
                flush=True,
            )
            for line in route_lines(result):
                print(f"    {line}", flush=True)
            rows.append(result)
    finally:
        server.stop()
    return rows


def route_lines(result: Result) -> list[str]:
    """What the deployment counted during one timed run, in words."""
    routes = result.get("routes")
    if not routes:
        return []
    live = {n: r for n, r in routes.items() if r["mode"] == "live"}
    shadows = {n: r for n, r in routes.items() if r["mode"] == "shadow"}
    answered = sum(r["requests"] for r in live.values())
    lines = [
        f"{result['server']} c{result['c']} event: {e['action']} by {e['actor']}: {e['reason']}"
        for e in result.get("events", ())
    ]
    if len(live) > 1:
        shares = ", ".join(
            f"{n} (v{r['version']}, weight {r['weight']:g} %) {r['requests']:,} = "
            f"{100 * r['requests'] / max(answered, 1):.1f} %"
            for n, r in live.items()
        )
        lines.append(f"{result['server']} c{result['c']} routes: {shares} [{result['state']}]")
    for n, r in shadows.items():
        agreement = r["agreements"] / r["compared"] if r["compared"] else 0.0
        lines.append(
            f"{result['server']} c{result['c']} route {n!r}: live requests {answered:,}; "
            f"compared {r['compared']:,} ({100 * r['compared'] / max(answered, 1):.1f} %), "
            f"agreement {100 * agreement:.1f} %, mirrored_dropped {r['mirrored_dropped']:,} "
            f"({100 * r['mirrored_dropped'] / max(answered, 1):.1f} %)"
        )
    return lines


def held(run: Result) -> bool:
    """Whether the deployment kept its routes through the run (no controller decision)."""
    return run.get("state", EXPECTED_STATE.get(run["server"])) == EXPECTED_STATE.get(run["server"])


def summary(rows: list[Result], server: str, c: int) -> Result | None:
    """Medians over the rounds where the deployment held; throughput and p99 against the
    single route of the same round (paired, so a slow round moves both)."""
    runs = [r for r in rows if r["server"] == server and r["c"] == c]
    if not runs:
        return None
    single = {r["round"]: r for r in rows if r["server"] == "single" and r["c"] == c}
    valid = [r for r in runs if held(r)]
    states = ", ".join(
        f"{state} {sum(r.get('state') == state for r in runs)}/{len(runs)}"
        for state in dict.fromkeys(r["state"] for r in runs if "state" in r)
    )
    out: Result = {"server": server, "c": c, "state": states or "-", "held": len(valid)}
    out["rounds"] = len(runs)
    if not valid:
        return out
    for key in ("rps", "p50", "p99"):
        out[key] = statistics.median(r[key] for r in valid)
    out["errors"] = sum(r["errors"] for r in runs)
    paired = [(r, single[r["round"]]) for r in valid if r["round"] in single]
    if server != "single" and paired:
        out["rps_ratios"] = [r["rps"] / b["rps"] for r, b in paired]
        out["p99_ratios"] = [r["p99"] / b["p99"] for r, b in paired]
        out["throughput"] = statistics.median(out["rps_ratios"])
        out["p99_ratio"] = statistics.median(out["p99_ratios"])
        out["ok"] = (
            out["throughput"] >= MIN_THROUGHPUT
            and out["p99_ratio"] <= MAX_P99
            and out["errors"] == 0
        )
    return out


def report(rows: list[Result]) -> tuple[list[str], list[Result]]:
    lines = [
        "| server | conn. | req/s | p50 ms | p99 ms | errors | deployment after the run "
        "| req/s vs single | p99 vs single | target |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    verdicts: list[Result] = []
    for c in CONCURRENCY:
        for server in (*SERVERS, *EXTRAS):
            m = summary(rows, server, c)
            if m is None:
                continue
            if "rps" not in m:
                lines.append(
                    f"| {server} | {c} | - | - | - | - | {m['state']} | - | - | "
                    "not measured: the split never held |"
                )
                continue
            cells = ["-", "-", "-"]
            if "throughput" in m:
                each = "/".join(f"{x:.2f}" for x in m["rps_ratios"])
                each_p99 = "/".join(f"{x:.2f}" for x in m["p99_ratios"])
                many = len(m["rps_ratios"]) > 1
                cells = [
                    f"{m['throughput']:.2f}" + (f" ({each})" if many else ""),
                    f"{m['p99_ratio']:.2f}" + (f" ({each_p99})" if many else ""),
                    "PASS" if m["ok"] else "MISS",
                ]
                verdicts.append(m)
            lines.append(
                f"| {server} | {c} | {m['rps']:,.0f} | {m['p50'] * 1e3:.2f} "
                f"| {m['p99'] * 1e3:.2f} | {m['errors']} | {m['state']} | "
                + " | ".join(cells)
                + " |"
            )
    verdict_text = "; ".join(
        f"{v['server']} c{v['c']}: {'PASS' if v['ok'] else 'MISS'} "
        f"({v['throughput']:.0%} of the req/s, p99 {v['p99_ratio']:.2f}x"
        + (f", {v['held']} of {v['rounds']} rounds held" if v["held"] < v["rounds"] else "")
        + ")"
        for v in verdicts
    )
    target = f"target (>= {MIN_THROUGHPUT:.0%} of single's req/s, p99 <= {MAX_P99}x): "
    lines += [
        "",
        "req/s, p50, p99: medians over the rounds in which the deployment kept its routes; "
        "ratios: median of each round's ratio to that round's single route (each round in "
        "brackets).",
        "",
        target + verdict_text,
        "",
    ]
    lines += [f"round {r['round'] + 1}: {line}" for r in rows for line in route_lines(r)]
    return lines, verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15, help="seconds per timed run")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per run")
    parser.add_argument(
        "--rounds", type=int, default=1, help="run every server this many times (medians)"
    )
    parser.add_argument(
        "--max-load", type=float, default=1.0, help="wait for the 1-min load to drop below this"
    )
    parser.add_argument(
        "--max-wait", type=float, default=300, help="seconds to wait for --max-load at most"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=(*SERVERS, *EXTRAS),
        help="servers to run (default: all but one_route, a deployment of lr@1 alone)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also save results here")
    args = parser.parse_args()
    # a SIGTERM unwinds like Ctrl-C: each server is stopped, the temp workspace removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    tool = ensure_wrk()
    rows: list[Result] = []
    failed = ""
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as name:
        tmp = Path(name)
        info = setup(tmp)
        versions = {
            "shipyard": version_of(PROJECT_PYTHON, "shipyard-mlops"),
            "scikit-learn": version_of(PROJECT_PYTHON, "scikit-learn"),
            "wrk": subprocess.run([tool, "-v"], capture_output=True, text=True)
            .stdout.split("[")[0]
            .strip(),
        }
        machine = f"{platform.platform()}, {os.cpu_count()} CPUs"
        versions["source"] = source_state()
        print(json.dumps(versions), "on", machine, flush=True)
        try:
            for round_ in range(args.rounds):
                for label in args.only or SERVERS:
                    load = wait_quiet(args.max_load, args.max_wait)
                    print(f"{label} (round {round_ + 1}, load average {load:.2f}):", flush=True)
                    rows += bench_server(label, info, args, tmp, tool, round_)
        except Exception as exc:  # report what was measured before it; exit non-zero
            failed = f"{label} round {round_ + 1}: {type(exc).__name__}: {exc}"
            print(f"FAILED {failed}", flush=True)
    lines, verdicts = report(rows)
    if failed:
        lines += ["", f"INCOMPLETE: the run stopped at {failed}"]
    if (now := source_state()) != versions["source"]:
        changed = f"{versions['source']} -> {now}"
        lines += ["", f"WARNING: src/ changed during the run ({changed}): later servers ran it"]
    print("\n" + "\n".join(lines))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "versions": versions,
                    "machine": machine,
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "runs": rows,
                    "verdicts": verdicts,
                    "report": lines,
                    "failed": failed,
                },
                indent=2,
            )
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
