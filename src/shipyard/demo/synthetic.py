"""A synthetic customer-churn table whose world can drift.

``make_customers(rows, seed=s)`` draws customers of a subscription business: who they are,
what they pay, how long they have stayed, and whether they left (``churned``). ``drift``
moves the world from its first state (0) to a second one (1) in two ways at once:

- **the inputs shift**: incomes and prices rise, the plan mix moves to premium, new
  customers arrive (shorter tenure) and call support more often, so a drift test flags
  most feature columns;
- **the concept changes**: support calls stop signalling trouble (they now resolve it),
  long contracts become the ones a competitor poaches, and customers grow more sensitive
  to price, so a model fitted on the first world ranks the second one much worse.

``gender`` is a sensitive attribute, not a model input; it is mildly tied to ``income``
and ``age``, so group fairness numbers are moderate rather than zero.

Example:
    >>> frame = make_customers(1_000, seed=1)
    >>> frame.shape
    (1000, 10)
    >>> sorted(frame["plan"].unique())
    ['basic', 'premium', 'standard']
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from shipyard.errors import InvalidArgumentError

__all__ = ["FEATURES", "GATE_POLICY_YAML", "SENSITIVE", "TARGET", "make_customers"]

NUMERIC = ("age", "income", "tenure_months", "monthly_charges", "support_calls")
CATEGORICAL = ("plan", "region", "contract")
FEATURES: tuple[str, ...] = (*NUMERIC, *CATEGORICAL)
"""The model's input columns."""
TARGET = "churned"
SENSITIVE = "gender"

GATE_POLICY_YAML = """\
# The churn model's gate: good enough, fair enough, no worse than the champion.
min:
  roc_auc: 0.75
max_fairness_gap:
  demographic_parity_difference: 0.2
  equalized_odds_difference: 0.3
max_regression:
  roc_auc: 0.02
"""
"""A policy for ``shipyard validate --policy``, to run with ``--sensitive gender`` and
``--against`` the champion: ROC AUC at least 0.75, gaps between genders no larger than a
normal model shows on a few thousand rows, and at most 0.02 ROC AUC below the champion on
the same rows. ``max_regression`` needs the comparison: a first version, with no champion
yet, fails it (``required check 'comparison' did not run``)."""

PLANS = ("basic", "standard", "premium")
REGIONS = ("north", "south", "east", "west")
CONTRACTS = ("monthly", "annual", "two-year")
GENDERS = ("female", "male", "nonbinary")

_Floats = npt.NDArray[np.float64]

# Coefficients of the churn logit in the first world (drift 0) and the second (drift 1);
# the world at drift d blends the two linearly.
_BEFORE = {
    "intercept": -1.0,
    "contract": (0.95, -0.25, -1.2),
    "tenure": -0.045,
    "support": 0.5,
    "price": 0.02,
    "income": -0.012,
    "age": -0.022,
    "region": (-0.1, 0.0, 0.25, 0.0),
}
_AFTER = {
    "intercept": -1.1,
    "contract": (0.5, -0.1, -0.5),
    "tenure": -0.02,
    "support": -0.1,
    "price": 0.05,
    "income": -0.012,
    "age": -0.022,
    "region": (-0.1, 0.0, 0.25, 0.0),
}


def _blend(key: str, drift: float) -> _Floats:
    before = np.asarray(_BEFORE[key], dtype=np.float64)
    after = np.asarray(_AFTER[key], dtype=np.float64)
    blended: _Floats = (1.0 - drift) * before + drift * after
    return blended


def _choose(rng: np.random.Generator, probabilities: _Floats) -> npt.NDArray[np.intp]:
    """One category index per row from a (rows, categories) matrix of probabilities."""
    cumulative = np.cumsum(probabilities / probabilities.sum(axis=1, keepdims=True), axis=1)
    draws = rng.random((probabilities.shape[0], 1))
    chosen: npt.NDArray[np.intp] = np.minimum(
        (draws > cumulative).sum(axis=1), probabilities.shape[1] - 1
    )
    return chosen


def _softmax(logits: _Floats) -> _Floats:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    result: _Floats = shifted / shifted.sum(axis=1, keepdims=True)
    return result


