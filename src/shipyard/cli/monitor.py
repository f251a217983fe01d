"""``shipyard monitor``: drift, reports, alert rules, events and a Prometheus exporter."""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli._base import console, err_console, home_from, print_json
from shipyard.errors import InvalidArgumentError, ShipyardError

if TYPE_CHECKING:
    from shipyard.entities.data import Finding
    from shipyard.entities.monitoring import AlertEvent, DriftReport, WindowResult
    from shipyard.monitoring.alerts import Monitor
    from shipyard.monitoring.windows import DeploymentMonitoring
    from shipyard.store.backend import Backend

__all__ = ["app"]

app = typer.Typer(
    help="Drift, data quality, performance and health of data and deployments; alerts.",
    no_args_is_help=True,
)

_JSON = Annotated[bool, typer.Option("--json", help="Print the whole result as JSON.")]
_REFERENCE = Annotated[
    str,
    typer.Option(
        "--reference",
        "-r",
        help="What to compare against: a dataset version (NAME@V, dataset:NAME@V), a model "
        "version (model:NAME@ALIAS: the data its training run read) or a CSV/Parquet path.",
    ),
]
_CURRENT_HELP = (
    "What to check: a CSV/Parquet path, a dataset version NAME@V, or a deployment "
    "(the served model's name, or deployment:NAME) whose prediction log is read."
)
_WINDOW = Annotated[
    str, typer.Option("--window", "-w", help="Window length for a deployment: 15m, 1h, 1d.")
]
_SINCE = Annotated[
    datetime | None, typer.Option("--since", help="Start of the period (UTC), deployments.")
]
_UNTIL = Annotated[
    datetime | None, typer.Option("--until", help="End of the period (UTC, excluded).")
]
_CONFIG = Annotated[
    Path, typer.Option("--config", "-c", help="The monitors file (rules and webhooks).")
]


def _deployment(current: str) -> str | None:
    """The deployment ``current`` names, or None when it names a table (a path, even a
    mistyped one, or a dataset version)."""
    from shipyard.data.formats import table_format

    if current.startswith("deployment:"):
        return current.removeprefix("deployment:")
    if any(c in current for c in "@:/") or table_format(current) or Path(current).exists():
        return None
    return current


