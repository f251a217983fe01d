"""``shipyard tune``: run a hyperparameter search, list studies, show one (terminal or HTML)."""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Mapping, Sequence
from html import escape as html_escape
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from shipyard.cli._base import console, err_console, home_from, print_json, progress_bar
from shipyard.cli.runs import sparkline
from shipyard.entities import format_metric
from shipyard.errors import InvalidArgumentError
from shipyard.tuning import Study, StudySummary, list_studies, load_study, tune
from shipyard.tuning.executors import EXECUTORS, FileObjective
from shipyard.tuning.space import space_to_json

__all__ = ["app", "study_dict", "write_html"]

app = typer.Typer(
    help="Hyperparameter tuning: run a study, list studies, show one.", no_args_is_help=True
)

_JSON = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
_STATE_STYLE = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red", "RUNNING": "cyan"}
_BAR_WIDTH = 30


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if math.isfinite(value) else format_metric(value)


def study_dict(study: Study, importances: Mapping[str, float]) -> dict[str, Any]:
    """A study as JSON-ready data (what ``--json`` prints)."""
    best = study.best_trial
    return {
        "name": study.name,
        "direction": study.direction,
        "metric": study.metric,
        "run_id": study.run_id,
        "space": space_to_json(study.space),
        "counts": study.counts(),
        "best": None
        if best is None
        else {
            "trial": best.number,
            "value": best.value,
            "params": best.params,
            "run_id": best.run_id,
        },
        "importances": dict(importances),
        "history": study.history(),
        "trials": [
            {
                "number": t.number,
                "state": t.state,
                "value": t.value,
                "params": t.params,
                "run_id": t.run_id,
                "duration_s": t.duration_s,
                "intermediate": {str(k): v for k, v in sorted(t.intermediate.items())},
            }
            for t in study.trials
        ],
    }


def _summary_dict(s: StudySummary) -> dict[str, Any]:
    return {
        "name": s.name,
        "direction": s.direction,
        "metric": s.metric,
        "run_id": s.run_id,
        "trials": s.trials,
        "complete": s.complete,
        "pruned": s.pruned,
        "failed": s.failed,
        "running": s.running,
        "best_value": s.best_value,
        "best_trial": s.best_trial,
    }


@app.command("ls")
def list_command(ctx: typer.Context, as_json: _JSON = False) -> None:
    """List the studies of the workspace with their trial counts and best values."""
    studies = list_studies(home=home_from(ctx))
    if not studies:
        from shipyard.cli._output import print_empty

        hint = "start one with `shipyard tune run FILE.py:OBJECTIVE --n-trials N`"
        print_empty("studies in this workspace", as_json=as_json, hint=hint)
        return
    if as_json:
        print_json([_summary_dict(s) for s in studies])
        return
    table = Table(box=None, header_style="bold")
    table.add_column("Study", no_wrap=True)
    table.add_column("Goal")
    for column in ("Trials", "Pruned", "Failed", "Best", "Best trial"):
        table.add_column(column, justify="right")
    for s in studies:
        table.add_row(
            Text(s.name),
            Text(f"{s.direction[:3]} {s.metric}"),
            str(s.trials),
            str(s.pruned),
            str(s.failed),
            _num(s.best_value),
            "-" if s.best_trial is None else str(s.best_trial),
        )
    console.print(table)


def _bar(share: float) -> str:
    cells = share * _BAR_WIDTH
    whole = int(cells)
    part = " ▏▎▍▌▋▊▉"[int((cells - whole) * 8)]
    return ("█" * whole + (part if whole < _BAR_WIDTH else "")).rstrip()


def _print_study(study: Study, importances: Mapping[str, float], limit: int) -> None:
    counts = study.counts()
    console.print(
        f"[bold]{escape(study.name)}[/]  {study.direction} {escape(study.metric)} · run "
        f"{study.run_id or '-'}"
    )
    console.print(
        f"{len(study.trials)} trials: {counts['COMPLETE']} complete, {counts['PRUNED']} pruned, "
        f"{counts['FAIL']} failed" + (f", {counts['RUNNING']} running" if counts["RUNNING"] else "")
    )
    best = study.best_trial
    if best is None:
        console.print("No complete trial yet.")
    else:
        console.print(
            f"best: trial {best.number} · {escape(study.metric)} = {_num(best.value)} · run "
            f"{best.run_id or '-'}"
        )
        for key, value in best.params.items():
            console.print(Text(f"  {key} = {value}"))
    rows = study.history()
    if len(rows) >= 2:
        console.print("[bold]Optimisation history[/] (best so far, by complete trial)")
        console.print(
            Text(
                f"  {sparkline([r['best'] for r in rows])}  "
                f"{_num(rows[0]['best'])} -> {_num(rows[-1]['best'])}"
            )
        )
        console.print(Text(f"  {sparkline([r['value'] for r in rows])}  each trial's value"))
    if importances:
        console.print("[bold]Parameter importances[/]")
        width = max(len(k) for k in importances)
        for key, share in importances.items():
            console.print(Text(f"  {key:<{width}}  {_bar(share):<{_BAR_WIDTH}}  {share:.2f}"))
    _print_trials(study, limit)


