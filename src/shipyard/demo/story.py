"""``shipyard demo``: a model's whole life on synthetic data, told as it happens.

Alice (a data scientist, the workspace's admin) versions customer data and trains the churn
model through a pipeline with a short tuning study; it is validated with fairness and gated;
Bob (an approver) approves it — four eyes; it goes live behind a real model server on
127.0.0.1; callers send traffic and, later, its true outcomes. Then the world changes: the
data drifts and the model degrades, monitoring fires an alert, and the automation policy
retrains on the new data, gates the candidate against the champion, waits for Bob's
approval, rolls it out as a canary judged on live accuracy, and promotes it.

Everything happens in a fresh workspace on the embedded default (SQLite and a local folder),
left behind for exploring with the ordinary commands.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from shipyard.demo.synthetic import FEATURES, GATE_POLICY_YAML, SENSITIVE, TARGET, make_customers
from shipyard.demo.traffic import Traffic, wait_until_ready
from shipyard.entities import AutomationEvent
from shipyard.errors import InvalidArgumentError, ShipyardError

if TYPE_CHECKING:
    from shipyard.automation import Automator

__all__ = ["DemoResult", "run_demo"]

MODEL = "churn"
DEPLOYMENT = "churn-prod"
WINDOW = "5s"
ROWS = 6_000
HOLDOUT_ROWS = 2_000

AUTOMATION_YAML = """\
# What retrains the churn model, and what a new version must pass to replace it.
automations:
  - name: retrain-churn
    pipeline: pipelines/train.py:train
    params: {trials: 6}
    model: churn
    triggers:
      - name: drift
        alert: {model: churn, rule: drift}        # monitoring's drift alert fired
      - name: accuracy
        performance: {model: churn, metric: accuracy, below: 0.7, window: 1h}
      - name: nightly
        schedule: "0 3 * * *"
    gate:                                         # shipyard validate ... --against champion
      data: customers-holdout@latest
      target: churned
      policy: gate.yaml
      sensitive: [gender]
    approval: review                              # four eyes: an approver must approve
    rollout:
      deployment: churn-prod
      canary:
        steps: [50, 100]
        interval: 4s
        min_requests: 60
        metric: accuracy                          # judged on live feedback labels
        min_labels: 30
        prediction_psi: null                      # retrained: meant to predict differently
    limits: {max_rejections: 3, period: 1d, backoff: 10m}
"""

MONITORS_YAML = """\
# The churn deployment's monitoring (shipyard monitor run --config monitors.yaml).
monitors:
  - model: churn
    window: 5s
    reference: customers@1
    rules:
      - name: drift
        metric: drift.share
        op: ">"
        threshold: 0.3
        severity: error
      - name: accuracy
        metric: performance.accuracy
        op: "<"
        threshold: 0.7
        severity: warning