def _pairs(values: list[str] | None, option: str, number: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values or []:
        column, sep, value = item.partition("=")
        if not sep or not column or not value:
            raise InvalidArgumentError(f"{option} takes COLUMN=VALUE, not {item!r}")
        if number:
            try:
                out[column] = float(value)
            except ValueError:
                raise InvalidArgumentError(
                    f"{option} {item!r}: {value!r} is not a number"
                ) from None
        else:
            out[column] = value
    return out


def _drift_options(
    columns: str | None,
    tests: list[str] | None,
    thresholds: list[str] | None,
    alpha: float,
    correction: str,
    share_threshold: float,
    multivariate: bool,
) -> dict[str, Any]:
    return {
        "columns": [c.strip() for c in columns.split(",") if c.strip()] if columns else None,
        "tests": _pairs(tests, "--test", number=False) or None,
        "thresholds": _pairs(thresholds, "--threshold", number=True) or None,
        "alpha": None if alpha <= 0 else alpha,
        "correction": correction,
        "share_threshold": share_threshold,
        "multivariate": multivariate,
    }


def _print_drift(report: DriftReport) -> None:
    verdict = "[bold red]DRIFT[/]" if report.drifted else "[green]no dataset drift[/]"
    console.print(
        f"{verdict}: {len(report.drifted_columns)} of {len(report.columns)} column(s) drifted "
        f"(share {report.share_drifted:.0%}, threshold {report.share_threshold:.0%}); "
        f"{report.reference_rows:,} reference vs {report.current_rows:,} current rows; "
        f"{escape(report.correction)} correction"
    )
    table = Table(box=None, header_style="bold")
    for heading in ("column", "kind", "test", "p (adj.)", "distance", "threshold", "drifted"):
        table.add_column(heading, justify="right" if heading[0] in "pdt" else "left")
    rows = [*report.columns] + ([report.prediction] if report.prediction is not None else [])
    rows.sort(key=lambda c: (not c.drifted, -(c.distance or 0.0)))
    for col in rows:
        name = col.column + (" (prediction)" if col is report.prediction else "")
        p = "-" if col.adjusted_p_value is None else f"{col.adjusted_p_value:.3g}"
        distance = "-" if col.distance is None else f"{col.distance:.4f}"
        table.add_row(
            escape(name),
            col.kind,
            col.test,
            p,
            f"{distance} {col.distance_metric}",
            f"{col.threshold:g}",
            "[bold red]yes[/]" if col.drifted else "no",
        )
    console.print(table)
    if report.multivariate:
        console.print(f"multivariate: {escape(str(report.multivariate))}")


def _print_findings(findings: tuple[Finding, ...]) -> None:
    """One line per finding, not a table: a table cut to the width of a pipe would cut the
    message, which says what to do."""
    if not findings:
        console.print("[green]data quality: no findings[/]")
        return
    errors = sum(f.severity.value == "error" for f in findings)
    console.print(f"[bold]data quality[/]: {len(findings)} finding(s), {errors} error(s)")
    styles = {"error": "bold red", "warning": "yellow"}
    for f in findings:
        severity = f.severity.value
        where = f" {escape(f.column)}" if f.column else ""
        console.print(
            f"[{styles.get(severity, 'dim')}]{severity}[/] {f.check}{where}: {escape(f.message)}"
        )


def _print_windows(windows: tuple[WindowResult, ...]) -> None:
    table = Table(box=None, header_style="bold")
    for heading in ("window start", "rows", "drift share", "quality", "performance", "health"):
        table.add_column(heading)
    for w in windows:
        metrics = w.metrics()
        perf = ", ".join(
            f"{k.split('.', 1)[1]} {v:.3f}"
            for k, v in metrics.items()
            if k.startswith(("performance.accuracy", "performance.rmse"))
        )
        estimated = metrics.get("estimated.accuracy")
        if estimated is not None:
            perf += f"{', ' if perf else ''}est. accuracy {estimated:.3f}"
        health = (
            f"{w.health.requests} req, {w.health.error_rate:.1%} errors"
            if w.health is not None
            else "-"
        )
        share = "-" if w.drift is None else f"{w.drift.share_drifted:.0%}"
        if w.drift is not None and w.drift.drifted:
            share = f"[bold red]{share}[/]"
        issues = int(metrics.get("quality.errors", 0) + metrics.get("quality.warnings", 0))
        table.add_row(
            w.start.strftime("%Y-%m-%d %H:%M"),
            f"{w.rows:,}",
            share,
            f"{issues} finding(s)" if issues else "ok",
            perf or "-",
            health,
        )
    console.print(table)


def _monitor_deployment(
    ctx: typer.Context,
    model: str,
    reference: str,
    window: str,
    since: datetime | None,
    until: datetime | None,
    options: dict[str, Any],
) -> DeploymentMonitoring:
    from shipyard.monitoring.windows import monitor_deployment

    columns = options.pop("columns")
    with console.status(f"Reading the prediction log of {escape(model)} ..."):
        return monitor_deployment(
            model,
            reference=reference,
            window=window,
            start=since,
            end=until,
            home=home_from(ctx),
            columns=columns,
            drift_options=options,
        )


def _table_side(ctx: typer.Context, named: str, profile_only: bool = False) -> tuple[Any, str]:
    """What :func:`compare` takes for one side, and its label. A path is passed as it is:
    compare reads each column it compares once, and nothing else (no profile, no copy)."""
    from shipyard.monitoring.windows import resolve_reference

    if not profile_only and Path(named).exists():
        return named, named
    found = resolve_reference(named, home=home_from(ctx), load=not profile_only)
    return found.profile if profile_only or found.data is None else found.data, found.label


def _compare_tables(
    ctx: typer.Context,
    reference: str,
    current: str,
    options: dict[str, Any],
    prediction: str | None,
    profile_only: bool = False,
    null_tolerance: float | None = None,
) -> DriftReport:
    from shipyard.entities.data import DatasetProfile
    from shipyard.monitoring.drift import compare

    ref, ref_label = _table_side(ctx, reference, profile_only)
    cur, cur_label = _table_side(ctx, current)
    if isinstance(cur, DatasetProfile):  # pragma: no cover - a named table always has rows
        raise InvalidArgumentError(f"{current} has no rows to compare")
    if null_tolerance is not None:
        options = {**options, "null_share_tolerance": null_tolerance}
    with console.status("Comparing distributions ..."):
        return compare(
            ref,
            cur,
            prediction_column=prediction,
            reference_label=ref_label,
            current_label=cur_label,
            **options,
        )


@app.command("drift")
def drift(
    ctx: typer.Context,
    reference: _REFERENCE,
    current: Annotated[str, typer.Option("--current", help=_CURRENT_HELP)],
    window: _WINDOW = "1h",
    since: _SINCE = None,
    until: _UNTIL = None,
    columns: Annotated[
        str | None, typer.Option("--columns", help="Comma-separated columns (default: all).")
    ] = None,
    tests: Annotated[
        list[str] | None,
        typer.Option(
            "--test",
            help="COLUMN=TEST: ks, chi2, proportion, psi, wasserstein, "
            "jensen_shannon. Repeat per column.",
        ),
    ] = None,
    thresholds: Annotated[
        list[str] | None,
        typer.Option("--threshold", help="COLUMN=DISTANCE at which it counts as drifted."),
    ] = None,
    alpha: Annotated[
        float, typer.Option("--alpha", help="Significance level; 0 = decide on distance alone.")
    ] = 0.05,
    correction: Annotated[
        str, typer.Option("--correction", help="benjamini-hochberg, bonferroni or none.")
    ] = "benjamini-hochberg",
    share_threshold: Annotated[
        float, typer.Option("--share-threshold", help="Share of drifted columns = dataset drift.")
    ] = 0.5,
    prediction_column: Annotated[
        str | None,
        typer.Option("--prediction-column", help="Tables: the model's output, reported apart."),
    ] = None,
    multivariate: Annotated[
        bool, typer.Option("--multivariate", help="Also a domain-classifier check (AUC).")
    ] = False,
    profile_only: Annotated[
        bool,
        typer.Option(
            "--profile-only",
            help="Tables: compare with the reference's stored profile (bins and counts) "
            "without re-reading it; KS is then unavailable.",
        ),
    ] = False,
    fail_on_drift: Annotated[
        bool, typer.Option("--fail-on-drift", help="Exit 1 when the dataset drifted (for CI).")
    ] = False,
    null_tolerance: Annotated[
        float,
        typer.Option(
            "--null-tolerance",
            min=0.0,
            max=1.0,
            help="Tables: how much a column's share of missing values may grow before it is "
            "a finding (0.01 is one percentage point).",
        ),
    ] = 0.01,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the HTML report here.")
    ] = None,
    as_json: _JSON = False,
) -> None:
    """Compare current data (a table or a deployment's traffic) with a reference.

    Each column gets a distance (effect size) and a significance test; it drifts when both
    say so. A table is also checked as `shipyard data check` checks it (schema, missing
    values, ranges, new categories). Exit 1 on an error-level finding, as data check does,
    and with --fail-on-drift when the dataset as a whole drifted.
    """
    options = _drift_options(
        columns, tests, thresholds, alpha, correction, share_threshold, multivariate
    )
    model = _deployment(current)
    windows: tuple[WindowResult, ...] = ()
    if model is not None:
        result = _monitor_deployment(ctx, model, reference, window, since, until, options)
        report, windows = result.drift, result.windows
        if as_json:
            print_json(result.to_dict())
        else:
            for at, note in result.notes:
                where = f"{at:%Y-%m-%d %H:%M}: " if at is not None else ""
                err_console.print(f"[dim]note: {where}{escape(note)}[/]")
            _print_windows(windows)
            if report is not None:
                console.print(f"\n[bold]Whole period[/] ({escape(report.current)})")
                _print_drift(report)
    else:
        report = _compare_tables(
            ctx, reference, current, options, prediction_column, profile_only, null_tolerance
        )
        if as_json:
            print_json(report.to_dict())
        else:
            _print_drift(report)
            _print_findings(report.findings)
    if html is not None:
        _write_report(html, report, windows, None, f"Drift: {current} vs {reference}")
    from shipyard.data.checks import has_errors

    failed = report is not None and has_errors(report.findings)
    if failed or (fail_on_drift and report is not None and report.drifted):
        raise typer.Exit(code=1)


