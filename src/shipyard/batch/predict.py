"""Batch inference: stream a table through a registered model into a Parquet file.

The input is read in Arrow record batches and each batch is written as soon as it is scored,
so a table larger than memory goes through in constant memory. The output appears under its
final name only when every batch is written, and is then logged as a dataset version by a run
that records the model version and the input, so ``shipyard lineage`` can walk from the
predictions back to both.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.batch.predlog import BatchLog
from shipyard.errors import InputMismatchError, InvalidArgumentError, NotFoundError

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.entities import DatasetVersion, ModelVersion
    from shipyard.models.package import LoadedModel

__all__ = ["EXECUTORS", "PredictResult", "predict"]

EXECUTORS = ("local", "ray")
_RAY_HINT = "--executor ray needs Ray: pip install 'shipyard-mlops[ray]'"


@dataclass(frozen=True, slots=True)
class PredictResult:
    """What :func:`predict` wrote."""

    output: Path
    rows: int
    batches: int
    model_version: str
    """``name@N`` of the model that scored the rows."""
    dataset: DatasetVersion
    """The output logged as a version of ``<model>-predictions``."""
    run_id: str
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Plan:
    """Which input columns feed the model and which are copied through."""

    features: tuple[str, ...]
    keys: tuple[str, ...]
    tensor: bool
    proba: bool
    classes: tuple[str, ...]
    model_ref: str


@dataclass(frozen=True, slots=True)
class _Source:
    path: Path
    fmt: str
    version: DatasetVersion | None


def _open_source(
    input: str | os.PathLike[str], tmp: Path, home: str | os.PathLike[str] | None
) -> _Source:
    text = os.fspath(input)
    path = Path(text)
    if path.exists():
        suffix = "".join(path.suffixes[-2:]).lower() if path.is_file() else ""
        if path.is_dir():
            fmt = "parquet"
        elif suffix.endswith((".parquet", ".pq")):
            fmt = "parquet"
        elif suffix.endswith((".csv", ".csv.gz", ".tsv")):
            fmt = "csv"
        else:
            raise InvalidArgumentError(f"cannot read {path}: give a .parquet or .csv file")
        return _Source(path, fmt, None)
    if "@" not in text and not path.suffix == "":
        raise NotFoundError(f"input {text} does not exist")
    from shipyard.data.versions import materialize, resolve, workspace

    version = resolve(text, home=home)
    if version.format not in ("csv", "parquet"):
        raise InvalidArgumentError(f"{version.ref} is not a table (CSV or Parquet)")
    name = Path(version.source).name if version.source.startswith("/") else "data"
    if version.kind != "dir" and not name.lower().endswith((".csv", ".parquet", ".tsv", ".gz")):
        name = f"data.{version.format}"
    ws = workspace(home)
    local = materialize(ws.artifacts, version.digest, version.kind, tmp / name, link=True)
    return _Source(local, version.format, version)


def _dataset(source: _Source) -> Any:
    import pyarrow.dataset as ds

    if source.fmt == "csv":
        import pyarrow.csv as pacsv

        tab = source.path.name.lower().split(".")[1:2] == ["tsv"]
        csv_format = ds.CsvFileFormat(
            parse_options=pacsv.ParseOptions(delimiter="\t" if tab else ",")
        )
        return ds.dataset(source.path, format=csv_format)
    return ds.dataset(source.path, format="parquet")


def _plan(
    model: LoadedModel,
    model_ref: str,
    columns: list[str],
    key_columns: list[str] | None,
    proba: bool,
) -> _Plan:
    signature = model.signature
    if key_columns is not None:
        missing = [k for k in key_columns if k not in columns]
        if missing:
            raise InputMismatchError(
                missing[0],
                f"key column {missing[0]!r} is not in the input ({len(columns)} columns)",
            )
    if proba and not model.has_predict_proba:
        raise InvalidArgumentError(f"a {model.meta.model_type} model has no predict_proba")
    classes: tuple[str, ...] = ()
    if proba:
        found = getattr(model.model, "classes_", None)
        classes = tuple(str(c) for c in found) if found is not None else ()
    if signature is None or signature.is_tensor:
        keys = tuple(key_columns or ())
        features = tuple(c for c in columns if c not in keys)
        if signature is not None:
            width = (signature.inputs[0].shape or (-1, -1))[-1]
            if len(signature.inputs[0].shape or ()) == 2 and width not in (-1, len(features)):
                raise InputMismatchError(
                    signature.inputs[0].name,
                    f"the model takes {width} features; the input has {len(features)} "
                    f"non-key columns: {_shown(features)}",
                )
        return _Plan(features, keys, True, proba, classes, model_ref)
    features = signature.input_names
    missing = [name for name in features if name not in columns]
    if missing:
        raise InputMismatchError(
            missing[0],
            f"the input lacks {len(missing)} column(s) the model needs: {_shown(missing)}",
        )
    keys = (
        tuple(key_columns)
        if key_columns is not None
        else tuple(c for c in columns if c not in features)
    )
    return _Plan(tuple(features), keys, False, proba, classes, model_ref)


def _shown(names: Any) -> str:
    names = list(names)
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


def _prediction_array(values: Any) -> pa.Array:
    import numpy as np
    import pyarrow as pa

    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim == 1:
        return pa.array(array)
    flat = pa.array(np.ascontiguousarray(array).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, int(np.prod(array.shape[1:])))


def score_batch(model: LoadedModel, batch: pa.RecordBatch, plan: _Plan) -> pa.RecordBatch:
    """Predict for one record batch and return the output batch (keys, predictions, version)."""
    import pyarrow as pa

    features = batch.select(list(plan.features))
    if plan.tensor:
        import numpy as np

        data: Any = np.column_stack([c.to_numpy(zero_copy_only=False) for c in features.columns])
    else:
        data = features.to_pandas()
    arrays = [batch.column(k) for k in plan.keys]
    names = list(plan.keys)
    arrays.append(_prediction_array(model.predict(data)))
    names.append("prediction")
    if plan.proba:
        import numpy as np

        proba = np.asarray(model.predict_proba(data))
        labels = plan.classes or tuple(str(i) for i in range(proba.shape[1]))
        for i, label in enumerate(labels):
            arrays.append(pa.array(proba[:, i]))
            names.append(f"proba_{label}")
    arrays.append(pa.repeat(pa.scalar(plan.model_ref, pa.string()), batch.num_rows))
    names.append("model_version")
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _score_in_threads(
    model: LoadedModel, batches: Iterator[pa.RecordBatch], plan: _Plan
) -> Iterator[pa.RecordBatch]:
    """Score batches on every core, in input order, with a bounded number in flight.

    Reading and decoding the next batches (pyarrow) and the model's numeric work (numpy,
    scikit-learn, onnxruntime) release the GIL, so one batch is scored while the next is read.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    workers = max(1, min(4, os.cpu_count() or 1))
    pending: deque[Future[pa.RecordBatch]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="shipyard-predict") as pool:
        try:
            for batch in batches:
                pending.append(pool.submit(score_batch, model, batch, plan))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _read_model_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