"""


@dataclass(slots=True)
class DemoResult:
    """Where the demo left things and how long each stage took."""

    project: Path
    home: Path
    url: str
    timings: dict[str, float] = field(default_factory=dict)
    reports: dict[str, str] = field(default_factory=dict)
    server_pid: int | None = None
    alert_to_promotion_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": str(self.project),
            "home": str(self.home),
            "url": self.url,
            "timings": self.timings,
            "reports": self.reports,
            "server_pid": self.server_pid,
            "alert_to_promotion_s": self.alert_to_promotion_s,
        }


class _Story:
    """The narrator: numbered stages with their time, and a spinner while one runs."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.timings: dict[str, float] = {}
        self.number = 0

    @contextlib.contextmanager
    def stage(self, title: str, doing: str) -> Iterator[None]:
        self.number += 1
        self.console.print(f"\n[bold cyan]{self.number}. {title}[/]")
        start = time.perf_counter()
        with self.console.status(doing, spinner="dots"):
            yield
        took = time.perf_counter() - start
        self.timings[title] = round(took, 2)
        self.console.print(f"   [dim]({took:.1f} s)[/]")

    def say(self, text: str) -> None:
        self.console.print(f"   {text}", highlight=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _project(workspace: Path | None) -> Path:
    if workspace is None:
        return Path(tempfile.mkdtemp(prefix="shipyard-demo-"))
    workspace = workspace.resolve()
    if workspace.exists() and any(workspace.iterdir()):
        raise InvalidArgumentError(
            f"{workspace} is not empty: the demo needs a new or empty folder (or none, for a "
            "temporary one)"
        )
    workspace.mkdir(parents=True, exist_ok=True)
    return workspace


def _as(user: str) -> None:
    """Act as ``user`` from here on (the workspace's settings read SHIPYARD_USER)."""
    os.environ["SHIPYARD_USER"] = user


def _start_server(project: Path, home: Path, port: int, keep: bool) -> subprocess.Popen[bytes]:
    log = (home / "server.log").open("ab")
    env = {**os.environ, "SHIPYARD_HOME": str(home), "SHIPYARD_USER": "alice"}
    command = [
        sys.executable,
        "-c",
        "from shipyard.cli import main; main()",
        "serve",
        "--deployment",
        DEPLOYMENT,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return subprocess.Popen(  # noqa: S603 - our own CLI, no shell
        command,
        cwd=project,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=keep,  # a kept server outlives this terminal's Ctrl-C
    )


def _stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _floor(ts: datetime, seconds: int) -> datetime:
    return datetime.fromtimestamp(int(ts.timestamp()) // seconds * seconds, tz=UTC)


def run_demo(
    workspace: Path | None = None,
    *,
    keep_serving: bool = False,
    port: int | None = None,
    console: Console | None = None,
) -> DemoResult:
    """Tell the whole story; return where it left things.

    Args:
        workspace: an empty or new folder for the project (default: a new temporary one).
        keep_serving: leave the model server running at the end.
        port: the model server's port (default: a free one).
        console: where the story is told.
    """
    _check_installed()
    console = console or Console()
    story = _Story(console)
    project = _project(workspace)
    home = project / ".shipyard"
    for key in ("SHIPYARD_STORE_URL", "SHIPYARD_ARTIFACTS_URL"):
        os.environ.pop(key, None)  # the embedded default: SQLite and a local folder
    # The model server runs beside the training on two cores: OpenMP's spinning threads
    # then wait on each other (one tree-boosting fit took 10 s instead of 0.2 s).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ["SHIPYARD_HOME"] = str(home)
    port = port or _free_port()
    result = DemoResult(project, home, f"http://127.0.0.1:{port}")
    started = time.perf_counter()
    server: subprocess.Popen[bytes] | None = None
    try:
        _set_up(story, project, home)
        _first_model(story, project, home, result)
        with story.stage("Serve", f"starting the model server on {result.url}"):
            from shipyard.deploy.service import Deployments
            from shipyard.tracking import open_workspace

            _as("alice")
            deployments = Deployments(open_workspace(home).backend, "alice", home=home)
            deployments.create(DEPLOYMENT, f"{MODEL}@champion", reason="first release")
            server = _start_server(project, home, port, keep_serving)
            wait_until_ready("127.0.0.1", port)
            story.say(
                f"deployment [bold]{DEPLOYMENT}[/] serves {MODEL}@champion on {result.url} "
                "(Open Inference Protocol, MLflow /invocations, KServe v1)"
            )
            automator = _automator(story, project, home)
        traffic = Traffic("127.0.0.1", port, MODEL, FEATURES, TARGET)
        alert_at = _traffic_and_drift(story, traffic, home, result)
        _retrain(story, home, traffic, result, alert_at, automator)
        _finish(story, home, result)
    finally:
        if server is not None:
            if keep_serving and server.poll() is None:
                result.server_pid = server.pid
            else:
                _stop_server(server)
    result.timings = {**story.timings, "total": round(time.perf_counter() - started, 2)}
    (home / "demo.json").write_text(json.dumps(result.to_dict(), indent=2))
    _epilogue(console, result, keep_serving)
    return result


_NEEDED = ("sklearn", "skops", "optuna", "fairlearn", "starlette", "uvicorn", "yaml", "scipy")


def _check_installed() -> None:
    """Fail before anything is written when a part the demo uses is not installed."""
    from importlib.util import find_spec

    missing = [name for name in _NEEDED if find_spec(name) is None]
    if missing:
        raise InvalidArgumentError(
            f"shipyard demo needs {', '.join(missing)}: pip install 'shipyard-mlops[demo]'"
        )


def _set_up(story: _Story, project: Path, home: Path) -> None:
    from importlib import resources

    from shipyard import data
    from shipyard.config import init_workspace
    from shipyard.registry import Registry
    from shipyard.tracking import open_workspace

    with story.stage("Workspace and people", "creating the workspace"):
        _as("alice")
        init_workspace(project)
        backend = open_workspace(home).backend
        registry = Registry(backend, "alice")
        registry.bootstrap_admin()
        registry.set_user("bob", "approver")
        registry.set_user("automation", "member")
        (project / "pipelines").mkdir()
        train = resources.files("shipyard.demo").joinpath("train.py").read_text("utf-8")
        (project / "pipelines" / "train.py").write_text(train, encoding="utf-8")
        (project / "gate.yaml").write_text(GATE_POLICY_YAML, encoding="utf-8")
        (project / "monitors.yaml").write_text(MONITORS_YAML, encoding="utf-8")
        (project / "automation.yaml").write_text(AUTOMATION_YAML, encoding="utf-8")
        story.say(f"workspace {home} (SQLite store, local artifact folder)")
        story.say(
            "alice (data scientist, admin), bob (approver), automation (runs the retraining loop)"
        )
    with story.stage("Data", "generating and versioning customer data"):
        customers = data.add(make_customers(ROWS, seed=1), name="customers")
        holdout = data.add(make_customers(HOLDOUT_ROWS, seed=2), name="customers-holdout")
        story.say(
            f"{customers.version.ref}: {ROWS:,} customers — numeric, categorical, "
            f"the sensitive attribute '{SENSITIVE}', and whether they churned "
            f"(digest {customers.version.digest[:12]}, profiled)"
        )
        story.say(f"{holdout.version.ref}: {HOLDOUT_ROWS:,} held-out customers for the gate")


def _first_model(story: _Story, project: Path, home: Path, result: DemoResult) -> None:
    from shipyard.automation.gate import run_gate
    from shipyard.automation.policy import Gate
    from shipyard.pipelines.loading import load_pipeline
    from shipyard.pipelines.runner import run_pipeline
    from shipyard.registry import Registry
    from shipyard.tracking import open_workspace

    with story.stage("Train", "running pipelines/train.py (split, tune, fit, register)"):
        _as("alice")
        pipe, source = load_pipeline(f"{project / 'pipelines' / 'train.py'}:train")
        run = run_pipeline(pipe, {"trials": 6}, home=home, source=source, echo=False)
        backend = open_workspace(home).backend
        version = Registry(backend, "alice").resolve(f"{MODEL}@latest")
        story.say(
            f"pipeline run {run.run_id[:12]}: {len(run.steps)} steps; a 6-trial tuning study; "
            f"registered [bold]{version.ref}[/] by alice"
        )
    with story.stage("Validate and gate", f"validating {version.ref} with fairness"):
        gate = Gate(
            data="customers-holdout@latest",
            target=TARGET,
            policy=project / "gate.yaml",
            sensitive=(SENSITIVE,),
        )
        folder = project / "reports" / f"validation-{MODEL}-{version.version}"
        outcome = run_gate(
            open_workspace(home),
            gate,
            version.ref,
            model=MODEL,
            event_id="initial",
            folder=folder,
        )
        summary = outcome.summary
        gaps = summary["fairness"].get(SENSITIVE, {})
        story.say(
            f"roc_auc {summary['metrics']['roc_auc']:.3f}, accuracy "
            f"{summary['metrics']['accuracy']:.3f} on {summary['data']}; fairness by {SENSITIVE}: "
            f"demographic parity gap {gaps.get('demographic_parity_difference', 0):.3f}"
        )
        if not outcome.passed:
            raise ShipyardError(f"the first model failed its gate: {summary['failures']}")
        story.say("gate [green]passed[/] (gate.yaml)")
        result.reports["validation"] = summary["report_html"]
    with story.stage("Review and release", "four eyes: alice asks, bob approves"):
        alice = Registry(backend, "alice")
        alice.set_governed(MODEL)
        alice.request_review(version.ref, comment="first churn model; gate passed")
        Registry(backend, "bob").approve(version.ref, comment="validation and fairness look fine")
        alice.set_alias(version.ref, "champion")
        story.say(
            f"{MODEL} is governed; alice asked for review, [bold]bob approved[/] "
            f"{version.ref} (alice may not approve her own model); it is {MODEL}@champion"
        )
        result.reports["model_card"] = _model_card(home, version.ref, summary, project)


def _model_card(home: Path, ref: str, summary: dict[str, Any], project: Path) -> str:
    from shipyard.models import model_card
    from shipyard.registry import Registry
    from shipyard.tracking import open_workspace

    workspace = open_workspace(home)
    version = Registry(workspace.backend, "alice").resolve(ref)
    report = json.loads(Path(summary["report_json"]).read_text())
    card = model_card(
        version,
        backend=workspace.backend,
        artifacts=workspace.artifacts,
        validation=report,
        intended_use="Rank customers by their risk of churning, for retention offers.",
        limitations="Trained on synthetic data; not for decisions about real people.",
    )
    _, html = card.write(project / "reports" / f"model-card-{ref.replace('@', '-')}")
    return str(html)


def _traffic_and_drift(story: _Story, traffic: Traffic, home: Path, result: DemoResult) -> float:
    from shipyard.monitoring.alerts import load_monitors, run_monitor
    from shipyard.monitoring.report import render_report
    from shipyard.monitoring.windows import monitor_deployment
    from shipyard.tracking import open_workspace

    with story.stage("Traffic", "callers send requests, then the true outcomes"):
        begin = datetime.now(UTC)
        normal = traffic.send(make_customers(500, seed=10), rate=100)
        story.say(
            f"{normal.requests} requests answered by {MODEL}@1; feedback labels for each: "
            f"live accuracy {normal.accuracy or 0:.3f}"
        )
    with story.stage("The world changes", "prices rise, plans shift, customers behave anew"):
        drifted = traffic.send(make_customers(900, seed=11, drift=1.0), rate=100)
        story.say(
            f"{drifted.requests} requests from drifted customers: live accuracy falls to "
            f"[bold red]{drifted.accuracy or 0:.3f}[/]"
        )
        time.sleep(1.5)  # the server writes its log every second
    with story.stage("Monitor", "comparing traffic with the training data, window by window"):
        width = 5
        start = _floor(begin, width)
        end = _floor(datetime.now(UTC), width) + timedelta(seconds=width)
        config = load_monitors(home.parent / "monitors.yaml")
        monitored = monitor_deployment(
            MODEL, reference="customers@1", window=WINDOW, start=start, end=end, home=home
        )
        backend = open_workspace(home).backend
        outcome = run_monitor(backend, config.monitors[0], monitored.windows, send=False)
        firing = [e for e in outcome.events if e.state.value == "firing"]
        alert_time = time.perf_counter()
        for event in firing:
            story.say(
                f"[bold red]ALERT[/] {event.rule}: {event.message} (event {event.event_id[:12]})"
            )
        if not any(e.rule == "drift" for e in firing):
            raise ShipyardError("the drift alert did not fire; see the monitoring report")
        drift = monitored.drift
        columns = [c.column for c in drift.columns if c.drifted] if drift is not None else []
        story.say(f"drifted columns over the period: {', '.join(columns) or 'none'}")
        page = home.parent / "reports" / "monitoring.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(
            render_report(
                drift=drift,
                windows=monitored.windows,
                events=outcome.events,
                title=f"{MODEL}: traffic against customers@1",
            ),
            encoding="utf-8",
        )
        result.reports["monitoring"] = str(page)
    return alert_time


def _automator(story: _Story, project: Path, home: Path) -> Automator:
    """The continuous-training loop, armed now: its triggers fire for what happens next."""
    from shipyard.automation import Automator, load_policy

    def narrate(event: AutomationEvent) -> None:
        story.say(f"[magenta]automation[/] {event.state.value}: {event.reason}")

    _as("automation")
    automator = Automator(
        load_policy(project / "automation.yaml"), home=home, lease_seconds=60, on_change=narrate
    )
    automator.tick()
    _as("alice")
    names = ", ".join(f"{t.kind} {t.name!r}" for t in automator.policy.automations[0].triggers)
    story.say(f"automation retrain-churn armed (automation.yaml): triggers {names}")
    return automator


def _retrain(
    story: _Story,
    home: Path,
    traffic: Traffic,
    result: DemoResult,
    alert_at: float,
    automator: Automator,
) -> None:
    from shipyard import data
    from shipyard.entities import AutomationState
    from shipyard.registry import Registry
    from shipyard.tracking import open_workspace

    with story.stage("New data", "the labelled drifted customers become a dataset version"):
        _as("alice")
        fresh = data.add(make_customers(ROWS, seed=20, drift=1.0), name="customers")
        holdout = data.add(
            make_customers(HOLDOUT_ROWS, seed=21, drift=1.0), name="customers-holdout"
        )
        story.say(f"{fresh.version.ref} and {holdout.version.ref} (this quarter's customers)")

    with story.stage("Retrain", "the drift alert triggers the automation policy"):
        _as("automation")
        automator.tick()
        event = _event(home)
        if event.state is not AutomationState.AWAITING_APPROVAL:
            raise ShipyardError(f"retraining stopped at {event.state.value}: {event.reason}")
    candidate = str(event.candidate)
    with story.stage("Approve", f"bob reviews {candidate}"):
        backend = open_workspace(home).backend
        Registry(backend, "bob").approve(candidate, comment="gate passed against the champion")
        story.say(f"[bold]bob approved[/] {candidate} (the automation may not approve its own)")
    with story.stage("Canary", f"rolling out {candidate} on {DEPLOYMENT}, judged on live accuracy"):
        stop = threading.Event()
        rows = make_customers(6_000, seed=30, drift=1.0)
        sender = threading.Thread(target=lambda: traffic.send(rows, rate=60, stop=stop))
        sender.start()
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                automator.tick()
                event = _event(home)
                if event.state.finished:
                    break
                time.sleep(1.0)
        finally:
            stop.set()
            sender.join()
        if event.state is not AutomationState.PROMOTED:
            raise ShipyardError(f"the canary ended {event.state.value}: {event.reason}")
        result.alert_to_promotion_s = round(time.perf_counter() - alert_at, 2)
        result.reports["gate"] = str(event.gate.get("report_html", ""))


def _event(home: Path) -> Any:
    from shipyard.tracking import open_workspace

    events = open_workspace(home).backend.list_automation_events(limit=1)
    if not events:
        raise ShipyardError("the drift alert started no retraining")
    return events[0]


def _finish(story: _Story, home: Path, result: DemoResult) -> None:
    with story.stage("Why is this version in production?", "tracing its lineage"):
        lines = _why(home)
        for label, text in lines:
            story.say(f"[bold]{label}[/]: {text}")


def _why(home: Path) -> list[tuple[str, str]]:
    from shipyard.automation.why import explain_version
    from shipyard.tracking import open_workspace

    explained = explain_version(open_workspace(home).backend, f"{MODEL}@champion")
    return list(explained.lines)


def _epilogue(console: Console, result: DemoResult, keep_serving: bool) -> None:
    console.print("\n[bold green]The loop is closed.[/]")
    for name, path in result.reports.items():
        if path:
            console.print(f"   {name} report: {path}")
    total = result.timings.get("total", 0.0)
    if result.alert_to_promotion_s is not None:
        console.print(
            f"   {total:.0f} s in all; {result.alert_to_promotion_s:.0f} s from the alert to "
            "the promoted canary"
        )
    if keep_serving and result.server_pid is not None:
        console.print(
            f"   the model server is still running on {result.url} (pid {result.server_pid}; "
            f"stop it with `kill {result.server_pid}`)"
        )
    else:
        console.print("   the model server was stopped")
    console.print(
        f"\nExplore the workspace:  cd {result.project}\n"
        "   shipyard runs ls            shipyard models versions churn\n"
        "   shipyard deploy history churn-prod    shipyard automate events\n"
        "   shipyard models why churn@champion    shipyard lineage churn@champion\n"
        "   shipyard server   then open http://127.0.0.1:5000/ (the web UI)"
    )
