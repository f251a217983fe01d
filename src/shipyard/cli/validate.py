"""``shipyard validate``: evaluate a model on unseen data, write the report, apply the gate."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli._base import console, err_console, home_from, print_json
from shipyard.errors import InvalidArgumentError, NotFoundError

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.entities.validation import GateResult, ValidationReport

__all__ = ["validate"]

_TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet", ".pq")


def _read_table(data: str, home: Any) -> pd.DataFrame:
    """A CSV/Parquet file when ``data`` names one, else a dataset version ``name@v``."""
    import pandas as pd

    from shipyard.data import load

    path = Path(data)
    name = path.name.lower()
    if name.endswith(_TABLE_SUFFIXES):
        if not path.is_file():
            raise NotFoundError(f"no data file {path}")
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="\t" if name.endswith(".tsv") else ",")
    return load(data, home=home)


def _require_unseen(ref: str, data: str, home: Any) -> None:
    """Refuse a dataset version that the run which trained the model read: not unseen."""
    if Path(ref).is_dir() or Path(data).name.lower().endswith(_TABLE_SUFFIXES):
        return  # a model folder or a plain file carries no lineage to check
    from shipyard.data import resolve
    from shipyard.registry import Registry
    from shipyard.tracking import open_workspace

    workspace = open_workspace(home)
    version = Registry(workspace.backend, workspace.settings.user).resolve(ref)
    if version.run_id is None:
        return
    dataset = resolve(data, home=home)
    seen = workspace.backend.run_dataset_versions([version.run_id], "input")
    if any((v.dataset, v.version) == (dataset.dataset, dataset.version) for _, v in seen):
        raise InvalidArgumentError(
            f"{dataset.ref} was read by run {version.run_id[:8]}, which trained {version.ref}: "
            "validate on data the model has not seen (a held-out dataset version)"
        )


def _load_model(ref: str, home: Any, trusted_code: bool) -> Any:
    from shipyard.models import load, load_model

    if Path(ref).is_dir():
        return load_model(ref, trusted_code=trusted_code)
    return load(ref, home=home, trusted_code=trusted_code)


def _summary(report: ValidationReport, gate: GateResult | None) -> None:
    table = Table(
        title=f"{report.model} · {report.task} · {report.rows} rows",
        box=None,
        header_style="bold",
        title_justify="left",
    )
    table.add_column("check")
    table.add_column("result")
    for name, value in report.metrics.items():
        mark = " (main)" if name == report.main_metric else ""
        table.add_row(f"{name}{mark}", f"{value:.4f}")
    for s in report.slices:
        table.add_row(f"slices: {s.column}", f"{len(s.slices)} slice(s)")
    for f in report.fairness:
        if f.demographic_parity_difference is None or f.equalized_odds_difference is None:
            table.add_row(f"fairness: {f.attribute}", "per-group metrics only")
        else:
            table.add_row(
                f"fairness: {f.attribute}",
                f"DP diff {f.demographic_parity_difference:.3f}, "
                f"EO diff {f.equalized_odds_difference:.3f}",
            )
    if report.robustness:
        worst = max(report.robustness, key=lambda r: r.degradation)
        table.add_row(
            "robustness (worst)",
            f"{worst.metric} {worst.value:.4f} under {worst.kind} {worst.level:g} "
            f"(worse by {worst.degradation:.4f})",
        )
    c = report.comparison
    if c is not None:
        table.add_row(
            f"vs {c.against}",
            f"{c.verdict}: {c.metric} {c.difference:+.4f} "
            f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}] {c.confidence:.0%} CI",
        )
    if gate is not None:
        table.add_row("gate", "[green]passed[/]" if gate.passed else "[red]FAILED[/]")
    console.print(table)


def validate(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The model: name@3, name@alias, or a model folder.")],
    data: Annotated[
        str, typer.Option("--data", "-d", help="Unseen rows: DATASET@v, or a CSV/Parquet file.")
    ],
    target: Annotated[str, typer.Option("--target", "-t", help="The true-value column.")] = (
        "target"
    ),
    against: Annotated[
        str | None, typer.Option("--against", help="Compare with this model, e.g. name@champion.")
    ] = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="Gate policy YAML; exit 1 when it fails.")
    ] = None,
    slice: Annotated[
        list[str] | None, typer.Option("--slice", help="Column to slice metrics by (repeatable).")
    ] = None,
    sensitive: Annotated[
        list[str] | None,
        typer.Option("--sensitive", help="Sensitive column for fairness (repeatable)."),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for report.json and report.html.")
    ] = Path("validation"),
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random draw.")] = 0,
    trusted_code: Annotated[
        bool,
        typer.Option(
            "--trusted-code", help="Allow models that run code when loaded (PyTorch, Python)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Evaluate a model on unseen data, write a JSON and HTML report, and apply a gate policy."""
    from shipyard.validation import apply_policy, evaluate, load_policy, report_json, write_report

    home = home_from(ctx)
    gate_policy = load_policy(policy) if policy is not None else None
    _require_unseen(ref, data, home)
    table = _read_table(data, home)
    model = _load_model(ref, home, trusted_code)
    champion = _load_model(against, home, trusted_code) if against is not None else None
    report = evaluate(
        model,
        table,
        target=target,
        slices=slice or (),
        sensitive=sensitive or (),
        against=champion,
        seed=seed,
        model_name=ref,
        against_name=against,
        data_name=data,
    )
    gate = apply_policy(report, gate_policy) if gate_policy is not None else None
    json_path, html_path = write_report(report, out, gate)
    if as_json:
        print_json(report_json(report, gate))
    else:
        _summary(report, gate)
        console.print(f"Wrote {escape(str(json_path))} and {escape(str(html_path))}")
    if gate is not None and not gate.passed:
        where = err_console if as_json else console
        for failure in gate.failures:
            where.print(f"[red]gate failed:[/] {escape(failure)}")
        raise typer.Exit(code=1)
