"""The canary's analysis: at each look, wait, advance, promote, hold or roll back.

Everything here is a pure function of the canary's settings, the analysis so far (a JSON-able
dict kept in the deployment) and the cumulative counts of the routes; the controller stores
the result. The same code runs in the model server, in ``shipyard deploy controller`` and in
the simulations that measure its error rates (``tests/deploy/test_simulation.py``).

The canary is compared with a **baseline**: the stable version on a route of its own with the
canary's weight (:func:`canary_weights`), so that both routes see the same traffic, batching
and queueing; the rest of the traffic stays on the stable route. Rules (each gets an equal
share of ``alpha``):

- **errors**: failed requests (any status but 200) are no more frequent on the canary than on
  the baseline — the e-process of :mod:`shipyard.deploy.sequential`, checked at every look.
- **latency**: requests slower than ``(1 + latency_increase_pct/100) * p95`` (and at least
  ``latency_slack_ms`` above it) are no more frequent on the canary — the same e-process over
  "slow" events. The threshold is fixed once, from the stable route's history (else the
  baseline's first requests), before the requests it counts.
- **predictions**: the canary's predictions are distributed like the baseline's — chi-square
  + PSI at the end of each step, at ``alpha_rule / steps`` (a fixed number of looks).
- **metric** (optional): accuracy on feedback labels, at the end of each step.

A step advances once ``interval`` has passed *and* the canary answered ``min_requests`` in it
with no rule failing; the last step (100) is the promotion. A rule failing at any look rolls
back. A step that reaches its deadline without enough canary requests is held, never promoted.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

from shipyard.deploy.sequential import e_value, prediction_shift, rate_log_likelihoods
from shipyard.deploy.stats import edge_at_or_above, latency_quantile, slower_than
from shipyard.entities import RouteStats
from shipyard.errors import InvalidArgumentError

__all__ = [
    "CanarySpec",
    "Decision",
    "Labelled",
    "Snapshot",
    "analyse",
    "canary_weights",
    "restart_step",
    "start_analysis",
]

ERRORS, LATENCY, PREDICTIONS, METRIC = "errors", "latency", "predictions", "metric"


@dataclass(frozen=True)
class CanarySpec:
    """How a canary proceeds and what it must show.

    Attributes:
        steps: canary traffic percent at each step, rising; the last is 100 (promotion).
        interval_s: the least time a step lasts.
        min_requests: canary requests a step needs before it can advance.
        deadline_s: a step without ``min_requests`` by then is held (default: 10 intervals).
        alpha: the chance of rolling back a canary that is no worse, over the whole rollout
            and every look.
        errors: judge the failure rate.
        latency_increase_pct: how much slower than stable's p95 counts as slow (None: off).
        latency_slack_ms: slow must also be this much above stable's p95 (timer noise,
            batching of a small route).
        predictions_psi: PSI from which a significant prediction shift fails (None: off).
        metric: judge a metric of the answers from feedback labels (``accuracy``; None: off),
            at the end of each step once both routes have ``min_labels`` labelled rows.
        min_labels: labelled rows each route needs in a step for the metric to be read; a
            step with fewer is not held back by it (labels often arrive late).
    """

    steps: tuple[float, ...] = (5.0, 25.0, 50.0, 100.0)
    interval_s: float = 30.0
    min_requests: int = 100
    deadline_s: float | None = None
    alpha: float = 0.05
    errors: bool = True
    latency_increase_pct: float | None = 20.0
    latency_slack_ms: float = 5.0
    predictions_psi: float | None = 0.1
    metric: str | None = None
    min_labels: int = 100

    def __post_init__(self) -> None:
        steps = tuple(float(s) for s in self.steps)
        if not steps or any(not 0 < s <= 100 for s in steps):
            raise InvalidArgumentError("canary steps are percents between 0 and 100, e.g. 5,25,50")
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise InvalidArgumentError(f"canary steps must rise: {','.join(map(_pct, steps))}")
        if steps[-1] != 100:
            steps = (*steps, 100.0)
        if len(steps) < 2:
            raise InvalidArgumentError("give at least one step below 100, e.g. --steps 10,100")
        object.__setattr__(self, "steps", steps)
        if self.interval_s <= 0:
            raise InvalidArgumentError("the step interval must be positive, e.g. --interval 30s")
        if self.min_requests < 1:
            raise InvalidArgumentError("--min-requests must be at least 1")
        if not 0 < self.alpha < 1:
            raise InvalidArgumentError(f"alpha must lie between 0 and 1, not {self.alpha}")
        if self.deadline_s is not None and self.deadline_s < self.interval_s:
            raise InvalidArgumentError("a step's deadline cannot be shorter than its interval")
        if not self.rules:
            raise InvalidArgumentError("a canary needs at least one rule to judge it by")
        if self.metric not in (None, "accuracy"):
            raise InvalidArgumentError(f"unknown canary --metric {self.metric!r}: use accuracy")
        if self.min_labels < 1:
            raise InvalidArgumentError("--min-labels must be at least 1")

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(
            rule
            for rule, on in (
                (ERRORS, self.errors),
                (LATENCY, self.latency_increase_pct is not None),
                (PREDICTIONS, self.predictions_psi is not None),
                (METRIC, self.metric is not None),
            )
            if on
        )

    @property
    def rule_alpha(self) -> float:
        return self.alpha / len(self.rules)

    @property
    def deadline(self) -> float:
        return self.deadline_s if self.deadline_s is not None else 10 * self.interval_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"steps": list(self.steps)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CanarySpec:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known | {"steps": tuple(known.get("steps", cls.steps))})


def _pct(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Snapshot:
    """A route's cumulative counts at one moment."""

    requests: int = 0
    errors: int = 0
    latency: tuple[int, ...] = ()
    predictions: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, stats: RouteStats | None) -> Snapshot:
        if stats is None:
            return cls()
        return cls(stats.requests, stats.errors, stats.latency_counts, dict(stats.predictions))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        return cls(
            int(data.get("requests", 0)),
            int(data.get("errors", 0)),
            tuple(data.get("latency", ())),
            dict(data.get("predictions", {})),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "latency": list(self.latency),
            "predictions": self.predictions,
        }

    def minus(self, earlier: Snapshot) -> Snapshot:
        """The counts since ``earlier`` (of the same route; servers only add)."""
        width = len(self.latency)
        old = earlier.latency + (0,) * (width - len(earlier.latency))
        return Snapshot(
            self.requests - earlier.requests,
            self.errors - earlier.errors,
            tuple(max(a - b, 0) for a, b in zip(self.latency, old, strict=False)),
            {
                k: v - earlier.predictions.get(k, 0)
                for k, v in self.predictions.items()
                if v - earlier.predictions.get(k, 0) > 0
            },
        )


