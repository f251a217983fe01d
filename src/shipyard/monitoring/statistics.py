"""Two-sample statistics behind drift detection: pure functions over numpy arrays.

Samples are one-dimensional float arrays without NaN; binned data are count vectors over the
same bins (reference first, then current). Distances are effect sizes (0 for identical
distributions), tests return a statistic and a two-sided p-value. numpy (and scipy, only for
the KS p-value of small samples) is imported inside the functions, so importing this module
costs nothing; the chi-square and Kolmogorov tails are computed with :mod:`math`.

=====================  ===========================================================  =========
function               what                                                         range
=====================  ===========================================================  =========
``ks_wasserstein``     Kolmogorov-Smirnov D + asymptotic p, Wasserstein-1 distance  D in [0,1]
``psi``                population stability index over bins                         [0, inf)
``jensen_shannon``     Jensen-Shannon *distance* (sqrt of the divergence, base 2)    [0, 1]
``chi2_homogeneity``   chi-square test that two count vectors share one distribution
``proportion_test``    two-proportion z-test (pooled)
``adjust_p_values``    Benjamini-Hochberg or Bonferroni across many tests
=====================  ===========================================================  =========
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]

__all__ = [
    "CORRECTIONS",
    "KS_EXACT_MAX",
    "PSI_FLOOR",
    "TestResult",
    "adjust_p_values",
    "bin_counts",
    "chi2_homogeneity",
    "chi2_sf",
    "jensen_shannon",
    "kolmogorov_sf",
    "ks_wasserstein",
    "proportion_test",
    "psi",
    "sorted_quantiles",
]

KS_EXACT_MAX = 10_000
"""Above this ``n*m/(n+m)`` the KS p-value comes from ``kstwobign`` instead of ``kstwo``."""
PSI_FLOOR = 1e-4
"""Share that an empty bin counts as in :func:`psi`, so that PSI stays finite."""
CORRECTIONS = ("benjamini-hochberg", "bonferroni", "none")

_SCIPY_HINT = "drift statistics need scipy: pip install 'shipyard-mlops[monitoring]'"


class TestResult(NamedTuple):
    """A test's statistic and two-sided p-value."""

    statistic: float
    p_value: float


def _scipy_stats() -> Any:
    """``scipy.stats``, for the KS distribution of small samples only: importing it takes
    ~0.5 s, and ``scipy.special`` alone ~0.2 s, more than numpy and pyarrow together; the
    other distributions here are a few lines of :mod:`math` (tested against scipy)."""
    try:
        import scipy.stats
    except ImportError as exc:  # pragma: no cover - scipy is installed in development
        raise InvalidArgumentError(_SCIPY_HINT) from exc
    return scipy.stats


def kolmogorov_sf(x: float) -> float:
    """``P(K > x)`` for Kolmogorov's limit distribution (``scipy.special.kolmogorov``).

    Two series, each used where it converges fast (Marsaglia, Tsang & Wang, 2003):
    ``2 * sum((-1)**(k-1) * exp(-2 k**2 x**2))`` from ``x = 1`` up, and one minus the CDF
    ``sqrt(2 pi) / x * sum(exp(-(2k-1)**2 pi**2 / (8 x**2)))`` below.
    """
    if math.isnan(x):
        return math.nan
    if x < 0.1:  # the CDF is below 1e-50 here (and 8 x**2 may underflow)
        return 1.0
    if x < 1.0:
        t = -(math.pi**2) / (8 * x * x)
        cdf = (
            math.sqrt(2 * math.pi)
            / x
            * sum(math.exp((2 * k - 1) ** 2 * t) for k in (1, 2, 3, 4, 5))
        )
        return min(max(1.0 - cdf, 0.0), 1.0)
    terms = (math.exp(-2 * k * k * x * x) for k in range(1, 8))
    return min(2 * sum(term if k % 2 else -term for k, term in enumerate(terms, 1)), 1.0)


def chi2_sf(statistic: float, df: float) -> float:
    """``P(X > statistic)`` for a chi-square distribution with ``df`` degrees of freedom
    (``scipy.stats.chi2.sf``): the regularized upper incomplete gamma function
    ``Q(df/2, statistic/2)``, by its series below ``a + 1`` and its continued fraction above
    (Numerical Recipes, 3rd ed., 6.2)."""
    a, x = df / 2, statistic / 2
    if math.isnan(x) or a <= 0:
        return math.nan
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    scale = math.exp(a * math.log(x) - x - math.lgamma(a))
    if x < a + 1:
        term = total = 1 / a
        n = a
        for _ in range(10_000):
            n += 1
            term *= x / n
            total += term
            if term < total * 1e-17:
                break
        return min(max(1.0 - total * scale, 0.0), 1.0)
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    fraction = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1 / (d if abs(d) > tiny else tiny)
        c = b + an / c
        c = c if abs(c) > tiny else tiny
        fraction *= d * c
        if abs(d * c - 1) < 1e-16:
            break
    return min(max(fraction * scale, 0.0), 1.0)


