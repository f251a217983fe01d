"""Pages for experiments and runs: the runs table, a run, its metric charts and artifacts,
and a comparison of runs."""

from __future__ import annotations

import mimetypes
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from shipyard.entities import (
    SYSTEM_TAG_GIT_COMMIT,
    SYSTEM_TAG_GIT_DIRTY,
    SYSTEM_TAG_PYTHON,
    SYSTEM_TAG_SOURCE,
    Run,
)
from shipyard.errors import FilterSyntaxError, InvalidArgumentError, NotFoundError
from shipyard.server.auth import Identity
from shipyard.server.ui import charts
from shipyard.server.ui.pages import fragment, page_identity, render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_Caller = Annotated[Identity, Depends(page_identity)]

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_COLUMNS = 4
"""Params and metrics shown when none are chosen: the first few keys of each on the page."""
PREVIEW_BYTES = 64 * 1024
MAX_COMPARE = 10


@router.get("/")
def home(caller: _Caller) -> RedirectResponse:
    return RedirectResponse("/experiments", status_code=303)


@router.get("/experiments", response_class=HTMLResponse)
def experiments(request: Request, caller: _Caller, deleted: bool = False) -> HTMLResponse:
    backend = request.app.state.workspace.backend
    found = [e for e in backend.list_experiments() if (e.deleted_at is not None) == deleted]
    return render(
        request, "experiments.html", title="Experiments", experiments=found, deleted=deleted
    )


def _columns(runs: list[Run], chosen: str) -> tuple[list[str], list[str]]:
    """The ``params.X`` and ``metrics.Y`` columns: the chosen ones, else the page's first."""
    if chosen.strip():
        keys = [c.strip() for c in chosen.split(",") if c.strip()]
        bad = [k for k in keys if not k.startswith(("params.", "metrics.", "tags."))]
        if bad:
            raise InvalidArgumentError(
                f"columns name params.X, metrics.X or tags.X, not {', '.join(bad)}"
            )
        return keys, []
    params: dict[str, None] = {}
    metrics: dict[str, None] = {}
    for run in runs:
        params.update(dict.fromkeys(run.params))
        metrics.update(dict.fromkeys(run.metrics))
    return (
        [f"metrics.{k}" for k in sorted(metrics)[:DEFAULT_COLUMNS]]
        + [f"params.{k}" for k in sorted(params)[:DEFAULT_COLUMNS]],
        [f"metrics.{k}" for k in sorted(metrics)] + [f"params.{k}" for k in sorted(params)],
    )


def _run(backend: Any, run_id: str) -> Run:
    """A run by id or unique prefix; a malformed id is a page that does not exist."""
    try:
        run: Run = backend.get_run(backend.resolve_run_id(run_id))
    except InvalidArgumentError as exc:
        raise NotFoundError(f"no run {run_id!r} ({exc})") from None
    return run


def cell(run: Run, column: str) -> Any:
    kind, _, key = column.partition(".")
    sources: dict[str, dict[str, Any]] = {
        "params": run.params,
        "metrics": run.metrics,
        "tags": run.tags,
    }
    source = sources[kind]
    return source.get(key)


@router.get("/experiments/{experiment_id}", response_class=HTMLResponse)
def runs_table(
    request: Request,
    caller: _Caller,
    experiment_id: Annotated[int, Path(ge=0, le=2**62)],
    filter: Annotated[str, Query(max_length=4000)] = "",
    order: Annotated[str, Query(max_length=300)] = "",
    page: Annotated[int, Query(ge=1, le=10**7)] = 1,
    per: Annotated[int, Query(ge=1, le=200)] = 50,
    columns: Annotated[str, Query(max_length=2000)] = "",
    deleted: bool = False,
) -> HTMLResponse:
    backend = request.app.state.workspace.backend
    experiment = backend.get_experiment(experiment_id)
    per = min(PAGE_SIZES, key=lambda size: abs(size - per))
    error: FilterSyntaxError | None = None
    runs: list[Run] = []
    try:
        runs = backend.search_runs(
            [experiment.experiment_id],
            filter,
            [order] if order.strip() else (),
            max_results=per + 1,
            offset=(page - 1) * per,
            lifecycle="deleted" if deleted else "active",
        )
    except FilterSyntaxError as exc:
        error = exc
    more = len(runs) > per
    runs = runs[:per]
    shown, available = _columns(runs, columns)
    context = {
        "title": f"{experiment.name} \u00b7 runs",
        "experiment": experiment,
        "runs": runs,
        "columns": shown,
        "available": available,
        "chosen": columns,
        "filter": filter,
        "order": order,
        "page": page,
        "per": per,
        "sizes": PAGE_SIZES,
        "more": more,
        "error": error,
        "deleted": deleted,
        "cell": cell,
    }
    partial = fragment(request)
    template = "runs_table.html" if partial else "runs.html"
    return render(request, template, status=400 if error else 200, oob=partial, **context)