@dataclass(frozen=True)
class Decision:
    """What the controller should do now, why, and the numbers behind it.

    Attributes:
        action: ``wait``, ``advance``, ``promote``, ``rollback`` or ``hold``.
        rule: the failing rule (rollback) or None.
        analysis: the analysis to store (whatever the action).
    """

    action: str
    reason: str
    numbers: dict[str, Any]
    analysis: dict[str, Any]
    rule: str | None = None


def canary_weights(weight: float) -> tuple[float, float, float]:
    """``(stable, baseline, canary)`` percents at a step of ``weight`` percent.

    The canary is compared with a *baseline*: the stable version on a route of its own with the
    canary's weight (or what is left above 50 %), so that both see the same traffic, the same
    batching and the same queueing — as Kayenta compares a canary with a baseline cluster of
    its size, never with the production fleet. The rest stays on the stable route.
    """
    baseline = min(weight, 100.0 - weight)
    return 100.0 - weight - baseline, baseline, weight


def _share(weight: float) -> float:
    """The canary's share of the traffic that the canary and the baseline get together."""
    _, baseline, canary = canary_weights(weight)
    return canary / (canary + baseline)


def start_analysis(
    spec: CanarySpec,
    baseline: Snapshot,
    canary: Snapshot,
    now_ms: int,
    reference: Snapshot | None = None,
) -> dict[str, Any]:
    """The analysis of a canary starting now at its first step (``reference``: the stable
    route's history, which fixes the latency threshold when it has enough requests)."""
    analysis: dict[str, Any] = {
        "step": 0,
        "weight": spec.steps[0],
        "looks": 0,
        "log_lr": {ERRORS: [], LATENCY: []},
        "latency_threshold_ms": None,
        "canary_requests": 0,
    }
    analysis["latency_threshold_ms"] = _latency_threshold(spec, reference or baseline)
    return _begin_step(analysis, 0, baseline, canary, now_ms)


