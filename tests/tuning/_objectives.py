"""Objectives worker processes can import by name (spawned workers and Ray tasks)."""

from __future__ import annotations

import numpy as np

from shipyard.tuning import Float, Int, Trial

SPACE = {"x": Float(-10.0, 10.0), "k": Int(1, 4)}


def quadratic(trial: Trial) -> float:
    """Smallest at x = 2, k = 1."""
    return (trial.params["x"] - 2.0) ** 2 + 0.1 * trial.params["k"]


def ridge_loss(trial: Trial) -> float:
    """Validation error of a closed-form ridge regression on fixed noisy data."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 12))
    y = x @ rng.normal(size=12) + rng.normal(scale=2.0, size=80)
    train, valid = slice(0, 50), slice(50, 80)
    alpha = trial.params["alpha"]
    a = x[train].T @ x[train] + alpha * np.eye(12)
    w = np.linalg.solve(a, x[train].T @ y[train])
    return float(np.mean((x[valid] @ w - y[valid]) ** 2))


def epochs(trial: Trial) -> float:
    """Reports a falling curve whose level is set by x, so the pruner can stop bad trials."""
    level = abs(trial.params["x"] - 2.0)
    value = level
    for step in range(5):
        value = level + 1.0 / (step + 1)
        trial.report(step, value)
    return value


def fails_on_negative(trial: Trial) -> float:
    if trial.params["x"] < 0:
        raise ValueError(f"x is negative: {trial.params['x']:.3f}")
    return trial.params["x"]


def always_fails(trial: Trial) -> float:
    raise RuntimeError("the data is missing")
