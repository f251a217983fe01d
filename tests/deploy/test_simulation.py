"""Error rates of the canary decision rule, measured by simulation with the controller's code.

Each simulated rollout sends traffic in looks (the controller looks every 2 s, steps last 30 s)
to two routes split at the step's weight, draws failures, latencies and predictions for each
route, and feeds the cumulative counts to :func:`shipyard.deploy.analysis.analyse` exactly as
the controller does. No HTTP: hundreds of rollouts in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from shipyard.deploy.analysis import (
    CanarySpec,
    Snapshot,
    analyse,
    canary_weights,
    start_analysis,
)
from shipyard.deploy.stats import LATENCY_EDGES_MS

LOOK_MS = 2_000
REQUESTS_PER_LOOK = 200  # 100 requests/s


@dataclass
class Route:
    error_rate: float
    latency_median_ms: float
    positive_rate: float = 0.3


class Counts:
    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.latency = np.zeros(len(LATENCY_EDGES_MS) + 1, dtype=np.int64)
        self.predictions = {"0": 0, "1": 0}

    def add(self, rng: np.random.Generator, route: Route, n: int) -> None:
        errors = int(rng.binomial(n, route.error_rate))
        self.requests += n
        self.errors += errors
        latencies = rng.lognormal(np.log(route.latency_median_ms), 0.35, size=n)
        self.latency += np.bincount(
            np.searchsorted(LATENCY_EDGES_MS, latencies), minlength=self.latency.size
        )
        ones = int(rng.binomial(n - errors, route.positive_rate))
        self.predictions["1"] += ones
        self.predictions["0"] += n - errors - ones

    def snapshot(self) -> Snapshot:
        return Snapshot(
            self.requests, self.errors, tuple(int(x) for x in self.latency), dict(self.predictions)
        )


def rollout(
    rng: np.random.Generator, spec: CanarySpec, stable: Route, canary: Route, history: int = 2_000
) -> tuple[str, int, str | None]:
    """One simulated rollout: (final action, canary requests when decided, failing rule).

    Traffic is split as the server splits it: stable, a baseline running the stable version at
    the canary's weight, and the canary; the analysis compares the canary with the baseline.
    """
    reference, base, c = Counts(), Counts(), Counts()
    reference.add(rng, stable, history)  # stable served alone before the canary
    now = 0
    analysis = start_analysis(spec, base.snapshot(), c.snapshot(), now, reference.snapshot())
    canary_total = 0
    for _ in range(10_000):
        now += LOOK_MS
        _, baseline_weight, canary_weight = canary_weights(spec.steps[int(analysis["step"])])
        n_canary, n_baseline, _ = rng.multinomial(
            REQUESTS_PER_LOOK,
            [
                canary_weight / 100,
                baseline_weight / 100,
                1 - (canary_weight + baseline_weight) / 100,
            ],
        )
        c.add(rng, canary, int(n_canary))
        base.add(rng, stable, int(n_baseline))
        canary_total += int(n_canary)
        decision = analyse(spec, analysis, base.snapshot(), c.snapshot(), now)
        analysis = decision.analysis
        if decision.action in ("promote", "rollback", "hold"):
            return decision.action, canary_total, decision.rule
    raise AssertionError("the rollout never ended")


SPEC = CanarySpec(steps=(5, 25, 50, 100), interval_s=30, min_requests=100, alpha=0.05)


def test_an_identical_challenger_is_rarely_rolled_back() -> None:
    rng = np.random.default_rng(7)
    good = Route(error_rate=0.005, latency_median_ms=8)
    outcomes = [rollout(rng, SPEC, good, good) for _ in range(400)]
    rolled_back = sum(action == "rollback" for action, _, _ in outcomes) / len(outcomes)
    promoted = sum(action == "promote" for action, _, _ in outcomes) / len(outcomes)
    print(f"identical challenger: rolled back {rolled_back:.3f} of 400 (alpha {SPEC.alpha})")
    assert rolled_back <= 2 * SPEC.alpha
    assert promoted >= 1 - 2 * SPEC.alpha


@pytest.mark.parametrize(
    ("name", "canary", "rule"),
    [
        ("5% errors", Route(error_rate=0.05, latency_median_ms=8), "errors"),
        ("5x slower", Route(error_rate=0.005, latency_median_ms=40), "latency"),
    ],
)
def test_a_bad_challenger_is_rolled_back_early(name: str, canary: Route, rule: str) -> None:
    rng = np.random.default_rng(11)
    stable = Route(error_rate=0.005, latency_median_ms=8)
    outcomes = [rollout(rng, SPEC, stable, canary) for _ in range(300)]
    within = [
        n for action, n, why in outcomes if action == "rollback" and why == rule and n <= 1000
    ]
    share = len(within) / len(outcomes)
    needed = sorted(n for action, n, _ in outcomes if action == "rollback")
    print(
        f"{name}: rolled back within 1,000 canary requests in {share:.3f} of 300; canary "
        f"requests needed: median {needed[len(needed) // 2]}, max {needed[-1]}"
    )
    assert share >= 0.99


def test_the_error_rate_holds_when_looking_at_every_interval_at_a_larger_alpha() -> None:
    """At alpha 0.2 with many failures on both routes (so the statistic moves a lot), the
    share of false rollbacks stays under alpha despite ~45 looks per rollout."""
    rng = np.random.default_rng(3)
    spec = CanarySpec(
        steps=(5, 25, 50, 100), interval_s=30, alpha=0.2,
        latency_increase_pct=None, predictions_psi=None,
    )  # fmt: skip
    noisy = Route(error_rate=0.1, latency_median_ms=8)
    outcomes = [rollout(rng, spec, noisy, noisy) for _ in range(400)]
    rolled_back = sum(action == "rollback" for action, _, _ in outcomes) / len(outcomes)
    print(f"identical challenger, alpha 0.2, errors only: rolled back {rolled_back:.3f}")
    assert rolled_back <= 2 * spec.alpha


def test_a_challenger_whose_predictions_shift_is_rolled_back_at_a_step_end() -> None:
    rng = np.random.default_rng(5)
    stable = Route(error_rate=0.005, latency_median_ms=8, positive_rate=0.3)
    shifted = Route(error_rate=0.005, latency_median_ms=8, positive_rate=0.6)
    outcomes = [rollout(rng, SPEC, stable, shifted) for _ in range(50)]
    assert all(action == "rollback" and why == "predictions" for action, _, why in outcomes)


def test_a_step_without_enough_traffic_is_held_never_promoted() -> None:
    spec = CanarySpec(steps=(5, 100), interval_s=30, min_requests=100, deadline_s=60)
    analysis = start_analysis(spec, Snapshot(), Snapshot(), 0)
    decisions = [
        analyse(spec, analysis, Snapshot(requests=10 * t), Snapshot(requests=t), t * 1000)
        for t in (10, 40, 59, 61)
    ]
    assert [d.action for d in decisions] == ["wait", "wait", "wait", "hold"]
    assert "not enough traffic: 61 of 100" in decisions[-1].reason


def test_the_metric_rule_reads_feedback_labels_at_a_step_end() -> None:
    from shipyard.deploy.analysis import Labelled

    spec = CanarySpec(
        steps=(10, 100), interval_s=30, min_requests=10, metric="accuracy", min_labels=200,
        latency_increase_pct=None, predictions_psi=None,
    )  # fmt: skip
    start = start_analysis(spec, Snapshot(), Snapshot(), 0)
    traffic = (Snapshot(requests=900), Snapshot(requests=100), 31_000)
    worse = analyse(spec, start, *traffic, Labelled((400, 360), (300, 210)))
    assert (worse.action, worse.rule) == ("rollback", "metric")
    assert "accuracy 0.7000 on 300 labelled rows is below the baseline's 0.9000" in worse.reason
    few = analyse(spec, start, *traffic, Labelled((400, 360), (50, 10)))
    assert few.action == "promote"  # too few labels: the metric does not hold the step back
    assert "not judged" in few.analysis["rules"]["metric"]["note"]
    rng = np.random.default_rng(9)
    false_alarms = sum(
        analyse(
            spec, start, *traffic,
            Labelled((400, int(rng.binomial(400, 0.85))), (300, int(rng.binomial(300, 0.85)))),
        ).action == "rollback"
        for _ in range(2000)
    )  # fmt: skip
    print(f"metric rule, equal accuracy: {false_alarms / 2000:.4f} rolled back (alpha 0.05)")
    assert false_alarms / 2000 <= 2 * spec.rule_alpha