def _latency_threshold(spec: CanarySpec, baseline: Snapshot) -> float | None:
    if spec.latency_increase_pct is None or baseline.requests < spec.min_requests:
        return None
    p95 = latency_quantile(baseline.latency, 0.95)
    if p95 is None:
        return None
    return edge_at_or_above(
        max(p95 * (1 + spec.latency_increase_pct / 100), p95 + spec.latency_slack_ms)
    )


def _begin_step(
    analysis: dict[str, Any], step: int, baseline: Snapshot, canary: Snapshot, now_ms: int
) -> dict[str, Any]:
    out = dict(analysis)
    out["step"] = step
    out["step_started"] = now_ms
    out["step_start"] = {"baseline": baseline.to_dict(), "canary": canary.to_dict()}
    out["step_log_lr"] = {ERRORS: [], LATENCY: []}
    out["latency_from"] = _slow(out.get("latency_threshold_ms"), baseline, canary)
    return out


def _slow(threshold: float | None, baseline: Snapshot, canary: Snapshot) -> dict[str, int] | None:
    if threshold is None:
        return None
    return {
        "baseline": slower_than(baseline.latency, threshold),
        "canary": slower_than(canary.latency, threshold),
    }


def _folded(state: dict[str, Any]) -> dict[str, list[float]]:
    """The evidence of the steps before, with the current step's added (a step ends)."""
    return {
        key: _summed(state["log_lr"].get(key, []), state.get("step_log_lr", {}).get(key, []))
        for key in (ERRORS, LATENCY)
    }


def _summed(completed: list[float], current: list[float]) -> list[float]:
    if not completed:
        return list(current)
    if not current:
        return list(completed)
    return [a + b for a, b in zip(completed, current, strict=True)]


@dataclass(frozen=True)
class Labelled:
    """Labelled rows of each route in the current step, and how many were right."""

    baseline: tuple[int, int] = (0, 0)
    canary: tuple[int, int] = (0, 0)


