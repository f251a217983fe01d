"""A/B tests: sticky assignment, the per-variant report, the sample-ratio check, the stop rule.

- **Assignment**: a request carrying the sticky key (``header:x-user-id``) goes to the variant
  its hash falls in (BLAKE2b of the deployment name and the key, as a number in [0, 100)
  against the cumulative weights), so one user always gets one variant — across restarts,
  workers and servers. A request without the key is assigned at random by weight (the
  documented fallback; it is counted, and its outcome still belongs to the variant that
  answered).
- **Report**: per variant, the metric (accuracy: the share of labelled rows whose prediction
  equals the label from ``/feedback``) with a Wilson 95 % interval; a chi-square test of
  homogeneity over variants (two variants: the two-proportion z-test, the same p-value) and
  the Bayesian probability of each being best (Beta(1, 1) priors, Monte Carlo, fixed seed).
  In a sticky test the unit is the caller, not the row (one user's rows are not independent):
  each labelled unit counts once with its own accuracy (Welch's t-test; ANOVA for more
  variants), and ``min_samples`` counts labelled units.
- **Sample-ratio mismatch**: the observed split of what was assigned (units in a sticky test,
  requests otherwise) against the configured weights, chi-square goodness of fit; p below
  0.001 flags a broken split and blocks a conclusion.
- **Stop rule**: a fixed horizon — every variant needs ``min_samples`` labelled rows before a
  winner is named, and then the test is read once (p below ``alpha``), so with no real
  difference a false winner comes up in about ``alpha`` of tests.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from shipyard.errors import InvalidArgumentError

__all__ = [
    "SRM_ALPHA",
    "AbReport",
    "AbSpec",
    "VariantCounts",
    "VariantResult",
    "ab_report",
    "parse_variant",
    "sticky_point",
    "unit_of",
]

SRM_ALPHA = 0.001
"""A sample-ratio p-value below this flags a broken split."""
METRICS = ("accuracy",)


@dataclass(frozen=True)
class AbSpec:
    """An A/B test's settings.

    Attributes:
        sticky_key: ``header:NAME`` — the request header whose value keeps a user on one
            variant (None: every request drawn at random).
        metric: what is compared (``accuracy``).
        alpha: the test's significance level.
        min_samples: labelled rows each variant needs before a winner can be named.
    """

    sticky_key: str | None = None
    metric: str = "accuracy"
    alpha: float = 0.05
    min_samples: int = 200

    def __post_init__(self) -> None:
        if self.sticky_key is not None:
            kind, _, name = self.sticky_key.partition(":")
            if kind != "header" or not name.strip():
                raise InvalidArgumentError(
                    f"invalid --sticky-key {self.sticky_key!r}: use header:NAME, e.g. "
                    "header:x-user-id"
                )
        if self.metric not in METRICS:
            raise InvalidArgumentError(
                f"unknown --metric {self.metric!r}: use {', '.join(METRICS)}"
            )
        if not 0 < self.alpha < 1:
            raise InvalidArgumentError(f"alpha must lie between 0 and 1, not {self.alpha}")
        if self.min_samples < 1:
            raise InvalidArgumentError("--min-samples must be at least 1")

    @property
    def header(self) -> str | None:
        """The lower-case header name of the sticky key."""
        if self.sticky_key is None:
            return None
        return self.sticky_key.partition(":")[2].strip().lower()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AbSpec:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def parse_variant(text: str) -> tuple[str, str, float]:
    """``a=churn@3:50`` -> ``("a", "churn@3", 50.0)``."""
    name, eq, rest = text.partition("=")
    ref, colon, weight = rest.rpartition(":")
    try:
        value = float(weight)
    except ValueError:
        value = math.nan
    if not eq or not colon or not name.strip() or not ref.strip() or not value > 0:
        raise InvalidArgumentError(
            f"invalid --variant {text!r}: use NAME=MODEL@VERSION:WEIGHT, e.g. a=churn@3:50"
        )
    return name.strip(), ref.strip(), value


def unit_of(deployment: str, key: str) -> str:
    """What the prediction log keeps of a sticky key: a keyed hash, never the key itself."""
    return hashlib.blake2b(key.encode(), key=deployment.encode()[:64], digest_size=8).hexdigest()


def sticky_point(deployment: str, key: str) -> float:
    """Where ``key`` falls in [0, 100): the same for every process and every restart."""
    digest = hashlib.blake2b(f"{deployment}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100


@dataclass(frozen=True)
class VariantCounts:
    """What one variant answered and what its answers turned out to be."""

    name: str
    weight: float
    requests: int
    labelled: int
    correct: int
    units: int | None = None
    """Distinct assignment units (sticky keys) seen, in a sticky test."""
    unit_values: tuple[float, ...] | None = None
    """Per labelled unit: the share of its rows predicted right (a sticky test)."""


@dataclass(frozen=True)
class VariantResult:
    name: str
    weight: float
    requests: int
    labelled: int
    metric: float | None
    interval: tuple[float, float] | None
    probability_best: float | None


@dataclass(frozen=True)
class AbReport:
    """The A/B test so far, and whether it can be concluded."""

    metric: str
    variants: list[VariantResult]
    p_value: float | None
    srm_p_value: float | None
    srm: bool
    ready: bool
    """Every variant has ``min_samples`` labelled rows and the split is sound."""
    winner: str | None
    verdict: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float] | None:
    if n == 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _probability_best(variants: Sequence[VariantCounts], draws: int = 20_000) -> list[float]:
    import numpy as np

    rng = np.random.default_rng(0)
    samples = np.stack(
        [rng.beta(1 + v.correct, 1 + v.labelled - v.correct, size=draws) for v in variants]
    )
    best = np.argmax(samples, axis=0)
    return [float(np.mean(best == i)) for i in range(len(variants))]


def _srm(variants: Sequence[VariantCounts]) -> float | None:
    """Sample-ratio p-value over what is assigned: units (a sticky test), else requests."""
    from scipy import stats

    sticky = all(v.units is not None for v in variants)
    observed = [v.units if sticky and v.units is not None else v.requests for v in variants]
    total = sum(observed)
    weight = sum(v.weight for v in variants)
    if total == 0 or weight <= 0:
        return None
    statistic = 0.0
    for v, seen in zip(variants, observed, strict=True):
        expected = total * v.weight / weight
        statistic += (seen - expected) ** 2 / expected
    return float(stats.chi2.sf(statistic, len(variants) - 1))


def _unit_test(variants: Sequence[VariantCounts]) -> float | None:
    """p-value over units (a sticky test): one user's rows are not independent, so each unit
    counts once, with its own accuracy — Welch's t-test (two variants) or one-way ANOVA."""
    from scipy import stats

    groups = [list(v.unit_values or ()) for v in variants]
    if any(len(g) < 2 for g in groups):
        return None
    if all(len(set(g)) == 1 for g in groups):  # no spread anywhere: equal or not, exactly
        return 1.0 if len({g[0] for g in groups}) == 1 else 0.0
    if len(groups) == 2:
        return float(stats.ttest_ind(groups[0], groups[1], equal_var=False).pvalue)
    return float(stats.f_oneway(*groups).pvalue)


