"""Monitor a deployment: its prediction log cut into time windows, each compared with a reference.

For every window (``1h``, ``15m``, ``1d`` …) :func:`monitor_deployment` reports input and
prediction drift against the reference (:func:`shipyard.monitoring.drift.compare`), data
quality of the inputs against the reference's profile, measured performance where labels
arrived, estimated performance (CBPE) where the model gives probabilities, and service health;
and one drift report over the whole period, from a uniform sample of its rows.

Windows are read one at a time, so memory grows with the busiest window, not the period. The
reference is read and sorted once (:func:`~shipyard.monitoring.drift.prepare_reference`) and the
labels of the period are looked up once (:func:`~shipyard.monitoring.logs.read_labels`), so each
window costs its own rows.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.entities.data import DatasetProfile
from shipyard.entities.monitoring import DriftReport, WindowResult
from shipyard.errors import InvalidArgumentError, NotFoundError, ShipyardError
from shipyard.monitoring.logs import (
    input_table,
    join_labels,
    log_root,
    log_span,
    logged_inputs,
    read_labels,
    read_predictions,
    utc,
)
from shipyard.monitoring.performance import (
    LoggedVersions,
    estimated_performance,
    measured_performance,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from shipyard.entities import DatasetVersion

__all__ = [
    "MAX_WINDOWS",
    "MIN_DRIFT_ROWS",
    "PERIOD_SAMPLE_ROWS",
    "DeploymentMonitoring",
    "Reference",
    "floor_window",
    "monitor_deployment",
    "parse_window",
    "resolve_reference",
    "split_windows",
    "training_dataset",
]

log = logging.getLogger(__name__)

MIN_DRIFT_ROWS = 30
"""Windows with fewer answered rows are reported, but their drift is not tested."""
PERIOD_SAMPLE_ROWS = 100_000
"""Rows sampled (uniformly) from the whole period for its drift report."""
MAX_WINDOWS = 10_000
"""More windows than this is a mistake in ``window`` or the period."""
PREDICTION_COLUMN = "prediction"

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
# Windows start on multiples of their length counted from a Monday midnight (UTC), so hourly
# windows start on the hour, daily ones at midnight and weekly ones on Mondays.
_ORIGIN = datetime(1970, 1, 5, tzinfo=UTC)


def parse_window(window: str | timedelta) -> timedelta:
    """``15m``, ``1h``, ``1d``, ``1w`` (or a timedelta) as a positive duration.

    Raises:
        InvalidArgumentError: not a number followed by one of the units ``s m h d w``.
    """
    if isinstance(window, timedelta):
        width = window
    else:
        match = _DURATION.match(window) if isinstance(window, str) else None
        if match is None:
            raise InvalidArgumentError(
                f"window {window!r} is not a duration: write a whole number and a unit, e.g. "
                "15m, 1h or 1d (units: s seconds, m minutes, h hours, d days, w weeks)"
            )
        width = timedelta(**{_UNITS[match[2]]: int(match[1])})
    if width <= timedelta(0):
        raise InvalidArgumentError(f"window must be longer than zero, not {window!r}")
    return width


def floor_window(ts: datetime, width: timedelta | str) -> datetime:
    """The start of the window of length ``width`` that holds ``ts`` (UTC; windows are
    aligned to multiples of their length, weeks starting on Mondays)."""
    size = parse_window(width)
    return _ORIGIN + ((utc(ts) - _ORIGIN) // size) * size


def split_windows(
    start: datetime, end: datetime, width: timedelta
) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut into consecutive windows of ``width`` (the last one may be shorter).

    Raises:
        InvalidArgumentError: the period is empty or would need more than :data:`MAX_WINDOWS`.
    """
    start, end = utc(start), utc(end)
    if end <= start:
        raise InvalidArgumentError(f"the period ends ({end}) before it starts ({start})")
    count = -((start - end) // width)
    if count > MAX_WINDOWS:
        raise InvalidArgumentError(
            f"{start} to {end} in windows of {width} makes {count} windows (at most "
            f"{MAX_WINDOWS}); choose a longer window or a shorter period"
        )
    return [(start + i * width, min(start + (i + 1) * width, end)) for i in range(count)]


@dataclass(frozen=True, slots=True)
class Reference:
    """What live traffic is compared against.

    Attributes:
        label: how reports name it: ``churn@3``, a path, ``the DataFrame``.
        profile: its profile, for the quality checks.
        data: its rows (pandas or Arrow), for drift; None when only a profile was given.
        dataset: the dataset version it is, if it is one.
    """

    label: str
    profile: DatasetProfile
    data: pd.DataFrame | pa.Table | None = None
    dataset: DatasetVersion | None = None


def resolve_reference(
    reference: Any,
    *,
    home: str | os.PathLike[str] | None = None,
    inputs: list[str] | None = None,
    load: bool = True,
) -> Reference:
    """Turn what the user named into a :class:`Reference`.

    Args:
        reference: a dataset version (``churn@3``, ``dataset:churn@3``); a model version
            (``model:churn@champion``, or ``churn@2`` when no dataset ``churn`` exists), meaning
            the table its training run read (:func:`training_dataset`); a CSV or Parquet path;
            a pandas DataFrame or Arrow table; or a :class:`DatasetProfile`.
        home: the workspace holding datasets and models.
        inputs: the model's input columns, to choose among a training run's datasets.
        load: read the rows of a dataset version or path; False keeps only the profile (a
            version's stored one; a path is profiled) and drift then runs on its bins.

    Raises:
        NotFoundError: no such dataset, model or path.
        InvalidArgumentError: a version that is not a table, or a training run that read
            several candidate tables.
    """
    from shipyard import data

    if isinstance(reference, DatasetProfile):
        return Reference("the stored profile", reference)
    if not isinstance(reference, str | os.PathLike):
        return Reference(_describe(reference), data.profile(reference), reference)
    text = os.fspath(reference)
    if Path(text).exists():
        return Reference(text, data.profile(text), _read_table(text) if load else None)
    kind, _, ref = (
        text.rpartition(":") if text.startswith(("dataset:", "model:")) else ("", "", text)
    )
    if kind == "model":
        return _dataset_reference(training_dataset(ref, home=home, inputs=inputs), home, load)
    try:
        version = data.resolve(ref, home=home)
    except NotFoundError:
        if kind == "dataset":
            raise
        try:
            version = training_dataset(ref, home=home, inputs=inputs)
        except NotFoundError as exc:
            raise NotFoundError(
                f"{text!r} is neither a path, a dataset version nor a model version ({exc})"
            ) from exc
    return _dataset_reference(version, home, load)


def _describe(table: Any) -> str:
    from shipyard.data.tables import describe_source

    return describe_source(table)


def _read_table(path: str) -> pa.Table:
    from shipyard.data.tables import connect, open_relation, read_errors

    with connect() as con, read_errors(path):
        return open_relation(con, path).to_arrow_table()


def _dataset_reference(
    version: DatasetVersion, home: str | os.PathLike[str] | None, load: bool = True
) -> Reference:
    from shipyard import data

    if version.profile is None or not version.format:
        raise InvalidArgumentError(
            f"{version.ref} is not a table with a profile; compare against a table version"
        )
    rows = data.load(version.ref, home=home) if load else None
    return Reference(version.ref, version.profile, rows, version)


def training_dataset(
    model_ref: str, *, home: str | os.PathLike[str] | None = None, inputs: list[str] | None = None
) -> DatasetVersion:
    """The table a model version was trained on: the one its run read (``run.use_dataset``,
    ``shipyard.data.load`` inside the run).

    Args:
        model_ref: ``name@version``, ``name@alias`` or ``name``.
        home: the workspace.
        inputs: the model's input columns; a run that read several tables is narrowed to those
            holding all of them.

    Raises:
        NotFoundError: no such model version, or its run recorded no table it read.
        InvalidArgumentError: the run read several tables that all fit.
    """
    from shipyard.registry import Registry
    from shipyard.tracking import open_workspace

    workspace = open_workspace(home)
    version = Registry(workspace.backend, workspace.settings.user).resolve(model_ref)
    if version.run_id is None:
        raise NotFoundError(f"{version.ref} was not logged from a run: no training data known")
    read = workspace.backend.run_dataset_versions([version.run_id], "input")
    # The lineage rows leave profiles out; fetch each table version whole.
    tables = [
        full
        for _, v in read
        if v.format
        and (full := workspace.backend.get_dataset_version(v.dataset, str(v.version))).profile
    ]
    if inputs:
        tables = [
            v
            for v in tables
            if v.profile is not None and set(inputs) <= {c.name for c in v.profile.columns}
        ]
    if not tables:
        raise NotFoundError(
            f"the run {version.run_id} that logged {version.ref} read no table holding the "
            "model's inputs; name the training dataset version as the reference"
        )
    if len(tables) > 1:
        names = ", ".join(v.ref for v in tables)
        raise InvalidArgumentError(
            f"the run that logged {version.ref} read several tables ({names}); name the one to "
            "compare against"
        )
    return tables[0]


@dataclass(frozen=True, slots=True)
class DeploymentMonitoring:
    """A deployment's traffic over a period, window by window, compared with a reference."""

    model: str
    reference: str
    window: timedelta
    start: datetime
    end: datetime
    windows: tuple[WindowResult, ...]
    drift: DriftReport | None
    """Drift over the whole period (a uniform sample of at most ``PERIOD_SAMPLE_ROWS``)."""
    notes: tuple[tuple[datetime | None, str], ...] = ()
    """``(window start, reason)`` for what could not be computed (``None``: the period)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "reference": self.reference,
            "window_seconds": self.window.total_seconds(),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "windows": [w.to_dict() for w in self.windows],
            "drift": self.drift.to_dict() if self.drift is not None else None,
            "notes": [
                {"window_start": at.isoformat() if at else None, "note": text}
                for at, text in self.notes
            ],
        }


def monitor_deployment(
    model: str,
    *,
    reference: Any,
    window: str | timedelta = "1h",
    start: datetime | None = None,
    end: datetime | None = None,
    home: str | os.PathLike[str] | None = None,
    log_folder: str | os.PathLike[str] | None = None,
    columns: list[str] | None = None,
    min_rows: int = MIN_DRIFT_ROWS,
    prediction_drift: bool = True,
    estimate: bool = True,
    sample_rows: int = PERIOD_SAMPLE_ROWS,
    drift_options: dict[str, Any] | None = None,
    memory_limit: str = "2GB",
) -> DeploymentMonitoring:
    """Drift, quality, performance and health of a served model, window by window.

    Args:
        model: the served model name (the ``model=`` folder of the prediction log).
        reference: what traffic is compared against; see :func:`resolve_reference`.
        window: window length, ``15m``, ``1h``, ``1d`` … or a timedelta.
        start: start of the period (naive: UTC); default the first logged request, rounded
            down to a window boundary.
        end: end of the period, excluded; default the window boundary after the last request.
        home: the workspace (datasets, models and, without ``log_folder``, the log).
        log_folder: the folder holding ``predictions/`` and ``feedback/``, if not the
            workspace's.
        columns: the input columns to check for drift and quality (default: every logged
            input).
        min_rows: fewer answered rows in a window: drift is not tested (noted why).
        prediction_drift: also compare the distribution of predictions. The reference's
            predictions are its ``prediction`` column, or else the logged model's (the version
            that answered most requests) predictions on the reference rows.
        estimate: estimate performance (CBPE) from probabilities, loading the logged model
            versions when the log has no ``proba``.
        sample_rows: rows sampled from the whole period for its drift report.
        drift_options: passed on to :func:`shipyard.monitoring.drift.compare` (``tests``,
            ``thresholds``, ``alpha``, ``correction``, ``share_threshold``, ``column_kinds``,
            ``multivariate`` …).
        memory_limit: DuckDB's memory limit while reading the log.

    Returns:
        One :class:`WindowResult` per window (empty windows included) and the period's drift.

    Raises:
        NotFoundError: the model has no prediction log, or the reference does not exist.
        InvalidArgumentError: a bad window, period or option, or a reference that has none of
            the input columns to check.
    """
    from shipyard.monitoring.drift import compare, prepare_reference
    from shipyard.monitoring.health import health_by_window
    from shipyard.monitoring.quality import check_inputs

    if min_rows < 1 or sample_rows < 1:
        raise InvalidArgumentError("min_rows and sample_rows must be at least 1")
    width = parse_window(window)
    folder = log_root(log_folder, home=home)
    if start is None or end is None:
        span = log_span(model, root=folder, memory_limit=memory_limit)
        start = start if start is not None else floor_window(span.first, width)
        end = end if end is not None else floor_window(span.last, width) + width
    start, end = utc(start), utc(end)
    bounds = split_windows(start, end, width)
    logged = logged_inputs(model, start=start, end=end, root=folder)
    checked = [c for c in columns if c in logged] if columns is not None else logged
    if columns is not None and (unknown := sorted(set(columns) - set(logged))):
        raise NotFoundError(f"the log of {model!r} has no input columns {', '.join(unknown)}")
    ref = resolve_reference(reference, home=home, inputs=logged)
    _check_overlap(model, ref, checked, explicit=columns is not None)
    notes: list[tuple[datetime | None, str]] = []
    versions = LoggedVersions(model, home)
    period = read_predictions(
        model,
        start=start,
        end=end,
        root=folder,
        labels=False,
        sample=sample_rows,
        successful=True,
        memory_limit=memory_limit,
    )
    baseline = _drift_baseline(ref, logged, period, versions, prediction_drift, notes)
    in_baseline = _names(baseline)
    options = dict(drift_options or {})
    compared = [c for c in [*checked, PREDICTION_COLUMN] if c in in_baseline]
    # No traffic in the period: no column to compare, and no window will ask for drift.
    prepared = (
        baseline
        if isinstance(baseline, DatasetProfile) or not compared
        else prepare_reference(baseline, columns=compared, column_kinds=options.get("column_kinds"))
    )

    def drift(current: pa.Table, label: str, w_start: datetime, w_end: datetime) -> DriftReport:
        predicted = PREDICTION_COLUMN if PREDICTION_COLUMN in in_baseline else None
        report = compare(
            prepared,
            current,
            columns=[c for c in checked if c in in_baseline and c in current.column_names],
            prediction_column=predicted,
            reference_label=ref.label,
            current_label=label,
            quality=False,  # each window's inputs are checked apart, as the model sees them
            **options,
        )
        return replace(report, window_start=w_start, window_end=w_end)

    healths = health_by_window(model, bounds, root=folder, memory_limit=memory_limit)
    labels = read_labels(model, start=start, end=end, root=folder, memory_limit=memory_limit)
    results = []
    unestimated = 0
    for (w_start, w_end), health in zip(bounds, healths, strict=True):
        # The model needs every input to give probabilities the log lacks.
        table = read_predictions(
            model,
            start=w_start,
            end=w_end,
            root=folder,
            columns=None if estimate else checked,
            labels=False,
            memory_limit=memory_limit,
        )
        table = join_labels(table, labels)
        inputs = input_table(table)
        inputs = inputs.select([c for c in checked if c in inputs.column_names])
        current = _with_predictions(inputs, table)
        rows = current.num_rows
        report = None
        window_notes: list[str] = []
        if rows >= min_rows:
            report = drift(current, f"{model} {w_start.isoformat()}", w_start, w_end)
        elif rows:
            window_notes.append(f"drift not tested: {rows} rows, fewer than {min_rows}")
        else:
            window_notes.append("no answered requests in the window")
        notes.extend((w_start, note) for note in window_notes)
        quality = (
            check_inputs(inputs, ref.profile, expected=checked, memory_limit=memory_limit)
            if rows
            else ()
        )
        measured = measured_performance(table)
        estimated = estimated_performance(table, versions) if estimate and rows else None
        unestimated += bool(estimate and rows and estimated is None)
        results.append(
            WindowResult(
                start=w_start,
                end=w_end,
                rows=rows,
                drift=report,
                quality=quality,
                performance=measured.metrics,
                labelled_rows=measured.labelled_rows,
                label_delay_seconds=measured.label_delay_seconds,
                estimated_performance=estimated,
                health=health,
                notes=tuple(window_notes),
            )
        )
    if unestimated:
        notes.append(
            (None, f"no performance estimate in {unestimated} windows: no class probabilities")
        )
    whole = _with_predictions(input_table(period), period)
    overall = None
    if whole.num_rows >= min_rows:
        overall = drift(whole, f"{model} {start.isoformat()} to {end.isoformat()}", start, end)
    else:
        notes.append((None, f"period drift not tested: {whole.num_rows} rows"))
    return DeploymentMonitoring(
        model=model,
        reference=ref.label,
        window=width,
        start=start,
        end=end,
        windows=tuple(results),
        drift=overall,
        notes=tuple(notes),
    )


def _check_overlap(model: str, ref: Reference, checked: list[str], *, explicit: bool) -> None:
    """Refuse a reference that has none of the inputs to check: nothing could be compared."""
    if ref.data is not None:
        data = ref.data
        columns = list(data.column_names if hasattr(data, "column_names") else data.columns)
    else:
        columns = _names(ref.profile)
    if not checked or set(checked) & set(columns):
        return
    what = "the columns to check" if explicit else f"the inputs logged for {model!r}"
    shown = ", ".join(map(str, columns[:20])) + (", ..." if len(columns) > 20 else "")
    raise InvalidArgumentError(
        f"the reference ({ref.label}) has none of {what} ({', '.join(checked)}); its columns are "
        f"{shown or 'none'}: compare against the table the model was trained on, whose columns "
        "are named like the model's inputs"
    )


def _with_predictions(inputs: pa.Table, table: pa.Table) -> pa.Table:
    """The answered rows' inputs with their prediction, as drift compares them."""
    import pyarrow.compute as pc

    if PREDICTION_COLUMN in inputs.column_names:
        return inputs
    answered = table.filter(pc.less(table.column("status"), 400)) if table.num_rows else table
    return inputs.append_column(PREDICTION_COLUMN, answered.column("prediction"))


