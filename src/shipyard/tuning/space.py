"""Search spaces: what each hyperparameter may be, checked before anything is written.

A space is a dict from parameter name to :class:`Float`, :class:`Int` or :class:`Categorical`
(Optuna's ``FloatDistribution``, ``IntDistribution`` and ``CategoricalDistribution`` are accepted
too). Optuna is imported only when a distribution is made for a trial.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from shipyard.errors import InvalidArgumentError
from shipyard.tracking.validation import validate_key

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

__all__ = [
    "Categorical",
    "Choice",
    "Dimension",
    "Float",
    "Int",
    "check_dimension",
    "check_space",
    "space_from_json",
    "space_to_json",
    "to_distribution",
]

Choice: TypeAlias = bool | int | float | str | None
"""What a categorical choice may be (what Optuna can store)."""


@dataclass(frozen=True, slots=True)
class Float:
    """A real number in ``[low, high]``; ``log`` samples its logarithm uniformly, ``step``
    keeps it on a grid ``low, low + step, ...``."""

    low: float
    high: float
    log: bool = False
    step: float | None = None


@dataclass(frozen=True, slots=True)
class Int:
    """An integer in ``[low, high]`` (both included), on the grid ``low, low + step, ...``."""

    low: int
    high: int
    step: int = 1
    log: bool = False


@dataclass(frozen=True, slots=True)
class Categorical:
    """One of ``choices`` (``None``, bools, numbers or strings)."""

    choices: tuple[Choice, ...]

    def __init__(self, choices: Sequence[Choice]) -> None:
        listed = isinstance(choices, Sequence) and not isinstance(choices, str | bytes)
        object.__setattr__(self, "choices", tuple(choices) if listed else choices)


Dimension: TypeAlias = Float | Int | Categorical


def _number(where: str, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"{where}: {field} must be a number, not {value!r}")
    if not math.isfinite(value):
        raise InvalidArgumentError(f"{where}: {field} must be finite, not {value!r}")
    return float(value)


def _integer(where: str, field: str, value: Any) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):  # ints and numpy ints
        raise InvalidArgumentError(f"{where}: {field} must be an integer, not {value!r}")
    return int(value.__index__())


def _check_float(where: str, dim: Float) -> Float:
    low, high = _number(where, "low", dim.low), _number(where, "high", dim.high)
    if not low < high:
        raise InvalidArgumentError(f"{where}: low ({low:g}) must be less than high ({high:g})")
    if not isinstance(dim.log, bool):
        raise InvalidArgumentError(f"{where}: log must be True or False, not {dim.log!r}")
    if dim.log and low <= 0:
        raise InvalidArgumentError(f"{where}: a log scale needs low > 0, not {low:g}")
    step = None
    if dim.step is not None:
        step = _number(where, "step", dim.step)
        if step <= 0:
            raise InvalidArgumentError(f"{where}: step must be positive, not {step:g}")
        if dim.log:
            raise InvalidArgumentError(f"{where}: step and log cannot be combined")
        # Optuna would silently lower high to the grid (with a warning); say so instead.
        count = (high - low) / step
        if abs(count - round(count)) > 1e-8 * max(1.0, abs(count)):
            raise InvalidArgumentError(
                f"{where}: high - low ({high - low:g}) must be a multiple of step ({step:g})"
            )
    return Float(low, high, log=dim.log, step=step)


def _check_int(where: str, dim: Int) -> Int:
    low, high = _integer(where, "low", dim.low), _integer(where, "high", dim.high)
    step = _integer(where, "step", dim.step)
    if not low < high:
        raise InvalidArgumentError(f"{where}: low ({low}) must be less than high ({high})")
    if step < 1:
        raise InvalidArgumentError(f"{where}: step must be at least 1, not {step}")
    if not isinstance(dim.log, bool):
        raise InvalidArgumentError(f"{where}: log must be True or False, not {dim.log!r}")
    if dim.log and low < 1:
        raise InvalidArgumentError(f"{where}: a log scale needs low >= 1, not {low}")
    if dim.log and step != 1:
        raise InvalidArgumentError(f"{where}: step and log cannot be combined")
    if (high - low) % step:
        raise InvalidArgumentError(
            f"{where}: high - low ({high - low}) must be a multiple of step ({step})"
        )
    return Int(low, high, step=step, log=dim.log)


def _check_categorical(where: str, dim: Categorical) -> Categorical:
    choices = dim.choices
    if not isinstance(choices, tuple) or not choices:
        raise InvalidArgumentError(f"{where}: choices must be a non-empty list, not {choices!r}")
    for choice in choices:
        if choice is not None and not isinstance(choice, bool | int | float | str):
            raise InvalidArgumentError(
                f"{where}: choice {choice!r} is a {type(choice).__name__}; use None, bools, "
                "numbers or strings (map them to objects inside the objective)"
            )
        if isinstance(choice, float) and math.isnan(choice):
            raise InvalidArgumentError(f"{where}: NaN cannot be a choice")
    if len(set(map(repr, choices))) != len(choices):
        raise InvalidArgumentError(f"{where}: choices must not repeat: {list(choices)!r}")
    return Categorical(choices)


def _from_optuna(value: Any) -> Dimension | None:
    """Our dimension for one of Optuna's distributions (None if ``value`` is not one)."""
    if not type(value).__module__.startswith("optuna."):
        return None
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if isinstance(value, FloatDistribution):
        return Float(value.low, value.high, log=value.log, step=value.step)
    if isinstance(value, IntDistribution):
        return Int(value.low, value.high, step=value.step, log=value.log)
    if isinstance(value, CategoricalDistribution):
        return Categorical(value.choices)
    return None