def analyse(
    spec: CanarySpec,
    analysis: dict[str, Any],
    baseline_now: Snapshot,
    canary_now: Snapshot,
    now_ms: int,
    labelled: Labelled | None = None,
) -> Decision:
    """One look at a running canary: ``baseline_now`` are the cumulative counts of the route it
    is compared with — the baseline (see :func:`canary_weights`); ``labelled``: the step's
    outcomes, when the canary judges a metric from feedback labels."""
    state = dict(analysis)
    state["looks"] = int(state.get("looks", 0)) + 1
    step = int(state["step"])
    share = _share(spec.steps[step])
    base_baseline = Snapshot.from_dict(state["step_start"]["baseline"])
    base_canary = Snapshot.from_dict(state["step_start"]["canary"])
    baseline = baseline_now.minus(base_baseline)
    canary = canary_now.minus(base_canary)
    state["canary_requests"] = int(analysis.get("canary_requests_before", 0)) + canary.requests
    threshold = 1 / spec.rule_alpha
    numbers: dict[str, Any] = {
        "step": step + 1,
        "weight": spec.steps[step],
        "canary_requests": canary.requests,
        "baseline_requests": baseline.requests,
        "elapsed_s": round((now_ms - int(state["step_started"])) / 1000, 3),
        "e_value_threshold": threshold,
    }
    rules: dict[str, Any] = {}
    failing: tuple[str, str] | None = None

    if ERRORS in spec.rules:
        step_lr = rate_log_likelihoods(share, canary.errors, baseline.errors)
        state["step_log_lr"] = {**state["step_log_lr"], ERRORS: step_lr}
        e = e_value(_summed(state["log_lr"][ERRORS], step_lr))
        rules[ERRORS] = {
            "canary_rate": _rate(canary.errors, canary.requests),
            "baseline_rate": _rate(baseline.errors, baseline.requests),
            "canary_errors": canary.errors,
            "baseline_errors": baseline.errors,
            "e_value": _finite(e),
        }
        if e >= threshold:
            failing = (
                ERRORS,
                f"errors: canary failed {canary.errors} of {canary.requests} requests "
                f"({_percent(canary.errors, canary.requests)}) against the baseline's "
                f"{baseline.errors} of {baseline.requests} "
                f"({_percent(baseline.errors, baseline.requests)}); "
                f"e-value {_finite(e):.4g} >= {threshold:.4g}",
            )

    if LATENCY in spec.rules:
        if state.get("latency_threshold_ms") is None:
            # No history at the start: fix the threshold from this step's baseline
            # requests, and count slow requests only from now on.
            found = _latency_threshold(spec, baseline)
            if found is not None:
                state["latency_threshold_ms"] = found
                state["latency_from"] = _slow(found, baseline_now, canary_now)
        limit = state.get("latency_threshold_ms")
        if limit is not None and state.get("latency_from") is not None:
            slow_s = slower_than(baseline_now.latency, limit) - state["latency_from"]["baseline"]
            slow_c = slower_than(canary_now.latency, limit) - state["latency_from"]["canary"]
            step_lr = rate_log_likelihoods(share, max(slow_c, 0), max(slow_s, 0))
            state["step_log_lr"] = {**state["step_log_lr"], LATENCY: step_lr}
            e = e_value(_summed(state["log_lr"][LATENCY], step_lr))
            rules[LATENCY] = {
                "threshold_ms": limit,
                "canary_p95_ms": latency_quantile(canary.latency, 0.95),
                "baseline_p95_ms": latency_quantile(baseline.latency, 0.95),
                "canary_slow": slow_c,
                "baseline_slow": slow_s,
                "e_value": _finite(e),
            }
            if e >= threshold and failing is None:
                failing = (
                    LATENCY,
                    f"latency: {slow_c} canary requests slower than {limit:g} ms against "
                    f"{slow_s} on the baseline (canary p95 {rules[LATENCY]['canary_p95_ms']} ms, "
                    f"baseline p95 {rules[LATENCY]['baseline_p95_ms']} ms); e-value "
                    f"{_finite(e):.4g} >= {threshold:.4g}",
                )
        else:
            rules[LATENCY] = {"threshold_ms": None, "note": "waiting for baseline requests"}

    numbers["rules"] = rules
    state["rules"] = rules
    state["last_look"] = now_ms
    if failing is not None:
        return Decision("rollback", failing[1], numbers, state, rule=failing[0])

    elapsed = (now_ms - int(state["step_started"])) / 1000
    if elapsed >= spec.interval_s and canary.requests >= spec.min_requests:
        if PREDICTIONS in spec.rules and spec.predictions_psi is not None:
            looks = len(spec.steps) - 1
            shift = prediction_shift(
                baseline.predictions,
                canary.predictions,
                alpha=spec.rule_alpha / looks,
                psi_threshold=spec.predictions_psi,
            )
            rules[PREDICTIONS] = {
                "p_value": shift.p_value,
                "psi": shift.psi,
                "alpha": spec.rule_alpha / looks,
                "bins": shift.bins,
            }
            if shift.shifted:
                reason = (
                    f"predictions: the canary's predictions shifted from the baseline's (PSI "
                    f"{shift.psi:.3f} >= {spec.predictions_psi:g}, p = {shift.p_value:.2e} < "
                    f"{spec.rule_alpha / looks:.2e}) over {shift.canary_rows} canary rows"
                )
                return Decision("rollback", reason, numbers, state, rule=PREDICTIONS)
        if METRIC in spec.rules and labelled is not None:
            looks = len(spec.steps) - 1
            worse = _metric_worse(spec, labelled, spec.rule_alpha / looks)
            rules[METRIC] = worse[1]
            if worse[0]:
                return Decision("rollback", worse[2], numbers, state, rule=METRIC)
        nxt = step + 1
        state["log_lr"] = _folded(state)
        state["canary_requests_before"] = state["canary_requests"]
        if spec.steps[nxt] >= 100:
            reason = (
                f"step {step + 1} passed ({canary.requests} canary requests in "
                f"{elapsed:.0f} s, every rule held): promoting"
            )
            return Decision("promote", reason, numbers, state)
        state = _begin_step(state, nxt, baseline_now, canary_now, now_ms)
        state["weight"] = spec.steps[nxt]
        reason = (
            f"step {step + 1} passed ({canary.requests} canary requests in {elapsed:.0f} s, "
            f"every rule held): canary {_pct(spec.steps[step])}% -> {_pct(spec.steps[nxt])}%"
        )
        return Decision("advance", reason, numbers, state)
    if elapsed >= spec.deadline and canary.requests < spec.min_requests:
        reason = (
            f"not enough traffic: {canary.requests} of {spec.min_requests} canary requests "
            f"in {elapsed:.0f} s at step {step + 1} ({_pct(spec.steps[step])}%); holding "
            "(`shipyard deploy resume` to try again)"
        )
        return Decision("hold", reason, numbers, state)
    return Decision("wait", "", numbers, state)