def ks_wasserstein(
    reference: FloatArray, current: FloatArray, *, presorted: bool = False
) -> tuple[TestResult, float]:
    """Kolmogorov-Smirnov test and Wasserstein-1 distance of two samples in one pass.

    Both come from the gap between the two empirical CDFs evaluated at every observed value:
    KS is its largest absolute value, Wasserstein its integral. The p-value is the asymptotic
    one of ``scipy.stats.ks_2samp(method="asymp")`` (``kstwo`` at ``n*m/(n+m)``), which is
    what scipy itself uses above 10,000 values; above :data:`KS_EXACT_MAX` effective values it
    is Kolmogorov's limit distribution (``kstwobign``).

    Args:
        reference: the reference sample (finite values).
        current: the current sample (finite values).
        presorted: both arrays are already sorted ascending (saves two sorts).

    Returns:
        ``(TestResult(D, p), wasserstein)``; the distance is in the data's units.

    Raises:
        InvalidArgumentError: if a sample is empty.
    """
    import numpy as np

    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(current, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise InvalidArgumentError("KS and Wasserstein need at least one value on each side")
    if not presorted:
        a, b = np.sort(a), np.sort(b)
    both = np.concatenate([a, b])
    # A stable sort of two sorted runs is a linear-time merge (timsort); the order says which
    # side each merged value came from, so both CDFs are running counts.
    order = np.argsort(both, kind="stable")
    merged = both[order]
    del both
    # gap = F_a - F_b = k_a / n - (i - k_a) / m for the i-th merged value, k_a of them from a;
    # computed in place, as these arrays are as long as both samples together.
    gap = np.cumsum(order < a.size, dtype=np.float64)
    del order
    gap *= 1 / a.size + 1 / b.size
    rank = np.arange(1.0, merged.size + 1.0)
    rank *= 1 / b.size
    gap -= rank
    del rank
    np.abs(gap, out=gap)
    step = np.diff(merged)
    # Within a run of equal values the CDFs are only complete at its last element.
    d = float(gap[np.append(step != 0, True)].max())
    wasserstein = float(np.dot(gap[:-1], step))
    m, n = sorted((float(a.size), float(b.size)), reverse=True)
    effective = m * n / (m + n)
    if effective <= KS_EXACT_MAX:
        p = float(_scipy_stats().kstwo.sf(d, max(round(effective), 1)))
    else:  # kstwo can take half a second here; its limit is within ~1 % (relative)
        p = kolmogorov_sf(d * math.sqrt(effective))
    return TestResult(d, min(max(p, 0.0), 1.0)), wasserstein


def bin_counts(values: FloatArray, edges: FloatArray, *, presorted: bool = False) -> FloatArray:
    """Count values in the bins of a :class:`~shipyard.entities.data.Histogram`.

    Bin ``i`` is ``[edges[i], edges[i+1])``; values below the first edge fall in the first
    bin and values at or above the last one in the last bin, the way profiles count them.
    ``presorted`` values are counted with a binary search per edge instead of per value.
    """
    import numpy as np

    inner = np.asarray(edges, dtype=np.float64)[1:-1]
    if presorted:
        cuts = np.searchsorted(values, inner, side="left")
        counts: FloatArray = np.diff(np.r_[0, cuts, len(values)]).astype(np.float64)
        return counts
    index = np.searchsorted(inner, values, side="right")
    return np.bincount(index, minlength=inner.size + 1).astype(np.float64)


def sorted_quantiles(values: FloatArray, levels: FloatArray) -> FloatArray:
    """Quantiles of sorted values, interpolated linearly (``numpy.quantile``'s default)."""
    import numpy as np

    position = np.asarray(levels, dtype=np.float64) * (len(values) - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, len(values) - 1)
    fraction = position - low
    result: FloatArray = values[low] + (values[high] - values[low]) * fraction
    return result


def _shares(counts: FloatArray) -> FloatArray:
    import numpy as np

    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0 or (c < 0).any() or not np.isfinite(c).all():
        raise InvalidArgumentError("counts must be a non-empty vector of finite values >= 0")
    total = c.sum()
    if total <= 0:
        raise InvalidArgumentError("counts must not all be zero")
    shares: FloatArray = c / total
    return shares


def psi(reference_counts: FloatArray, current_counts: FloatArray) -> float:
    """Population stability index ``sum((c - r) * ln(c / r))`` over bin shares.

    Empty bins count as a share of :data:`PSI_FLOOR` on either side, so PSI is finite (and
    an unseen category adds a large, bounded term). Symmetric in its arguments.
    """
    import numpy as np

    r = np.maximum(_shares(reference_counts), PSI_FLOOR)
    c = np.maximum(_shares(current_counts), PSI_FLOOR)
    _same_length(r, c)
    return float(np.sum((c - r) * np.log(c / r)))


def jensen_shannon(reference_counts: FloatArray, current_counts: FloatArray) -> float:
    """Jensen-Shannon distance (base 2): 0 for identical shares, 1 for disjoint ones.

    The square root of the JS divergence, as ``scipy.spatial.distance.jensenshannon(p, q,
    base=2)``; symmetric, and bins empty on one side are fine.
    """
    import numpy as np

    p, q = _shares(reference_counts), _shares(current_counts)
    _same_length(p, q)
    m = (p + q) / 2

    def kl(x: FloatArray) -> float:
        used = x > 0
        return float(np.sum(x[used] * np.log2(x[used] / m[used])))

    divergence = max((kl(p) + kl(q)) / 2, 0.0)
    return min(math.sqrt(divergence), 1.0)


def chi2_homogeneity(reference_counts: FloatArray, current_counts: FloatArray) -> TestResult:
    """Chi-square test that two count vectors come from one distribution (2 x k table).

    Unlike a goodness-of-fit test against the reference's shares, this accounts for the
    reference's own sampling noise, so a small reference does not inflate false alarms.
    Bins empty on both sides are dropped; a bin empty only in the reference (an unseen
    category) counts fully. Equal to ``scipy.stats.chi2_contingency([r, c],
    correction=False)``.

    Returns:
        ``TestResult(chi2, p)``; ``(0, 1)`` when fewer than two bins hold values.
    """
    import numpy as np

    r = np.asarray(reference_counts, dtype=np.float64)
    c = np.asarray(current_counts, dtype=np.float64)
    _same_length(r, c)
    _shares(r), _shares(c)  # validates both
    used = (r + c) > 0
    r, c = r[used], c[used]
    if r.size < 2:
        return TestResult(0.0, 1.0)
    n_r, n_c = r.sum(), c.sum()
    column = r + c
    total = n_r + n_c
    expected_r, expected_c = column * (n_r / total), column * (n_c / total)
    statistic = float(
        np.sum((r - expected_r) ** 2 / expected_r + (c - expected_c) ** 2 / expected_c)
    )
    p = chi2_sf(statistic, r.size - 1)
    return TestResult(statistic, p)


def proportion_test(
    reference_hits: float, reference_total: float, current_hits: float, current_total: float
) -> TestResult:
    """Two-proportion z-test with the pooled proportion (two-sided).

    ``z**2`` equals the chi-square statistic of the 2 x 2 table. When the pooled proportion is
    0 or 1 (nothing varies), ``z`` is 0 and ``p`` is 1.
    """
    if min(reference_total, current_total) <= 0:
        raise InvalidArgumentError("a proportion test needs at least one value on each side")
    if not (0 <= reference_hits <= reference_total and 0 <= current_hits <= current_total):
        raise InvalidArgumentError("hits must lie between 0 and the total")
    pooled = (reference_hits + current_hits) / (reference_total + current_total)
    variance = pooled * (1 - pooled) * (1 / reference_total + 1 / current_total)
    if variance <= 0:
        return TestResult(0.0, 1.0)
    z = (current_hits / current_total - reference_hits / reference_total) / math.sqrt(variance)
    p = math.erfc(abs(z) / math.sqrt(2))  # 2 * norm.sf(|z|)
    return TestResult(z, min(p, 1.0))


def adjust_p_values(p_values: FloatArray, method: str = "benjamini-hochberg") -> FloatArray:
    """Correct p-values for testing many columns at once.

    Args:
        p_values: one p-value per test.
        method: ``benjamini-hochberg`` (controls the false discovery rate; the adjusted value
            of the i-th smallest of m p-values is ``min_{j>=i} p_(j) * m / j``),
            ``bonferroni`` (``min(p * m, 1)``, controls the chance of any false alarm) or
            ``none``.

    Returns:
        Adjusted p-values in the input's order.
    """
    import numpy as np

    p = np.asarray(p_values, dtype=np.float64)
    if p.size and (np.isnan(p).any() or (p < 0).any() or (p > 1).any()):
        raise InvalidArgumentError("p-values must lie in [0, 1]")
    m = p.size
    if method == "none" or m == 0:
        return p.copy()
    if method == "bonferroni":
        adjusted: FloatArray = np.minimum(p * m, 1.0)
        return adjusted
    if method != "benjamini-hochberg":
        raise InvalidArgumentError(
            f"unknown correction {method!r}: use one of {', '.join(CORRECTIONS)}"
        )
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    stepped = np.minimum.accumulate(scaled[::-1])[::-1]
    result = np.empty_like(p)
    result[order] = np.minimum(stepped, 1.0)
    return result


def _same_length(a: FloatArray, b: FloatArray) -> None:
    if a.shape != b.shape:
        raise InvalidArgumentError(f"count vectors differ in length: {a.size} and {b.size}")