def check_dimension(where: str, value: Any) -> Dimension:
    """The checked dimension ``value`` (ours or Optuna's); ``where`` names it in errors."""
    dim = _from_optuna(value) or value
    if isinstance(dim, Float):
        return _check_float(where, dim)
    if isinstance(dim, Int):
        return _check_int(where, dim)
    if isinstance(dim, Categorical):
        return _check_categorical(where, dim)
    raise InvalidArgumentError(
        f"{where} is {value!r}: use Float(low, high), Int(low, high) or Categorical([...]) "
        "from shipyard.tuning (or an Optuna distribution)"
    )


def check_space(space: Any) -> dict[str, Dimension]:
    """The checked space: names are valid param names, every dimension can be sampled."""
    if not isinstance(space, Mapping):
        raise InvalidArgumentError(
            f"space must be a dict of name -> Float/Int/Categorical, not {type(space).__name__}"
        )
    checked: dict[str, Dimension] = {}
    for name, value in space.items():
        if not isinstance(name, str):
            raise InvalidArgumentError(f"space: parameter names must be strings, not {name!r}")
        try:
            validate_key("param", name)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"space[{name!r}]: {exc}") from None
        checked[name] = check_dimension(f"space[{name!r}]", value)
    return checked


def to_distribution(dim: Dimension) -> BaseDistribution:
    """The Optuna distribution of a checked dimension."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if isinstance(dim, Float):
        return FloatDistribution(dim.low, dim.high, log=dim.log, step=dim.step)
    if isinstance(dim, Int):
        return IntDistribution(dim.low, dim.high, log=dim.log, step=dim.step)
    return CategoricalDistribution(dim.choices)


def space_to_json(space: Mapping[str, Dimension]) -> dict[str, dict[str, Any]]:
    """A JSON-ready description of a checked space (kept with the study)."""
    out: dict[str, dict[str, Any]] = {}
    for name, dim in space.items():
        if isinstance(dim, Float):
            out[name] = {"type": "float", "low": dim.low, "high": dim.high, "log": dim.log}
            out[name]["step"] = dim.step
        elif isinstance(dim, Int):
            out[name] = {"type": "int", "low": dim.low, "high": dim.high, "log": dim.log}
            out[name]["step"] = dim.step
        else:
            out[name] = {"type": "categorical", "choices": list(dim.choices)}
    return out


def space_from_json(data: Mapping[str, Any]) -> dict[str, Dimension]:
    """The space :func:`space_to_json` described."""
    space: dict[str, Dimension] = {}
    for name, d in data.items():
        if d["type"] == "float":
            space[name] = Float(d["low"], d["high"], log=d["log"], step=d["step"])
        elif d["type"] == "int":
            space[name] = Int(d["low"], d["high"], step=d["step"], log=d["log"])
        else:
            space[name] = Categorical(d["choices"])
    return space
