"""``evaluate``: one model on one table, into a :class:`ValidationReport`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.entities.validation import (
    CalibrationCurve,
    ChampionComparison,
    ConfusionMatrix,
    Residuals,
    RobustnessCheck,
    ValidationReport,
)
from shipyard.errors import InvalidArgumentError
from shipyard.validation.compare import paired_bootstrap
from shipyard.validation.fairness import fairness_result
from shipyard.validation.metrics import compute_metrics, detect_task, main_metric
from shipyard.validation.robustness import robustness_checks
from shipyard.validation.slices import slice_report

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from shipyard.models import LoadedModel

__all__ = ["CALIBRATION_BINS", "RESIDUAL_POINTS", "TASKS", "evaluate"]

TASKS = ("binary", "multiclass", "regression", "classification")
CALIBRATION_BINS = 10
RESIDUAL_POINTS = 2000


@dataclass(frozen=True)
class _Outputs:
    pred: np.ndarray[Any, Any]
    proba: np.ndarray[Any, Any] | None


def _has_proba(model: Any) -> bool:
    flag = getattr(model, "has_predict_proba", None)
    if isinstance(flag, bool):
        return flag
    return callable(getattr(model, "predict_proba", None))


def _inner(model: Any) -> Any:
    return getattr(model, "model", model)


def _name(model: Any) -> str:
    meta = getattr(model, "meta", None)
    return str(getattr(meta, "model_type", None) or type(_inner(model)).__name__)


def _features(model: Any, data: pd.DataFrame, target: str) -> list[str]:
    """The model's input columns: its signature, else ``feature_names_in_``, else the rest."""
    signature = getattr(model, "signature", None)
    if signature is not None and signature.inputs and not signature.is_tensor:
        return [spec.name for spec in signature.inputs]
    names = getattr(_inner(model), "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    return [str(c) for c in data.columns if c != target]


def _inputs(model: Any, data: pd.DataFrame, target: str) -> pd.DataFrame:
    features = _features(model, data, target)
    missing = [f for f in features if f not in data.columns]
    if missing:
        raise InvalidArgumentError(
            f"the data lacks the model's input column(s) {', '.join(map(repr, missing))}"
        )
    if target in features:
        raise InvalidArgumentError(f"the target {target!r} is one of the model's inputs")
    return data.loc[:, features]


def _run(model: Any, features: pd.DataFrame, *, proba: bool) -> _Outputs:
    import numpy as np

    pred = np.asarray(model.predict(features))
    if pred.ndim == 2 and pred.shape[1] == 1:
        pred = pred.ravel()
    return _Outputs(pred, np.asarray(model.predict_proba(features), dtype=float) if proba else None)


def _classes(model: Any, y: np.ndarray[Any, Any], pred: np.ndarray[Any, Any]) -> Any:
    import numpy as np

    known = getattr(_inner(model), "classes_", None)
    if known is not None:
        return np.asarray(known)
    return np.unique(np.concatenate([y, pred]))


def _check_data(data: Any, target: str, columns: Sequence[str]) -> None:
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        raise InvalidArgumentError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    if target not in data.columns:
        raise InvalidArgumentError(f"the data has no target column {target!r}")
    if data.empty:
        raise InvalidArgumentError("the data has no rows")
    if data[target].isna().any():
        raise InvalidArgumentError(
            f"the target {target!r} is missing on {int(data[target].isna().sum())} row(s)"
        )
    unknown = [c for c in columns if c not in data.columns]
    if unknown:
        raise InvalidArgumentError(f"the data has no column(s) {', '.join(map(repr, unknown))}")


def evaluate(
    model: LoadedModel,
    data: pd.DataFrame,
    *,
    target: str,
    task: str | None = None,
    slices: Sequence[str] = (),
    sensitive: Sequence[str] = (),
    against: LoadedModel | None = None,
    robustness: bool = True,
    seed: int = 0,
    model_name: str | None = None,
    against_name: str | None = None,
    data_name: str = "",
) -> ValidationReport:
    """Evaluate ``model`` on ``data`` (unseen rows holding the ``target`` column).

    Args:
        model: the candidate (a :class:`~shipyard.models.LoadedModel`, or any object with
            ``predict`` and optionally ``predict_proba`` and ``classes_``).
        data: the rows; the model's input columns are taken from its signature.
        target: the column holding the true values.
        task: ``binary``, ``multiclass``, ``classification`` or ``regression``; detected when
            None (classification if the model has ``predict_proba`` or the target holds labels).
        slices: columns to compute the metrics per value (or quantile bin) of.
        sensitive: columns to compute fairness per group of.
        against: a model (the champion) to compare with on the same rows.
        robustness: whether to score the model on noisy and incomplete copies of the rows.
        seed: seeds every random draw; the same seed gives the same report.
        model_name: how the report names the model (default: its class).
        against_name: how the report names ``against``.
        data_name: how the report names the data.

    Raises:
        InvalidArgumentError: a column is missing, the target has gaps, the task is unknown,
            or the two models do not predict the same classes.
        InputMismatchError: the rows do not fit the model's signature.
    """
    import numpy as np

    if task is not None and task not in TASKS:
        raise InvalidArgumentError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    _check_data(data, target, [*slices, *sensitive])
    data = data.reset_index(drop=True)
    features = _inputs(model, data, target)
    y = data[target].to_numpy()
    has_proba = _has_proba(model)
    notes: list[str] = []

    probe = _run(model, features, proba=False)
    if task == "regression":
        kind = "regression"
    else:
        detected = detect_task(data[target], has_proba=has_proba)
        if task is None and detected != "regression":
            notes.append(
                "task: classification "
                + ("(the model has predict_proba)" if has_proba else "(the target holds labels)")
            )
        kind = detected if task is None else "classification"
    classes = None
    proba = None
    if kind != "regression":
        classes = _classes(model, y, probe.pred)
        kind = "binary" if len(classes) <= 2 else "multiclass"
        if has_proba:
            proba = np.asarray(model.predict_proba(features), dtype=float)
            if proba.ndim != 2 or proba.shape[1] != len(classes):
                raise InvalidArgumentError(
                    f"predict_proba gave shape {proba.shape}; expected one column per class "
                    f"({len(classes)})"
                )
    pred = probe.pred
    metrics = compute_metrics(kind, y, pred, proba, classes)
    main = main_metric(kind, has_proba=proba is not None)

    confusion = calibration = residuals = None
    if classes is not None:
        from sklearn.metrics import confusion_matrix

        counts = confusion_matrix(y, pred, labels=classes)
        confusion = ConfusionMatrix(
            labels=tuple(str(c) for c in classes),
            counts=tuple(tuple(int(v) for v in row) for row in counts),
        )
        if kind == "binary" and proba is not None:
            calibration = _calibration(y == classes[1], proba[:, 1], str(classes[1]))
    else:
        residuals = _residuals(y, pred, seed)

    slice_reports = tuple(
        slice_report(data[c], kind, y, pred, proba, classes) for c in dict.fromkeys(slices)
    )
    binned = [s.column for s in slice_reports if s.binned]
    if binned:
        notes.append(f"slices: {', '.join(binned)} cut into quantile bins")
    fairness = tuple(
        fairness_result(data[c], kind, y, pred, proba, classes) for c in dict.fromkeys(sensitive)
    )

    checks: list[RobustnessCheck] = []
    if robustness:

        def score(perturbed: pd.DataFrame) -> float:
            out = _run(model, perturbed, proba=proba is not None)
            return compute_metrics(kind, y, out.pred, out.proba, classes)[main]

        checks, robustness_notes = robustness_checks(features, score, main, metrics[main], seed)
        notes.extend(robustness_notes)

    comparison = None
    if against is not None:
        comparison = _compare(
            against,
            data,
            target,
            kind=kind,
            y=y,
            candidate=_Outputs(pred, proba),
            classes=classes,
            main=main,
            metrics=metrics,
            seed=seed,
            name=against_name or _name(against),
            notes=notes,
        )

    return ValidationReport(
        model=model_name or _name(model),
        data=data_name,
        task=kind,
        target=target,
        rows=len(data),
        main_metric=main,
        metrics=metrics,
        seed=seed,
        classes=tuple(str(c) for c in classes) if classes is not None else (),
        confusion=confusion,
        calibration=calibration,
        residuals=residuals,
        slices=slice_reports,
        fairness=fairness,
        robustness=tuple(checks),
        comparison=comparison,
        notes=tuple(notes),
    )


def _calibration(
    positive: np.ndarray[Any, Any], scores: np.ndarray[Any, Any], label: str
) -> CalibrationCurve:
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(positive, scores, n_bins=CALIBRATION_BINS)
    return CalibrationCurve(
        positive=label,
        bins=CALIBRATION_BINS,
        mean_predicted=tuple(float(v) for v in predicted),
        observed=tuple(float(v) for v in observed),
    )


def _residuals(y: np.ndarray[Any, Any], pred: np.ndarray[Any, Any], seed: int) -> Residuals:
    import numpy as np

    rows = np.arange(len(y))
    if len(rows) > RESIDUAL_POINTS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, RESIDUAL_POINTS, replace=False))
    actual = np.asarray(y, dtype=float)[rows]
    predicted = np.asarray(pred, dtype=float)[rows]
    return Residuals(
        predicted=tuple(float(v) for v in predicted),
        residual=tuple(float(v) for v in actual - predicted),
        rows=len(y),
    )