_worker_models: dict[str, Any] = {}


def _score_remote(
    files: dict[str, bytes], digest: str, trusted_code: bool, batch: Any, plan: _Plan
) -> Any:
    """Score a batch in a Ray worker; the model is loaded (and verified) once per process."""
    model = _worker_models.get(digest)
    if model is None:
        from shipyard.models.package import load_model

        folder = Path(tempfile.mkdtemp(prefix="shipyard-model-"))
        for rel, content in files.items():
            target = folder.joinpath(*rel.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        model = load_model(folder, trusted_code=trusted_code)
        _worker_models[digest] = model
    return score_batch(model, batch, plan)


def _ray_results(
    batches: Iterator[pa.RecordBatch],
    model_folder: Path,
    version: ModelVersion,
    trusted_code: bool,
    plan: _Plan,
    address: str | None = None,
) -> Iterator[pa.RecordBatch]:
    """Score batches as Ray tasks, a bounded window in flight, yielding results in order."""
    try:
        import ray
    except ImportError as exc:
        raise InvalidArgumentError(_RAY_HINT) from exc
    started = False
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        if address is not None:
            from shipyard.pipelines.executors import check_ray_address

            check_ray_address(address)
        ray.init(address=address, log_to_driver=False, include_dashboard=False)
        started = True
    try:
        files = ray.put(_read_model_files(model_folder))
        remote = ray.remote(_score_remote)
        cpus = ray.available_resources().get("CPU", 1)  # type: ignore[no-untyped-call]
        window = max(2, 2 * int(cpus))
        pending: deque[Any] = deque()
        for batch in batches:
            pending.append(remote.remote(files, version.digest, trusted_code, batch, plan))
            if len(pending) >= window:
                yield ray.get(pending.popleft())
        while pending:
            yield ray.get(pending.popleft())
    finally:
        if started:
            ray.shutdown()


def predict(
    ref: str,
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    key_columns: list[str] | None = None,
    batch_size: int = 65536,
    executor: str = "local",
    proba: bool = False,
    trusted_code: bool = False,
    dataset_name: str | None = None,
    home: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    log_predictions: bool = True,
    ray_address: str | None = None,
) -> PredictResult:
    """Score a table with a registered model, streaming it in record batches.

    Args:
        ref: the model, ``name@3`` / ``name@champion`` / ``name``.
        input: a ``.parquet`` or ``.csv`` file (a folder of Parquet files too) or a dataset
            version ``name@v``.
        output: the Parquet file to write. It appears only when complete.
        key_columns: input columns copied to the output beside each prediction (default:
            every input column the model does not take).
        batch_size: rows per record batch.
        executor: ``"local"`` (this process) or ``"ray"`` (one Ray task per batch; uses the
            connected cluster, ``RAY_ADDRESS``, or a local one).
        proba: also write ``proba_<class>`` columns (classifiers only).
        trusted_code: allow loading models that run code when loaded (PyTorch).
        dataset_name: the dataset the output is logged to (default ``<model>-predictions``).
        home: workspace (default: ``SHIPYARD_HOME`` or the nearest ``.shipyard/``).
        progress: called as ``progress(rows_done, rows_total_or_None)`` after each batch.
        log_predictions: write every scored row to the model's prediction log (as the model
            server does, ``protocol`` ``batch``), so monitoring sees batch predictions too.
        ray_address: a running Ray cluster for ``executor="ray"`` (default ``RAY_ADDRESS``, or
            a local Ray).

    Returns:
        The output path, row and batch counts, and the dataset version logged.

    Raises:
        InputMismatchError: the input lacks a column the model needs (nothing is written).
        InvalidArgumentError: a bad argument or input the model rejects (nothing is written).

    Example:
        >>> from shipyard.batch import predict
        >>> predict("churn@champion", "customers.parquet", "scores.parquet")  # doctest: +SKIP
    """
    if executor not in EXECUTORS:
        raise InvalidArgumentError(f"unknown executor {executor!r}; choose one of {EXECUTORS}")
    if batch_size < 1:
        raise InvalidArgumentError("batch_size must be at least 1")
    import pyarrow.parquet as pq

    import shipyard
    from shipyard.data.versions import add
    from shipyard.models.logged import model_path
    from shipyard.models.package import load_model
    from shipyard.registry import Registry

    target = Path(output)
    if target.is_dir():
        raise InvalidArgumentError(f"{target} is a folder; --output must be a Parquet file")
    ws = shipyard.open_workspace(home)
    version = Registry(ws.backend, ws.settings.user).resolve(ref)
    model_ref = f"{version.model}@{version.version}"
    folder = model_path(version, ws)
    model = load_model(folder, trusted_code=trusted_code)
    with tempfile.TemporaryDirectory(prefix="shipyard-predict-") as scratch:
        source = _open_source(input, Path(scratch), home)
        dataset = _dataset(source)
        plan = _plan(model, model_ref, list(dataset.schema.names), key_columns, proba)
        total = dataset.count_rows() if source.fmt == "parquet" else None
        fed: deque[tuple[pa.RecordBatch, float]] = deque()

        def feeding() -> Iterator[pa.RecordBatch]:
            for b in dataset.to_batches(
                columns=[*plan.keys, *plan.features], batch_size=batch_size
            ):
                if b.num_rows:
                    fed.append((b, time.perf_counter()))
                    yield b

        batches = feeding()
        job_id = f"batch-{uuid.uuid4().hex}"
        log = (
            BatchLog(
                ws.settings.home,
                version.model,
                version.version,
                job_id,
                datetime.now(UTC),
                plan.classes if plan.proba else (),
            )
            if log_predictions
            else None
        )
        if executor == "ray":
            results: Iterator[pa.RecordBatch] = _ray_results(
                batches, folder, version, trusted_code, plan, ray_address
            )
        else:
            results = _score_in_threads(model, batches, plan)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        rows = count = 0
        writer = None
        try:
            for scored in results:
                source_batch, began = fed.popleft()  # results come back in input order
                if writer is None:
                    writer = pq.ParquetWriter(temp, scored.schema)
                writer.write_batch(scored)
                if log is not None:
                    latency = (time.perf_counter() - began) * 1000
                    log.add(source_batch.select(list(plan.features)), scored, latency)
                rows += scored.num_rows
                count += 1
                if progress is not None:
                    progress(rows, total)
            if writer is None:
                raise InvalidArgumentError(f"{os.fspath(input)} has no rows to score")
            writer.close()
            writer = None
            os.replace(temp, target)
            if log is not None:
                log.flush()
        finally:
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.close()
            temp.unlink(missing_ok=True)
        columns = tuple(pq.read_schema(target).names)
        name = dataset_name or f"{version.model}-predictions"
        tags = {
            "shipyard.batch.model_version": model_ref,
            "shipyard.batch.model_digest": version.digest,
            "shipyard.batch.input": os.fspath(input),
        }
        if log is not None:
            tags["shipyard.batch.request_id"] = job_id
        with shipyard.start_run(
            experiment="batch-predictions",
            name=f"predict-{version.model}-{version.version}",
            tags=tags,
            home=home,
            nested=shipyard.active_run() is not None,
            log_code=False,
        ) as run:
            run.log_params({"batch_size": batch_size, "executor": executor, "rows": rows})
            if source.version is not None:
                run.use_dataset(source.version.dataset, source.version.version)
            logged = add(target, name, pointer=False, home=home).version
    return PredictResult(target, rows, count, model_ref, logged, run.run_id, columns)