def _write_report(
    path: Path,
    report: DriftReport | None,
    windows: tuple[WindowResult, ...],
    events: list[AlertEvent] | None,
    title: str,
) -> None:
    from shipyard.monitoring.report import render_report

    page = render_report(drift=report, windows=windows, events=events, title=title)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(page, encoding="utf-8")
    temp.replace(path)
    err_console.print(f"Report written to {escape(str(path))}")


@app.command("report")
def report(
    ctx: typer.Context,
    current: Annotated[str, typer.Argument(help=_CURRENT_HELP)],
    reference: _REFERENCE,
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")],
    window: _WINDOW = "1h",
    since: _SINCE = None,
    until: _UNTIL = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the report's content as JSON.")
    ] = None,
) -> None:
    """Write a self-contained HTML report: distributions, drift, performance and health over
    time, and alert events."""
    import json

    from shipyard.monitoring.alerts import list_events
    from shipyard.monitoring.report import render_json
    from shipyard.tracking import open_workspace

    options = _drift_options(None, None, None, 0.05, "benjamini-hochberg", 0.5, False)
    model = _deployment(current)
    windows: tuple[WindowResult, ...] = ()
    events: list[AlertEvent] | None = None
    if model is not None:
        result = _monitor_deployment(ctx, model, reference, window, since, until, options)
        drift_report, windows = result.drift, result.windows
        events = sorted(
            list_events(open_workspace(home_from(ctx)).backend, model=model, limit=1000),
            key=lambda e: e.at,
        )
    else:
        options.pop("columns")
        drift_report = _compare_tables(ctx, reference, current, options, None)
    title = f"Monitoring: {current} vs {reference}"
    _write_report(out, drift_report, windows, events, title)
    if json_out is not None:
        content = render_json(drift=drift_report, windows=windows, events=events, title=title)
        json_out.write_text(json.dumps(content, indent=2, allow_nan=False), encoding="utf-8")


