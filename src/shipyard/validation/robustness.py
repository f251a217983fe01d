"""The main metric on perturbed input: Gaussian noise and missing values.

*Noise*: each numeric feature gets Gaussian noise with a standard deviation of ``level`` times
the column's own standard deviation (on the evaluation rows). *Missing*: a ``level`` share of
the cells of each numeric feature is set to missing and then filled with the column's median
(over the rows left), as a typical serving pipeline's imputer would; the check measures how much
the model relies on any one value being present, not whether it accepts NaN. Integer columns
are rounded back to integers. Non-numeric features are left alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from shipyard.entities.validation import RobustnessCheck
from shipyard.errors import InvalidArgumentError
from shipyard.validation.metrics import degradation

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["MISSING_SHARES", "NOISE_LEVELS", "add_missing", "add_noise", "robustness_checks"]

NOISE_LEVELS = (0.1, 0.3)
MISSING_SHARES = (0.1, 0.3)


def _numeric_columns(frame: pd.DataFrame) -> list[str]:
    import pandas as pd

    return [
        str(name)
        for name, dtype in frame.dtypes.items()
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    ]


def _restore(values: pd.Series, original: pd.Series) -> pd.Series:
    import pandas as pd

    if pd.api.types.is_integer_dtype(original.dtype):
        return values.round().astype(original.dtype)
    return values.astype(original.dtype)


def add_noise(frame: pd.DataFrame, level: float, rng: np.random.Generator) -> pd.DataFrame:
    """A copy of ``frame`` with Gaussian noise, ``level`` times each numeric column's std."""
    noisy = frame.copy()
    for name in _numeric_columns(frame):
        column = frame[name].astype(float)
        scale = float(column.std(ddof=0)) * level
        noise = rng.normal(0.0, scale if scale > 0 else 0.0, len(frame))
        noisy[name] = _restore(column + noise, frame[name])
    return noisy


def add_missing(frame: pd.DataFrame, share: float, rng: np.random.Generator) -> pd.DataFrame:
    """A copy of ``frame`` with a ``share`` of numeric cells blanked and median-filled."""
    filled = frame.copy()
    for name in _numeric_columns(frame):
        column = frame[name].astype(float)
        blanked = column.mask(rng.random(len(frame)) < share)
        median = blanked.median()
        if math.isnan(median):  # every cell was blanked
            median = column.median()
        filled[name] = _restore(blanked.fillna(median), frame[name])
    return filled


def robustness_checks(
    features: pd.DataFrame,
    score: Callable[[pd.DataFrame], float],
    metric: str,
    baseline: float,
    seed: int,
) -> tuple[list[RobustnessCheck], list[str]]:
    """The checks, and notes on what could not be checked.

    Args:
        features: the model's input rows.
        score: the main metric of the model's predictions on a perturbed copy of the rows.
        metric: the main metric's name.
        baseline: the main metric on the unperturbed rows.
        seed: every perturbation draws from a generator seeded by ``seed`` and its own index.
    """
    import numpy as np

    if not _numeric_columns(features):
        return [], ["robustness: no numeric feature to perturb"]
    perturbations: list[tuple[str, float, Callable[..., pd.DataFrame]]] = [
        *(("noise", level, add_noise) for level in NOISE_LEVELS),
        *(("missing", share, add_missing) for share in MISSING_SHARES),
    ]
    checks, notes = [], []
    for index, (kind, level, perturb) in enumerate(perturbations):
        rng = np.random.default_rng([seed, index])
        try:
            value = score(perturb(features, level, rng))
        except InvalidArgumentError as exc:
            notes.append(f"robustness {kind} {level}: the model rejected the input: {exc}")
            continue
        checks.append(
            RobustnessCheck(
                kind=kind,
                level=level,
                metric=metric,
                value=value,
                baseline=baseline,
                degradation=degradation(metric, value, baseline),
            )
        )
    return checks, notes