def _print_trials(study: Study, limit: int) -> None:
    trials = sorted(study.trials, key=lambda t: t.number)
    if not trials:
        return
    shown = trials[-limit:]
    names = list(dict.fromkeys(k for t in shown for k in t.params))[:8]
    table = Table(box=None, header_style="bold", title="Trials", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("State")
    table.add_column(study.metric, justify="right")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("Time", justify="right")
    table.add_column("Run")
    best = study.best_trial_number
    for t in shown:
        style = _STATE_STYLE.get(t.state, "")
        table.add_row(
            str(t.number) + (" *" if t.number == best else ""),
            f"[{style}]{t.state}[/]" if style else t.state,
            _num(t.value),
            *(Text(_param(t.params[n])) if n in t.params else "-" for n in names),
            "-" if t.duration_s is None else f"{t.duration_s:.2f}s",
            (t.run_id or "-")[:8],
        )
    console.print(table)
    if len(trials) > len(shown):
        console.print(f"(the last {len(shown)} of {len(trials)} trials; --limit shows more)")


def _param(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# HTML ----------------------------------------------------------------------------------------


def _history_figure(study: Study, rows: Sequence[Mapping[str, Any]]) -> str:
    from matplotlib.ticker import MaxNLocator

    from shipyard.validation.htmlkit import figure, plot_text, png

    fig, ax = figure(7.0, 3.6)
    ax.scatter(
        [r["trial"] for r in rows], [r["value"] for r in rows], s=14, alpha=0.7, label="trial"
    )
    ax.step(
        [r["trial"] for r in rows],
        [r["best"] for r in rows],
        where="post",
        color="C3",
        label="best so far",
    )
    ax.set_title(f"Optimisation history ({study.direction})")
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(plot_text(study.metric))
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    return png(fig)


def _importance_figure(importances: Mapping[str, float]) -> str:
    from shipyard.validation.htmlkit import figure, plot_text, png

    names = list(importances)[::-1]
    fig, ax = figure(7.0, 0.5 + 0.35 * len(names))
    ax.barh([plot_text(n) for n in names], [importances[n] for n in names], color="C0")
    ax.set_title("Parameter importances")
    ax.set_xlabel("importance (Optuna's evaluator; the shares sum to 1)")
    ax.set_ylabel("parameter")
    ax.grid(axis="x", alpha=0.3)
    return png(fig)


def _intermediate_figure(study: Study) -> str | None:
    from matplotlib.ticker import MaxNLocator

    from shipyard.validation.htmlkit import figure, plot_text, png

    reported = [t for t in study.trials if len(t.intermediate) >= 1]
    if not reported:
        return None
    fig, ax = figure(7.0, 3.6)
    for trial in reported:
        steps = sorted(trial.intermediate)
        ax.plot(
            steps,
            [trial.intermediate[s] for s in steps],
            color={"PRUNED": "C1", "FAIL": "C3"}.get(trial.state, "C0"),
            alpha=0.6,
            linewidth=1,
            marker="." if len(steps) == 1 else None,
        )
    ax.set_title("Reported values (orange: pruned)")
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(plot_text(study.metric))
    ax.grid(alpha=0.3)
    return png(fig)


def _html(study: Study, importances: Mapping[str, float]) -> str:
    from shipyard.validation.htmlkit import facts, page, table

    counts = study.counts()
    best = study.best_trial
    rows = study.history()
    parts = [
        f"<h1>Study {html_escape(study.name)}</h1>",
        f'<p class="sub">{study.direction} {html_escape(study.metric)} · run '
        f"{html_escape(study.run_id or '-')}</p>",
        facts(
            [
                ("Trials", str(len(study.trials))),
                (
                    "Complete / pruned / failed",
                    f"{counts['COMPLETE']} / {counts['PRUNED']} / {counts['FAIL']}",
                ),
                ("Best trial", "-" if best is None else str(best.number)),
                (f"Best {study.metric}", _num(None if best is None else best.value)),
                ("Best run", html_escape((best.run_id if best else None) or "-")),
            ]
            + [(f"best {k}", html_escape(_param(v))) for k, v in study.best_params.items()]
        ),
        "<h2>Optimisation history</h2>",
        '<div class="plots">' + _history_figure(study, rows) + "</div>"
        if rows
        else '<p class="note">No complete trial yet.</p>',
        "<h2>Parameter importances</h2>",
        '<div class="plots">' + _importance_figure(importances) + "</div>"
        if importances
        else '<p class="note">Needs at least two complete trials with varied parameters.</p>',
    ]
    reported = _intermediate_figure(study)
    if reported is not None:
        parts += ["<h2>Reported values</h2>", f'<div class="plots">{reported}</div>']
    names = list(dict.fromkeys(k for t in study.trials for k in t.params))
    parts.append("<h2>Trials</h2>")
    parts.append(
        table(
            ["#", "state", study.metric, *names, "seconds", "run"],
            [
                [
                    str(t.number),
                    t.state,
                    _num(t.value) if t.value is not None else "\u2013",
                    *(html_escape(_param(t.params[n])) if n in t.params else "" for n in names),
                    "\u2013" if t.duration_s is None else f"{t.duration_s:.2f}",
                    html_escape(t.run_id or ""),
                ]
                for t in sorted(study.trials, key=lambda t: t.number)
            ],
            [
                "better" if best is not None and t.number == best.number else ""
                for t in sorted(study.trials, key=lambda t: t.number)
            ],
        )
    )
    return page(f"Study {study.name}", "\n".join(parts))


def write_html(study: Study, importances: Mapping[str, float], path: Path) -> Path:
    """Write the study's report as one self-contained HTML page (atomically)."""
    text = _html(study, importances)
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("x", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@app.command("show")
def show_command(
    ctx: typer.Context,
    study: Annotated[str, typer.Argument(help="The study's name.")],
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write a report page to this file.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="Show the last N trials.")
    ] = 100,
    as_json: _JSON = False,
) -> None:
    """Show a study: best trial, optimisation history, parameter importances, trials."""
    found = load_study(study, home=home_from(ctx))
    importances = found.param_importances()
    if as_json:
        print_json(study_dict(found, importances))
    else:
        _print_study(found, importances, limit)
    if html is not None:
        written = write_html(found, importances, html)
        (err_console if as_json else console).print(Text(f"Wrote {written}"))


@app.command("run")
def run_command(
    ctx: typer.Context,
    objective: Annotated[
        str, typer.Argument(help="FILE.py:FUNCTION, the objective (takes a Trial).")
    ],
    space: Annotated[
        str, typer.Option("--space", help="Name of the search-space dict in FILE.py.")
    ] = "space",
    n_trials: Annotated[int | None, typer.Option("--n-trials", "-n", help="Trials to run.")] = None,
    direction: Annotated[
        str | None, typer.Option("--direction", help="minimize or maximize.")
    ] = None,
    study: Annotated[
        str | None, typer.Option("--study", "-s", help="Study name (new or existing).")
    ] = None,
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-e", help="Experiment of a new study.")
    ] = None,
    executor: Annotated[
        str, typer.Option("--executor", help=f"{' | '.join(EXECUTORS)}.")
    ] = "local",
    n_workers: Annotated[
        int | None, typer.Option("--n-workers", "-w", help="Parallel workers.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds after which no trial starts.")
    ] = None,
    metric: Annotated[
        str | None, typer.Option("--metric", help="Name of the objective's metric.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the sampler.")] = None,
    as_json: _JSON = False,
) -> None:
    """Run trials of a study: the objective and its space come from a Python file."""
    reference = FileObjective.parse(objective)
    found = getattr(reference.module(), space, None)
    if not isinstance(found, Mapping):
        raise InvalidArgumentError(
            f"--space: {reference.path} has no dict named {space!r} (parameter name -> "
            "Float/Int/Categorical)"
        )
    import optuna
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    # One progress bar on stderr (in a terminal) instead of Optuna's log line per trial.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with progress_bar(
        TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    ) as bar:
        shown = bar.add_task("trials", total=n_trials)
        result = tune(
            reference,
            found,
            n_trials=n_trials,
            direction=direction,
            study=study,
            experiment=experiment,
            executor=executor,
            n_workers=n_workers,
            timeout=timeout,
            metric=metric,
            seed=seed,
            home=home_from(ctx),
            progress=lambda done: bar.update(shown, completed=done),
        )
    if as_json:
        print_json(study_dict(result, result.param_importances()))
        return
    best = result.best_trial
    counts = result.counts()
    console.print(
        f"Study [bold]{escape(result.name)}[/]: {len(result.trials)} trials "
        f"({counts['COMPLETE']} complete, {counts['PRUNED']} pruned, {counts['FAIL']} failed)"
    )
    if best is not None:
        console.print(
            Text(
                f"best: trial {best.number} · {result.metric} = {_num(best.value)} · "
                f"{', '.join(f'{k}={_param(v)}' for k, v in best.params.items())} · run "
                f"{(best.run_id or '-')[:8]}"
            )
        )
    console.print(Text(f"shipyard tune show {result.name} --html report.html"))