def _compare(
    against: Any,
    data: pd.DataFrame,
    target: str,
    *,
    kind: str,
    y: np.ndarray[Any, Any],
    candidate: _Outputs,
    classes: np.ndarray[Any, Any] | None,
    main: str,
    metrics: dict[str, float],
    seed: int,
    name: str,
    notes: list[str],
) -> ChampionComparison:
    import numpy as np

    features = _inputs(against, data, target)
    champion = _run(against, features, proba=candidate.proba is not None and _has_proba(against))
    if classes is not None:
        theirs = _classes(against, y, champion.pred)
        if len(theirs) != len(classes) or not np.array_equal(
            np.asarray(theirs).astype(str), np.asarray(classes).astype(str)
        ):
            raise InvalidArgumentError(
                f"the models predict different classes: {list(map(str, classes))} and "
                f"{list(map(str, theirs))}"
            )
    metric = main
    if candidate.proba is not None and champion.proba is None:
        metric = "accuracy"
        notes.append(f"comparison: {name} has no predict_proba, so it is on accuracy")
    champion_metrics = compute_metrics(kind, y, champion.pred, champion.proba, classes)
    return paired_bootstrap(
        metric,
        y,
        (candidate.pred, candidate.proba),
        (champion.pred, champion.proba),
        classes,
        seed=seed,
        against=name,
        candidate_value=metrics[metric],
        champion_value=champion_metrics[metric],
        champion_metrics=champion_metrics,
    )
