"""``shipyard automate``: the continuous-training loop (``run``, ``tick``), checks, events."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli._base import console, err_console, format_time, home_from, print_json
from shipyard.entities import AutomationEvent, AutomationState
from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    from shipyard.automation import Automator, TickReport

__all__ = ["app"]

log = logging.getLogger(__name__)

app = typer.Typer(
    help="Continuous training: triggers start a pipeline, its model is gated, approved and "
    "rolled out.",
    no_args_is_help=True,
)

_JSON = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
_POLICY = Annotated[
    Path, typer.Option("--policy", "-p", help="The automation policy (automation.yaml).")
]
_LEASE = Annotated[
    str,
    typer.Option("--lease", help="How long a pass holds an automation without renewing it."),
]
_EXECUTOR = Annotated[
    str,
    typer.Option("--executor", help="Pipeline executor: inprocess, processes or ray."),
]

_STYLE = {
    AutomationState.PROMOTED: "green",
    AutomationState.REJECTED: "red",
    AutomationState.FAILED: "bold red",
    AutomationState.SKIPPED: "dim",
    AutomationState.WAITING: "yellow",
}


def _automator(
    ctx: typer.Context, policy: Path, lease: str, executor: str, *, echo: bool
) -> Automator:
    from shipyard.automation import Automator, load_policy
    from shipyard.monitoring.windows import parse_window

    seconds = parse_window(lease).total_seconds()

    def show(event: AutomationEvent) -> None:
        style = _STYLE.get(event.state, "cyan")
        console.print(
            f"[{style}]{event.state.value}[/] {escape(event.automation)} "
            f"{event.event_id[:12]}: {escape(event.reason)}"
        )

    return Automator(
        load_policy(policy),
        home=home_from(ctx),
        lease_seconds=seconds,
        executor=executor,
        echo=echo,
        on_change=None if not echo else show,
    )


def _report(report: TickReport, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "detected": [e.to_dict() for e in report.detected],
                "changed": [e.to_dict() for e in report.changed],
                "busy": report.busy,
                "errors": report.errors,
            }
        )
        return
    for automation in report.busy:
        console.print(f"[dim]{escape(automation)}: another automator is working on it[/]")
    if not report.detected and not report.changed and not report.busy:
        console.print("Nothing to do: no new trigger event, nothing in progress moved.")


@app.command("tick")
def tick(
    ctx: typer.Context,
    policy: _POLICY = Path("automation.yaml"),
    lease: _LEASE = "60s",
    executor: _EXECUTOR = "inprocess",
    as_json: _JSON = False,
) -> None:
    """One pass: detect trigger events, move the event in progress on (for cron or a CI job).

    Idempotent: one trigger event starts one pipeline run, even with two automators at once;
    a pass after a crash resumes. Exit 1 when an automation could not be evaluated.
    """
    automator = _automator(ctx, policy, lease, executor, echo=not as_json)
    report = automator.tick()
    _report(report, as_json)
    for error in report.errors:
        err_console.print(f"[bold red]error:[/] {escape(error)}")
    if report.errors:
        raise typer.Exit(code=1)


@app.command("run")
def run(
    ctx: typer.Context,
    policy: _POLICY = Path("automation.yaml"),
    interval: Annotated[str, typer.Option("--interval", help="Time between passes.")] = "30s",
    lease: _LEASE = "60s",
    executor: _EXECUTOR = "inprocess",
) -> None:
    """Pass after pass until interrupted (Ctrl-C or SIGTERM ends it after the current pass)."""
    from shipyard.monitoring.windows import parse_window

    seconds = parse_window(interval).total_seconds()
    automator = _automator(ctx, policy, lease, executor, echo=True)
    automator.check()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    names = ", ".join(a.name for a in automator.policy.automations)
    console.print(f"Automating {escape(names)}: a pass every {interval} (Ctrl-C stops)")
    try:
        while not stop.is_set():
            try:
                report = automator.tick()
            except Exception as exc:  # a long-running loop reports a bad pass and goes on
                log.exception("the automation pass failed")
                err_console.print(f"[bold red]error:[/] this pass failed: {escape(str(exc))}")
            else:
                for error in report.errors:
                    err_console.print(f"[bold red]error:[/] {escape(error)}")
            stop.wait(seconds)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        pass
    console.print("Stopped.")


@app.command("check")
def check(ctx: typer.Context, policy: _POLICY = Path("automation.yaml")) -> None:
    """Check the policy: the YAML, the cron expressions, and that every pipeline, dataset and
    deployment it names exists."""
    from shipyard.automation import Automator, load_policy

    parsed = load_policy(policy)
    problems = Automator(parsed, home=home_from(ctx)).problems()
    if problems:
        raise InvalidArgumentError("\n".join(problems))
    for a in parsed.automations:
        triggers = ", ".join(f"{t.kind} {t.name!r}" for t in a.triggers)
        console.print(f"[green]ok[/] {escape(a.name)}: {escape(a.pipeline)} on {escape(triggers)}")


def _event_dict(event: AutomationEvent) -> dict[str, Any]:
    return event.to_dict()


@app.command("events")
def events(
    ctx: typer.Context,
    automation: Annotated[
        str | None, typer.Option("--automation", "-a", help="Only this automation.")
    ] = None,
    state: Annotated[
        str | None, typer.Option("--state", help="Only events in this state (e.g. rejected).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many.")] = 50,
    as_json: _JSON = False,
) -> None:
    """Trigger events, newest first: what fired, and what became of it."""
    from shipyard.tracking import open_workspace

    states = None
    if state is not None:
        try:
            states = [AutomationState(state)]
        except ValueError:
            known = ", ".join(s.value for s in AutomationState)
            raise InvalidArgumentError(f"unknown state {state!r}; known: {known}") from None
    found = open_workspace(home_from(ctx)).backend.list_automation_events(
        automation=automation, states=states, limit=limit
    )
    if not found:
        from shipyard.cli._output import print_empty

        what = "trigger events" + (f" of automation {automation}" if automation else "")
        print_empty(what + (f" in state {state}" if state else ""), as_json=as_json)
        return
    if as_json:
        print_json([_event_dict(e) for e in found])
        return
    table = Table(box=None, header_style="bold")
    for heading in ("event", "detected", "automation", "trigger", "state", "candidate", "reason"):
        table.add_column(heading, overflow="fold")
    for e in found:
        style = _STYLE.get(e.state, "cyan")
        table.add_row(
            e.event_id[:12],
            format_time(e.detected_at),
            escape(e.automation),
            escape(f"{e.kind}: {e.source}"),
            f"[{style}]{e.state.value}[/]",
            escape(e.candidate or "-"),
            escape(e.reason),
        )
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    event: Annotated[str, typer.Argument(help="A trigger event id (or a unique prefix).")],
    as_json: _JSON = False,
) -> None:
    """One trigger event and every transition it went through, with the numbers."""
    from shipyard.tracking import open_workspace

    backend = open_workspace(home_from(ctx)).backend
    found = backend.get_automation_event(event)
    history = backend.automation_log(found.event_id)
    if as_json:
        print_json({**_event_dict(found), "history": [h.to_dict() for h in history]})
        return
    console.print(
        f"[bold]{found.event_id}[/] {escape(found.automation)} · {escape(found.kind)}: "
        f"{escape(found.source)} · [{_STYLE.get(found.state, 'cyan')}]{found.state.value}[/]"
    )
    for label, value in (
        ("pipeline run", found.pipeline_run_id),
        ("candidate", found.candidate),
        ("deployment", found.deployment),
    ):
        if value:
            console.print(f"  {label}: {escape(value)}")
    table = Table(box=None, header_style="bold")
    for heading in ("at", "state", "by", "reason"):
        table.add_column(heading, overflow="fold")
    for h in history:
        table.add_row(format_time(h.at), h.state.value, escape(h.actor), escape(h.reason))
    console.print(table)