def _complete_windows(
    monitor: Monitor,
    since: datetime | None,
    ctx: typer.Context,
    *,
    last_only: bool = False,
    backfill: int = 24,
) -> tuple[WindowResult, ...]:
    """The windows of ``monitor`` that ended after ``since`` (or only the last one) and
    before now — at most ``backfill`` of them when nothing was evaluated yet; none while the
    deployment has no traffic. Windows are aligned as ``monitor drift`` aligns them."""
    from shipyard.errors import NotFoundError
    from shipyard.monitoring.logs import log_span
    from shipyard.monitoring.windows import floor_window, monitor_deployment

    end = floor_window(datetime.now(UTC), monitor.window)
    try:
        if last_only:
            start = end - monitor.window
        elif since is not None:
            start = floor_window(since, monitor.window)
        else:
            first = floor_window(log_span(monitor.model, home=home_from(ctx)).first, monitor.window)
            start = max(first, end - backfill * monitor.window)
        if end <= start:
            return ()
        return monitor_deployment(
            monitor.model,
            reference=monitor.reference,
            window=monitor.window,
            start=start,
            end=end,
            home=home_from(ctx),
        ).windows
    except NotFoundError as exc:
        if "prediction log" not in str(exc):
            raise
        err_console.print(f"[dim]{escape(monitor.model)}: {escape(str(exc))}[/]")
        return ()


@app.command("run")
def run(
    ctx: typer.Context,
    config: _CONFIG = Path("monitors.yaml"),
    loop: Annotated[
        bool, typer.Option("--loop", help="Keep running; evaluate every --interval.")
    ] = False,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between passes.")] = 60,
    send: Annotated[
        bool, typer.Option("--send/--no-send", help="POST events to the webhooks.")
    ] = True,
    backfill: Annotated[
        int,
        typer.Option(
            "--backfill", min=1, help="First pass of a monitor: evaluate at most N past windows."
        ),
    ] = 24,
) -> None:
    """Evaluate the alert rules on every window completed since the last pass.

    One pass suits cron; --loop keeps going until interrupted. Firing and resolving alerts
    are stored as events and sent to the webhooks.
    """
    from shipyard.monitoring.alerts import load_monitors
    from shipyard.tracking import open_workspace

    settings = load_monitors(config)
    backend = open_workspace(home_from(ctx)).backend
    stop = threading.Event()
    if loop:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    missing = [m.model for m in settings.monitors if m.reference is None]
    if missing:
        raise InvalidArgumentError(
            f"{config}: monitor(s) {', '.join(map(repr, missing))} need a 'reference' to be run"
        )
    while True:
        failed = 0
        for monitor in settings.monitors:
            try:
                _run_one(ctx, backend, monitor, send, backfill)
            except ShipyardError as exc:  # one broken monitor must not stop the others
                failed += 1
                err_console.print(
                    f"[bold red]error:[/] monitor {escape(monitor.model)}: {escape(str(exc))}"
                )
        if not loop:
            if failed:
                raise typer.Exit(code=1)
            return
        try:
            if stop.wait(interval):
                return
        except KeyboardInterrupt:  # pragma: no cover - interactive
            return