def _drift_baseline(
    ref: Reference,
    inputs: list[str],
    period: pa.Table,
    versions: LoggedVersions,
    prediction_drift: bool,
    notes: list[tuple[datetime | None, str]],
) -> pa.Table | DatasetProfile:
    """The reference as drift compares it: its rows (or profile), with predictions if wanted."""
    import pyarrow as pa

    if ref.data is None:
        if prediction_drift and PREDICTION_COLUMN not in _names(ref.profile):
            notes.append((None, "no prediction drift: the reference profile has no predictions"))
        return ref.profile
    table = ref.data if isinstance(ref.data, pa.Table) else pa.Table.from_pandas(ref.data)
    table = table.select([c for c in table.column_names if c in inputs or c == PREDICTION_COLUMN])
    if not prediction_drift:
        return table.drop_columns([c for c in table.column_names if c == PREDICTION_COLUMN])
    if PREDICTION_COLUMN in table.column_names:
        return table
    predicted = _reference_predictions(table, period, versions)
    if isinstance(predicted, str):
        notes.append((None, f"no prediction drift: {predicted}"))
        return table
    return table.append_column(PREDICTION_COLUMN, predicted)


def _names(baseline: pa.Table | DatasetProfile) -> list[str]:
    if isinstance(baseline, DatasetProfile):
        return [c.name for c in baseline.columns]
    return list(baseline.column_names)


def _reference_predictions(
    table: pa.Table, period: pa.Table, versions: LoggedVersions
) -> pa.Array | str:
    """The most used logged version's predictions on the reference rows, or why there are none."""
    import pyarrow as pa
    import pyarrow.compute as pc

    answered = period.filter(pc.less(period.column("status"), 400)).column("version")
    if not len(answered):
        return "no answered requests in the period"
    version = str(Counter(answered.to_pylist()).most_common(1)[0][0])
    loaded = versions.get(version)
    if loaded is None:
        return f"cannot load {versions.model}@{version}"
    try:
        predicted = loaded.predict(table.to_pandas())
    except ShipyardError as exc:
        return f"{versions.model}@{version} cannot predict the reference rows: {exc}"
    return pa.array(list(getattr(predicted, "tolist", lambda: predicted)()))