def _code(run: Run) -> dict[str, str]:
    names = {
        SYSTEM_TAG_GIT_COMMIT: "git commit",
        SYSTEM_TAG_GIT_DIRTY: "uncommitted changes",
        SYSTEM_TAG_SOURCE: "source",
        SYSTEM_TAG_PYTHON: "python",
    }
    return {label: run.tags[tag] for tag, label in names.items() if tag in run.tags}


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, caller: _Caller, run_id: str) -> HTMLResponse:
    backend = request.app.state.workspace.backend
    run = _run(backend, run_id)
    experiment = backend.get_experiment(run.experiment_id)
    inputs = backend.run_dataset_versions([run.run_id], "input")
    outputs = backend.run_dataset_versions([run.run_id], "output")
    steps = backend.latest_steps(run.run_id)
    versions = backend.model_versions_of_runs([run.run_id])
    return render(
        request,
        "run.html",
        title=f"Run {run.name}",
        run=run,
        experiment=experiment,
        code=_code(run),
        tags={k: v for k, v in sorted(run.tags.items())},
        inputs=[v for _, v in inputs],
        outputs=[v for _, v in outputs],
        steps=steps,
        artifacts=backend.list_artifacts(run.run_id),
        versions=versions,
    )


@router.get("/runs/{run_id}/charts/{key:path}", response_class=HTMLResponse)
def metric_chart(request: Request, caller: _Caller, run_id: str, key: str) -> HTMLResponse:
    """One metric over steps (a fragment for htmx; a whole page without it)."""
    backend = request.app.state.workspace.backend
    run = _run(backend, run_id)
    history = backend.get_metric_history(run.run_id, key)
    if not history:
        raise NotFoundError(f"run {run.name!r} has no metric {key!r}")
    chart = charts.line_chart(
        [charts.Series(key, [m.step for m in history], [m.value for m in history])],
        title=f"{key} by step ({len(history):,} values)",
        x_label="step",
        y_label=key,
    )
    template = "chart_fragment.html" if fragment(request) else "chart_page.html"
    return render(
        request,
        template,
        title=f"{run.name} \u00b7 {key}",
        chart=chart,
        run=run,
        key=key,
        count=len(history),
    )


def _artifact(request: Request, run_id: str, path: str) -> tuple[Run, str, int, bool]:
    """``(run, digest, size, is_dir)`` of a file or folder logged to a run, by its path
    (a file inside a logged folder too)."""
    backend = request.app.state.workspace.backend
    run = _run(backend, run_id)
    path = path.strip("/")
    for record in backend.list_artifacts(run.run_id):
        if record.path == path:
            return run, record.digest, record.size, record.is_dir
        if record.is_dir and path.startswith(record.path.rstrip("/") + "/"):
            inner = path[len(record.path.rstrip("/")) + 1 :]
            manifest = request.app.state.workspace.artifacts.read_manifest(record.digest)
            for entry in manifest.entries:
                if entry.path == inner:
                    return run, entry.digest, entry.size, False
    raise NotFoundError(f"run {run.name!r} has no artifact {path!r}")


def _kind(path: str) -> str:
    lower = path.lower()
    if lower.endswith((".png", ".jpg", ".jpeg", ".gif", ".webp")):
        return "image"
    if lower.endswith((".csv", ".tsv")):
        return "csv"
    if lower.endswith(".parquet"):
        return "parquet"
    return "text"


def _table_head(data: bytes, kind: str, rows: int = 20) -> tuple[list[str], list[list[str]]]:
    import io

    import pyarrow as pa

    if kind == "parquet":
        import pyarrow.parquet as pq

        table = pq.ParquetFile(io.BytesIO(data)).iter_batches(batch_size=rows)
        batch = next(table, None)
        head = pa.Table.from_batches([batch]) if batch is not None else pa.table({})
    else:
        import pyarrow.csv as pacsv

        delimiter = "\t" if data[:4096].count(b"\t") > data[:4096].count(b",") else ","
        reader = pacsv.open_csv(
            io.BytesIO(data), parse_options=pacsv.ParseOptions(delimiter=delimiter)
        )
        batch = reader.read_next_batch()
        head = pa.Table.from_batches([batch]).slice(0, rows)
    columns = head.column_names
    values = [[str(v) for v in row.values()] for row in head.slice(0, rows).to_pylist()]
    return columns, values