def _run_one(
    ctx: typer.Context, backend: Backend, monitor: Monitor, send: bool, backfill: int
) -> None:
    from shipyard.monitoring.alerts import evaluated_until, run_monitor

    since = evaluated_until(backend, monitor)
    windows = _complete_windows(monitor, since, ctx, backfill=backfill)
    outcome = run_monitor(backend, monitor, windows, send=send)
    for event in outcome.events:
        style = "bold red" if event.state.value == "firing" else "green"
        console.print(
            f"[{style}]{event.state.value.upper()}[/] {escape(event.model)} "
            f"{escape(event.rule)} ({event.severity.value}): {escape(event.message)}"
        )
    for failed in (d for d in outcome.deliveries if not d.delivered):
        err_console.print(
            f"[yellow]webhook {escape(failed.webhook)} failed after "
            f"{failed.attempts} attempt(s): {escape(failed.error)}[/]"
        )
    console.print(
        f"{escape(monitor.model)}: {len(windows)} new window(s), {len(outcome.events)} event(s)"
    )


@app.command("events")
def events(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option("--model", help="Only this deployment.")] = None,
    rule: Annotated[str | None, typer.Option("--rule", help="Only this rule.")] = None,
    state: Annotated[str | None, typer.Option("--state", help="firing or resolved.")] = None,
    since: Annotated[
        datetime | None,
        typer.Option("--since", help="Only events recorded at or after this time (UTC)."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.")] = 50,
    as_json: _JSON = False,
) -> None:
    """List alert events, newest first (what retraining triggers read)."""
    from shipyard.monitoring.alerts import list_events
    from shipyard.tracking import open_workspace

    found = list_events(
        open_workspace(home_from(ctx)).backend,
        model=model,
        rule=rule,
        state=state,
        since=since,
        limit=limit,
    )
    if not found:
        from shipyard.cli._output import print_empty

        only = (("of", model), ("from rule", rule), ("in state", state))
        print_empty(
            " ".join(["alert events", *(f"{k} {v}" for k, v in only if v)]), as_json=as_json
        )
        return
    if as_json:
        print_json([e.to_dict() for e in found])
        return
    table = Table(box=None, header_style="bold")
    for heading in ("at", "model", "rule", "state", "severity", "value", "message"):
        table.add_column(heading)
    for e in found:
        table.add_row(
            e.at.strftime("%Y-%m-%d %H:%M"),
            escape(e.model),
            escape(e.rule),
            e.state.value,
            e.severity.value,
            "-" if e.value is None else f"{e.value:.4g}",
            escape(e.message),
        )
    console.print(table)


@app.command("exporter")
def exporter(
    ctx: typer.Context,
    config: _CONFIG = Path("monitors.yaml"),
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port of /metrics.")] = 9108,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between refreshes.")] = 60,
) -> None:
    """Serve drift, performance, health and firing alerts as Prometheus metrics."""
    from shipyard.monitoring.alerts import load_monitors
    from shipyard.monitoring.exporter import MonitoringMetrics, serve_exporter
    from shipyard.tracking import open_workspace

    settings = load_monitors(config)
    backend = open_workspace(home_from(ctx)).backend
    metrics = MonitoringMetrics()

    def update() -> None:
        for monitor in settings.monitors:
            if monitor.reference is None:
                continue
            windows = _complete_windows(monitor, None, ctx, last_only=True)
            if windows:
                metrics.observe(monitor.model, windows[-1])
        metrics.set_alerts(settings.rules, backend.get_alert_progress())

    server = serve_exporter(host, port, update, metrics, interval=interval)
    console.print(f"Serving monitoring metrics at {escape(server.url)} (Ctrl+C to stop)")
    signal.signal(signal.SIGTERM, lambda *_: server.close())
    try:
        server.wait()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        server.close()
