"""Statistics that stay valid while the controller looks at the numbers every few seconds.

**Is the canary worse? (errors, slow requests)** Requests are routed at random: a fraction
``s`` to the canary, ``1 - s`` to stable. If the canary is no worse, each *event* (a failed
request, a request slower than a threshold) lands on the canary with probability at most ``s``,
whatever the event rate and however it changes over time. If the canary's event rate is ``rho``
times stable's, an event lands on the canary with probability
``q(rho) = s*rho / (s*rho + 1 - s)``. The likelihood ratio of ``rho`` against 1 over the events
so far is a non-negative martingale under "no worse" (a supermartingale for any ``rho' <= 1``);
so is a mixture over several ``rho`` (:data:`RATE_RATIOS`, equal weights). Ville's inequality
then bounds the chance that it *ever* reaches ``1/alpha`` by ``alpha``: a test that may be
looked at after every request — an e-process, the always-valid counterpart of a p-value
(Johari et al., "Always valid inference", 2017; Lindon & Malek, "Anytime-valid inference for
multinomial count data", 2022, for the same conditioning on counts). The share ``s`` may change
between steps: each step's events multiply in with that step's share.

**Did the canary's predictions shift?** The distribution of predictions is compared once per
step, at its end, with the monitoring chi-square homogeneity test and PSI (the same
distance-and-significance rule as drift monitoring) at level ``alpha / steps`` (Bonferroni over
a fixed number of looks) — not a fixed-horizon test re-run at every look.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "RATE_RATIOS",
    "ShiftResult",
    "e_value",
    "prediction_shift",
    "rate_log_likelihoods",
]

RATE_RATIOS: tuple[float, ...] = (1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 25.0)
"""The canary-to-stable event-rate ratios the mixture weighs equally."""


def rate_log_likelihoods(
    share: float,
    canary_events: int,
    stable_events: int,
    ratios: Sequence[float] = RATE_RATIOS,
) -> list[float]:
    """Log likelihood ratio of each ``ratio`` against 1 for one period at canary ``share``.

    Args:
        share: the canary's share of routed traffic in the period (0 < share < 1).
        canary_events: events (failures, slow requests) on the canary in the period.
        stable_events: events on stable in the period.
        ratios: the alternatives (canary rate / stable rate), each > 1.

    Returns:
        One log likelihood ratio per ratio; periods add up.
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"the canary's share must lie strictly between 0 and 1, not {share}")
    if canary_events < 0 or stable_events < 0:
        raise ValueError("event counts cannot be negative")
    out = []
    for rho in ratios:
        q = share * rho / (share * rho + 1.0 - share)
        out.append(
            canary_events * math.log(q / share) + stable_events * math.log((1 - q) / (1 - share))
        )
    return out


def e_value(log_likelihoods: Sequence[float]) -> float:
    """The mixture (equal weights) of the likelihood ratios: reject "no worse" at ``1/alpha``."""
    if not log_likelihoods:
        return 1.0
    top = max(log_likelihoods)
    if top > 700:  # beyond float range: the evidence is overwhelming either way
        return math.inf
    return sum(math.exp(v) for v in log_likelihoods) / len(log_likelihoods)


@dataclass(frozen=True, slots=True)
class ShiftResult:
    """The end-of-step comparison of canary and stable predictions."""

    shifted: bool
    p_value: float
    psi: float
    bins: int
    canary_rows: int
    stable_rows: int


def _numeric(keys: Sequence[str]) -> list[float] | None:
    try:
        return [float(k) for k in keys]
    except ValueError:
        return None


def _binned(
    stable: Mapping[str, int], canary: Mapping[str, int], max_bins: int
) -> tuple[list[float], list[float]]:
    """Both count tables over common bins: categories as they are (rare ones merged), numbers
    cut at stable's quantiles when there are more than ``max_bins`` distinct values."""
    keys = sorted(set(stable) | set(canary))
    values = _numeric(keys)
    if values is None or len(keys) <= max_bins:
        if len(keys) > max_bins:  # many categories: keep the most common, merge the rest
            ranked = sorted(keys, key=lambda k: -(stable.get(k, 0) + canary.get(k, 0)))
            kept = set(ranked[: max_bins - 1])
            s = [float(stable.get(k, 0)) for k in kept]
            c = [float(canary.get(k, 0)) for k in kept]
            s.append(float(sum(v for k, v in stable.items() if k not in kept)))
            c.append(float(sum(v for k, v in canary.items() if k not in kept)))
            return s, c
        return [float(stable.get(k, 0)) for k in keys], [float(canary.get(k, 0)) for k in keys]
    order = sorted(zip(values, keys, strict=True))
    total = sum(stable.values()) or 1
    edges: list[float] = []
    seen = 0
    for value, key in order:
        seen += stable.get(key, 0)
        if seen >= total * (len(edges) + 1) / max_bins and len(edges) < max_bins - 1:
            edges.append(value)
    s = [0.0] * (len(edges) + 1)
    c = [0.0] * (len(edges) + 1)
    import bisect

    for value, key in order:
        index = bisect.bisect_left(edges, value)
        s[index] += stable.get(key, 0)
        c[index] += canary.get(key, 0)
    return s, c


def prediction_shift(
    stable: Mapping[str, int],
    canary: Mapping[str, int],
    *,
    alpha: float,
    psi_threshold: float = 0.1,
    max_bins: int = 10,
) -> ShiftResult:
    """Whether the canary's predictions are distributed differently from stable's.

    Shifted means both significant (chi-square homogeneity, ``p < alpha``) and large enough
    (PSI at least ``psi_threshold``), as in drift monitoring: with many requests a tiny,
    harmless difference is significant, and with few a large one is noise.
    """
    from shipyard.monitoring.statistics import chi2_homogeneity, psi

    s, c = _binned(stable, canary, max_bins)
    n_s, n_c = int(sum(s)), int(sum(c))
    if n_s == 0 or n_c == 0 or len(s) < 2:
        return ShiftResult(False, 1.0, 0.0, len(s), n_c, n_s)
    import numpy as np

    ref, cur = np.asarray(s, dtype=np.float64), np.asarray(c, dtype=np.float64)
    test = chi2_homogeneity(ref, cur)
    distance = psi(ref, cur)
    return ShiftResult(
        shifted=test.p_value < alpha and distance >= psi_threshold,
        p_value=test.p_value,
        psi=distance,
        bins=len(s),
        canary_rows=n_c,
        stable_rows=n_s,
    )