@router.get("/runs/{run_id}/artifacts/{path:path}", response_class=HTMLResponse)
def artifact_page(request: Request, caller: _Caller, run_id: str, path: str) -> HTMLResponse:
    run, digest, size, is_dir = _artifact(request, run_id, path)
    objects = request.app.state.workspace.artifacts
    context: dict[str, Any] = {"run": run, "path": path, "size": size, "digest": digest}
    if is_dir:
        context["entries"] = objects.read_manifest(digest).entries
        return render(request, "artifact.html", title=path, kind="folder", **context)
    kind = _kind(path)
    if kind == "image":
        return render(request, "artifact.html", title=path, kind=kind, **context)
    data = objects.read_bytes(digest) if kind == "parquet" else _head(objects, digest)
    if kind in ("csv", "parquet"):
        try:
            columns, rows = _table_head(data, kind)
            return render(
                request,
                "artifact.html",
                title=path,
                kind="table",
                columns=columns,
                rows=rows,
                **context,
            )
        except Exception as exc:
            context["problem"] = f"cannot read it as {kind}: {exc}"
            data = data[:PREVIEW_BYTES]
    text = data[:PREVIEW_BYTES].decode("utf-8", errors="replace")
    binary = "\x00" in text
    return render(
        request,
        "artifact.html",
        title=path,
        kind="text",
        text=text,
        binary=binary,
        cut=size > PREVIEW_BYTES,
        **context,
    )


def _head(objects: Any, digest: str) -> bytes:
    local = objects.local_path(digest)
    if local is not None:
        with open(local, "rb") as handle:
            return handle.read(PREVIEW_BYTES + 1)
    data: bytes = objects.read_bytes(digest)
    return data[: PREVIEW_BYTES + 1]


@router.get("/runs/{run_id}/raw/{path:path}")
def artifact_raw(request: Request, caller: _Caller, run_id: str, path: str) -> Response:
    """The file itself, sandboxed: a logged HTML or SVG file cannot run script as the site."""
    from shipyard.server.objects import serve_object

    _, digest, _, is_dir = _artifact(request, run_id, path)
    if is_dir:
        raise InvalidArgumentError(f"{path!r} is a folder; open one of its files")
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if kind.startswith("image/") and kind != "image/svg+xml":
        media = kind
    else:
        media = "text/plain; charset=utf-8" if _kind(path) in ("csv", "text") else kind
    response = serve_object(request.app.state.workspace.artifacts, digest, media)
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src 'self'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if media == kind and not kind.startswith("image/"):
        response.headers["Content-Disposition"] = "attachment"
    return response


@router.get("/compare", response_class=HTMLResponse)
def compare(
    request: Request,
    caller: _Caller,
    runs: Annotated[list[str], Query(max_length=64)] = [],  # noqa: B006 - FastAPI's idiom
    metric: Annotated[str, Query(max_length=250)] = "",
) -> HTMLResponse:
    backend = request.app.state.workspace.backend
    ids = list(dict.fromkeys(r for value in runs for r in value.split(",") if r.strip()))
    if len(ids) < 2:
        raise InvalidArgumentError("choose at least two runs to compare (tick them in a table)")
    if len(ids) > MAX_COMPARE:
        raise InvalidArgumentError(f"compare at most {MAX_COMPARE} runs at once")
    found = [_run(backend, r) for r in ids]
    names = [f"{r.name} ({r.run_id[:6]})" for r in found]
    metric_keys = sorted({k for r in found for k in r.metrics})
    param_keys = sorted({k for r in found for k in r.params})
    shared = [k for k in metric_keys if all(k in r.metrics for r in found)]
    curves = []
    for key in metric_keys[:12]:
        series = []
        for run, name in zip(found, names, strict=True):
            if key in run.metrics:
                history = backend.get_metric_history(run.run_id, key)
                series.append(
                    charts.Series(name, [m.step for m in history], [m.value for m in history])
                )
        curves.append(
            charts.line_chart(series, title=f"{key} by step", x_label="step", y_label=key)
        )
    outcome = metric if metric in metric_keys else (shared[0] if shared else "")
    varying = [k for k in param_keys if len({r.params.get(k) for r in found}) > 1]
    parallel = None
    if outcome and varying:
        rows: list[dict[str, float | str]] = []
        for run in found:
            row: dict[str, float | str] = {
                f"params.{k}": run.params[k] for k in varying if k in run.params
            }
            if outcome in run.metrics:
                row[f"metrics.{outcome}"] = run.metrics[outcome]
            rows.append(row)
        axes = [f"params.{k}" for k in varying[:10]] + [f"metrics.{outcome}"]
        parallel = charts.parallel_coordinates(
            rows, axes, title=f"Params against {outcome}", names=names
        )
    table = []
    for kind, keys in (("param", param_keys), ("metric", metric_keys)):
        for key in keys:
            values = [cell(r, f"{kind}s.{key}") for r in found]
            table.append((kind, key, values, len({str(v) for v in values}) > 1))
    return render(
        request,
        "compare.html",
        title="Compare runs",
        runs=found,
        names=names,
        curves=curves,
        parallel=parallel,
        outcome=outcome,
        metric_keys=metric_keys,
        table=table,
        ids=ids,
    )
