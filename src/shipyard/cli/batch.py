"""``shipyard predict`` (batch inference) and ``shipyard export`` (the edge package)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from shipyard.cli._base import console, home_from, print_json, progress_bar
from shipyard.errors import InvalidArgumentError

__all__ = ["export", "predict"]

_JSON = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def predict(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Model version: name@3, name@champion or name.")],
    input: Annotated[
        str, typer.Option("--input", "-i", help="A .parquet or .csv file, or a dataset name@v.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Parquet file to write.")],
    key: Annotated[
        list[str] | None,
        typer.Option(
            "--key",
            "-k",
            help="Input column to copy beside each prediction (repeatable; default: every "
            "column the model does not take).",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Rows per record batch.")
    ] = 65536,
    executor: Annotated[
        str, typer.Option("--executor", help="local, or ray (one task per batch).")
    ] = "local",
    proba: Annotated[
        bool, typer.Option("--proba", help="Also write proba_<class> columns.")
    ] = False,
    trusted_code: Annotated[
        bool, typer.Option("--trusted-code", help="Allow models that run code when loaded.")
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="A running Ray cluster (host:port) for --executor ray."),
    ] = None,
    log_predictions: Annotated[
        bool,
        typer.Option("--log/--no-log", help="Write the predictions to the model's prediction log."),
    ] = True,
    as_json: _JSON = False,
) -> None:
    """Score a table with a model, streaming it in record batches, and log the predictions."""
    from shipyard.batch import predict as run_predict

    with progress_bar(
        TextColumn(f"Scoring with {ref}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
    ) as bar:
        task = bar.add_task("rows", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        result = run_predict(
            ref,
            input,
            output,
            key_columns=key or None,
            batch_size=batch_size,
            executor=executor,
            proba=proba,
            trusted_code=trusted_code,
            home=home_from(ctx),
            progress=progress,
            log_predictions=log_predictions,
            ray_address=ray_address,
        )
    if as_json:
        print_json(
            {
                "output": str(result.output),
                "rows": result.rows,
                "batches": result.batches,
                "model_version": result.model_version,
                "dataset": result.dataset.ref,
                "run_id": result.run_id,
                "columns": list(result.columns),
            }
        )
        return
    console.print(
        Text(
            f"Wrote {result.rows} predictions of {result.model_version} to {result.output} "
            f"({result.batches} batch(es)); logged as {result.dataset.ref} by run "
            f"{result.run_id[:8]}"
        )
    )


def export(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Model version: name@3, name@champion or name.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="New folder for the package.")],
    format: Annotated[str, typer.Option("--format", help="Package format: onnx.")] = "onnx",
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="Largest accepted ONNX-vs-native difference.")
    ] = 1e-4,
    quantize: Annotated[
        bool, typer.Option("--quantize", help="Also write model.int8.onnx (dynamic int8).")
    ] = False,
    sample: Annotated[
        str | None,
        typer.Option(
            "--sample",
            help="Rows to check parity on: dataset name@v or a CSV/Parquet file (default: the "
            "table the model's training run read, else rows drawn from its signature).",
        ),
    ] = None,
    trusted_code: Annotated[
        bool, typer.Option("--trusted-code", help="Allow models that run code when loaded.")
    ] = False,
    as_json: _JSON = False,
) -> None:
    """Export a model for the edge: model.onnx, manifest.json and a parity report."""
    if format != "onnx":
        raise InvalidArgumentError(f"unknown format {format!r}; only onnx is supported")
    from shipyard.export import export_onnx

    with console.status(f"Exporting {ref} to ONNX", spinner="dots"):
        result = export_onnx(
            ref,
            out,
            tolerance=tolerance,
            quantize=quantize,
            sample=sample,
            trusted_code=trusted_code,
            home=home_from(ctx),
        )
    if as_json:
        print_json({"path": str(result.path), "source": result.source, "parity": result.parity})
        return
    main = result.parity["model.onnx"]
    console.print(
        Text(
            f"Exported {result.source} to {result.path}: max difference "
            f"{main['max_abs_diff']:.3g} on {result.parity['rows']} rows from "
            f"{result.parity['rows_source']} (tolerance {tolerance:g})"
        )
    )
    quantized = result.parity.get("model.int8.onnx")
    if quantized is not None:
        labels = quantized.get("label_mismatches")
        note = f", {labels} label(s) differ" if labels else ""
        console.print(
            Text(f"  model.int8.onnx: max difference {quantized['max_abs_diff']:.3g}{note}")
        )
    console.print(Text(f"Run it: python -m shipyard.edge {result.path} input.csv"))