def _metric_worse(
    spec: CanarySpec, labelled: Labelled, alpha: float
) -> tuple[bool, dict[str, Any], str]:
    """Whether the canary's metric is significantly below the baseline's (one-sided z-test)."""
    from shipyard.monitoring.statistics import proportion_test

    (n_s, right_s), (n_c, right_c) = labelled.baseline, labelled.canary
    numbers: dict[str, Any] = {
        "metric": spec.metric,
        "baseline_labelled": n_s,
        "canary_labelled": n_c,
        "baseline_value": right_s / n_s if n_s else None,
        "canary_value": right_c / n_c if n_c else None,
        "alpha": alpha,
    }
    if min(n_s, n_c) < spec.min_labels:
        numbers["note"] = f"fewer than {spec.min_labels} labelled rows: not judged this step"
        return False, numbers, ""
    test = proportion_test(right_s, n_s, right_c, n_c)
    one_sided = test.p_value / 2 if right_c / n_c < right_s / n_s else 1 - test.p_value / 2
    numbers["p_value"] = one_sided
    if one_sided >= alpha:
        return False, numbers, ""
    reason = (
        f"metric: the canary's {spec.metric} {right_c / n_c:.4f} on {n_c} labelled rows is "
        f"below the baseline's {right_s / n_s:.4f} on {n_s} (one-sided p = {one_sided:.2e} < "
        f"{alpha:.2e})"
    )
    return True, numbers, reason


def restart_step(
    analysis: dict[str, Any], baseline: Snapshot, canary: Snapshot, now_ms: int
) -> dict[str, Any]:
    """The analysis when a paused or held canary resumes: the step starts over (its clock and
    counts), the evidence gathered in earlier steps is kept."""
    state = dict(analysis)
    state["log_lr"] = _folded(state)
    state["canary_requests_before"] = state.get("canary_requests", 0)
    return _begin_step(state, int(state["step"]), baseline, canary, now_ms)


def _rate(events: int, requests: int) -> float | None:
    return events / requests if requests else None


def _percent(events: int, requests: int) -> str:
    return f"{100 * events / requests:.2f}%" if requests else "n/a"


def _finite(value: float) -> float:
    return value if value < 1e300 else 1e300