def make_customers(rows: int, *, seed: int, drift: float = 0.0) -> pd.DataFrame:
    """Draw ``rows`` customers; the same ``seed`` and ``drift`` give the same table.

    Args:
        rows: how many customers.
        seed: seeds every draw.
        drift: how far the world has moved, from 0 (the first world) to 1 (the second).

    Returns:
        The :data:`FEATURES`, the sensitive ``gender`` and the label ``churned`` (0/1, about
        30 % positive in either world). Text columns have pandas' default text dtype
        (``object`` before pandas 3, ``str`` since), never ``category``.

    Raises:
        InvalidArgumentError: ``rows`` is negative or ``drift`` is outside [0, 1].
    """
    if rows < 0:
        raise InvalidArgumentError(f"rows must be at least 0, not {rows}")
    if not 0.0 <= drift <= 1.0:
        raise InvalidArgumentError(f"drift must be between 0 and 1, not {drift}")
    rng = np.random.default_rng(seed)
    n = rows

    gender = _choose(rng, np.tile([0.49, 0.47, 0.04], (n, 1)))
    male = (gender == 1).astype(np.float64)
    nonbinary = (gender == 2).astype(np.float64)

    age = np.clip(rng.normal(46.0 - 8.0 * nonbinary, 13.0), 18, 85).round()
    income = np.exp(rng.normal(np.log(52.0) + 0.12 * male, 0.45)) * (1.0 + 0.35 * drift)
    tenure = np.clip(
        rng.gamma(1.6, 16.0 + 0.25 * (age - 46.0)) * (1.0 - 0.3 * drift), 0, 72
    ).round()

    plan_logits = np.column_stack(
        [
            np.zeros(n),
            0.2 + 0.012 * (income - 52.0),
            -0.9 + 0.022 * (income - 52.0) + 1.0 * drift,
        ]
    )
    plan = _choose(rng, _softmax(plan_logits))
    base_price = np.array([32.0, 58.0, 92.0])[plan]
    charges = np.round((base_price + rng.normal(0.0, 7.0, n)) * (1.0 + 0.15 * drift), 2)

    contract_logits = np.column_stack(
        [
            np.zeros(n),
            -0.6 + 0.03 * tenure - 0.3 * drift,
            -1.6 + 0.05 * tenure + 0.01 * (age - 46.0) - 0.3 * drift,
        ]
    )
    contract = _choose(rng, _softmax(contract_logits))
    region = _choose(rng, np.tile([0.3, 0.25, 0.25 + 0.05 * drift, 0.2 - 0.05 * drift], (n, 1)))
    support = rng.poisson(
        (1.1 + 0.4 * (plan == 0) + 0.01 * np.maximum(age - 60.0, 0.0)) * (1.0 + 0.8 * drift)
    )

    # Each term is centred on the typical customer of the world at ``drift``, so that about
    # 30 % churn in either world and the intercept carries no drift of its own.
    logit = (
        _blend("intercept", drift)
        + _blend("contract", drift)[contract]
        + _blend("tenure", drift) * (tenure - 24.0)
        + 0.9 * np.exp(-tenure / 4.0)
        + _blend("support", drift) * (support - 1.5 - drift)
        + _blend("price", drift) * (charges - 60.0 - 25.0 * drift)
        + _blend("income", drift) * (income - 52.0 * (1.0 + 0.35 * drift))
        + _blend("age", drift) * (age - 46.0)
        + _blend("region", drift)[region]
        + rng.normal(0.0, 0.5, n)
    )
    churned = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)

    return pd.DataFrame(
        {
            "age": age.astype(np.int64),
            "income": np.round(income, 2),
            "tenure_months": tenure.astype(np.int64),
            "monthly_charges": charges,
            "support_calls": support.astype(np.int64),
            "plan": np.asarray(PLANS)[plan],
            "region": np.asarray(REGIONS)[region],
            "contract": np.asarray(CONTRACTS)[contract],
            SENSITIVE: np.asarray(GENDERS)[gender],
            TARGET: churned,
        }
    )