def _homogeneity(variants: Sequence[VariantCounts]) -> float | None:
    import numpy as np

    from shipyard.monitoring.statistics import chi2_homogeneity, proportion_test

    if all(v.unit_values is not None for v in variants):
        return _unit_test(variants)
    if any(v.labelled == 0 for v in variants):
        return None
    if len(variants) == 2:
        a, b = variants
        return proportion_test(a.correct, a.labelled, b.correct, b.labelled).p_value
    # k variants: successes and failures as a 2 x k table
    correct = np.asarray([v.correct for v in variants], dtype=np.float64)
    wrong = np.asarray([v.labelled - v.correct for v in variants], dtype=np.float64)
    return chi2_homogeneity(correct, wrong).p_value


def ab_report(variants: Sequence[VariantCounts], spec: AbSpec) -> AbReport:
    """The report of an A/B test from each variant's counts."""
    if len(variants) < 2:
        raise InvalidArgumentError("an A/B test needs at least two variants")
    srm_p = _srm(variants)
    srm = srm_p is not None and srm_p < SRM_ALPHA
    p_value = _homogeneity(variants)
    labelled = any(v.labelled for v in variants)
    best = _probability_best(variants) if labelled else [None] * len(variants)
    results = [
        VariantResult(
            name=v.name,
            weight=v.weight,
            requests=v.requests,
            labelled=v.labelled,
            metric=v.correct / v.labelled if v.labelled else None,
            interval=_wilson(v.correct, v.labelled),
            probability_best=best[i],
        )
        for i, v in enumerate(variants)
    ]
    notes = []
    sticky = all(v.unit_values is not None for v in variants)
    samples = {v.name: len(v.unit_values or ()) if sticky else v.labelled for v in variants}
    short = [v for v in variants if samples[v.name] < spec.min_samples]
    if short:
        what = "labelled units (sticky keys)" if sticky else "labelled rows"
        notes.append(
            f"not enough {what}: "
            + ", ".join(f"{v.name} {samples[v.name]} of {spec.min_samples}" for v in short)
        )
    if srm:
        unit = "units" if all(v.units is not None for v in variants) else "requests"
        notes.append(
            f"sample-ratio mismatch: the {unit} split "
            f"{' / '.join(str(v.units if unit == 'units' else v.requests) for v in variants)} "
            "against weights "
            f"{' / '.join(f'{v.weight:g}' for v in variants)} (p = {srm_p:.2e}); "
            "the assignment is broken, so no result can be trusted"
        )
    ready = not short and not srm
    winner = None
    if not ready:
        verdict = "not ready: " + "; ".join(notes)
    elif p_value is not None and p_value < spec.alpha:
        top = max(results, key=lambda r: r.metric if r.metric is not None else -1.0)
        winner = top.name
        verdict = (
            f"{winner} wins: {spec.metric} {top.metric:.4f}, p = {p_value:.3g} < {spec.alpha:g}"
        )
    else:
        verdict = (
            f"no winner: the variants' {spec.metric} do not differ significantly "
            f"(p = {p_value if p_value is not None else float('nan'):.3g} >= {spec.alpha:g})"
        )
    return AbReport(spec.metric, results, p_value, srm_p, srm, ready, winner, verdict, notes)
