"""The drift statistics against scipy, and the properties they must have."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy import special, stats
from scipy.spatial import distance

from shipyard.errors import InvalidArgumentError
from shipyard.monitoring import statistics as ds
from tests.strategies import bin_counts, drift_samples, p_value_lists, paired_bin_counts


@given(drift_samples, drift_samples)
def test_ks_and_wasserstein_agree_with_scipy(a: list[float], b: list[float]) -> None:
    assume(len(a) + len(b) > 2)  # scipy divides by zero for one value on each side
    (d, p), w = ds.ks_wasserstein(np.array(a), np.array(b))
    expected = stats.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)
    assert w == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9, abs=1e-6)


@given(drift_samples, drift_samples)
def test_ks_and_wasserstein_are_symmetric(a: list[float], b: list[float]) -> None:
    (d1, p1), w1 = ds.ks_wasserstein(np.array(a), np.array(b))
    (d2, p2), w2 = ds.ks_wasserstein(np.array(b), np.array(a))
    assert (d1, p1) == pytest.approx((d2, p2))
    assert w1 == pytest.approx(w2, rel=1e-9, abs=1e-9)


@given(drift_samples)
def test_identical_samples_have_no_distance(a: list[float]) -> None:
    (d, p), w = ds.ks_wasserstein(np.array(a), np.array(a))
    assert (d, p, w) == (0.0, 1.0, 0.0)


@given(drift_samples, st.floats(min_value=-100, max_value=100))
def test_wasserstein_of_a_shift_is_the_shift(a: list[float], shift: float) -> None:
    x = np.array(a)
    _, w = ds.ks_wasserstein(x, x + shift)
    # x + shift rounds, so the shift is exact only up to the values' float spacing.
    spacing = float(np.max(np.spacing(np.abs(x) + abs(shift))))
    assert w == pytest.approx(abs(shift), abs=4 * spacing + 1e-12)


@pytest.mark.parametrize("shift", [0.0, 0.002, 0.005, 0.01])
def test_large_samples_use_the_kolmogorov_limit_within_half_a_percent(shift: float) -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=40_000), rng.normal(shift, size=60_000)
    (d, p), _ = ds.ks_wasserstein(a, b)
    expected = stats.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue, rel=1e-2, abs=1e-300)


def test_presorted_skips_the_sort_and_gives_the_same_answer() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=500), rng.normal(0.3, size=700)
    assert ds.ks_wasserstein(np.sort(a), np.sort(b), presorted=True) == ds.ks_wasserstein(a, b)


def test_empty_sample_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="at least one value"):
        ds.ks_wasserstein(np.array([]), np.array([1.0]))


@given(bin_counts)
def test_identical_bins_have_zero_psi_and_js(counts: list[int]) -> None:
    c = np.array(counts, dtype=float)
    assert ds.psi(c, c) == pytest.approx(0.0, abs=1e-12)
    assert ds.jensen_shannon(c, c * 3) == pytest.approx(0.0, abs=1e-7)


@given(paired_bin_counts)
def test_psi_and_js_are_symmetric_and_in_range(pair: tuple[list[int], list[int]]) -> None:
    r, c = (np.array(x, dtype=float) for x in pair)
    assert ds.psi(r, c) == pytest.approx(ds.psi(c, r), rel=1e-9, abs=1e-12)
    assert ds.psi(r, c) >= 0
    js = ds.jensen_shannon(r, c)
    assert js == pytest.approx(ds.jensen_shannon(c, r), abs=1e-12)
    assert 0.0 <= js <= 1.0


@given(paired_bin_counts)
def test_jensen_shannon_agrees_with_scipy(pair: tuple[list[int], list[int]]) -> None:
    r, c = (np.array(x, dtype=float) for x in pair)
    expected = distance.jensenshannon(r, c, base=2)
    assert ds.jensen_shannon(r, c) == pytest.approx(expected, abs=1e-7)


def test_disjoint_bins_are_at_distance_one() -> None:
    assert ds.jensen_shannon(np.array([5.0, 0.0]), np.array([0.0, 7.0])) == pytest.approx(1.0)


def test_psi_by_hand() -> None:
    # shares 0.5/0.5 vs 0.25/0.75: (0.25-0.5)ln(0.5) + (0.75-0.5)ln(1.5)
    expected = -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
    assert ds.psi(np.array([10.0, 10.0]), np.array([1.0, 3.0])) == pytest.approx(expected)


@given(st.floats(min_value=0, max_value=12))
def test_kolmogorov_tail_agrees_with_scipy(x: float) -> None:
    expected = float(special.kolmogorov(x))
    assert ds.kolmogorov_sf(x) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@given(st.floats(min_value=0, max_value=2_000), st.integers(min_value=1, max_value=500))
def test_chi2_tail_agrees_with_scipy(statistic: float, df: int) -> None:
    expected = float(stats.chi2.sf(statistic, df))
    assert ds.chi2_sf(statistic, df) == pytest.approx(expected, rel=1e-10, abs=1e-15)


def test_psi_stays_finite_for_an_empty_bin() -> None:
    value = ds.psi(np.array([10.0, 0.0]), np.array([5.0, 5.0]))
    assert math.isfinite(value)
    assert value > 1


@given(paired_bin_counts)
def test_chi2_homogeneity_agrees_with_scipy(pair: tuple[list[int], list[int]]) -> None:
    r, c = (np.array(x, dtype=float) for x in pair)
    used = (r + c) > 0
    result = ds.chi2_homogeneity(r, c)
    if used.sum() < 2:
        assert result == (0.0, 1.0)
        return
    expected = stats.chi2_contingency(np.array([r[used], c[used]]), correction=False)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-9, abs=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-12)


def test_chi2_with_a_huge_reference_is_the_goodness_of_fit_test() -> None:
    # With the reference's shares known exactly, homogeneity tends to scipy's chisquare.
    shares = np.array([0.5, 0.3, 0.2])
    current = np.array([460.0, 330.0, 210.0])
    fit = stats.chisquare(current, shares * current.sum())
    result = ds.chi2_homogeneity(shares * 1e9, current)
    assert result.statistic == pytest.approx(fit.statistic, rel=1e-5)
    assert result.p_value == pytest.approx(fit.pvalue, rel=1e-4)


def test_chi2_of_equal_shares_is_zero() -> None:
    assert ds.chi2_homogeneity(np.array([10.0, 20.0]), np.array([30.0, 60.0])) == (0.0, 1.0)


@given(
    st.integers(0, 1000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.integers(0, 1000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
)
def test_proportion_z_squared_is_the_2x2_chi_square(
    ref: tuple[int, int], cur: tuple[int, int]
) -> None:
    (k1, n1), (k2, n2) = ref, cur
    if n1 == 0 or n2 == 0:
        with pytest.raises(InvalidArgumentError):
            ds.proportion_test(k1, n1, k2, n2)
        return
    z, p = ds.proportion_test(k1, n1, k2, n2)
    chi2, chi2_p = ds.chi2_homogeneity(np.array([k1, n1 - k1]), np.array([k2, n2 - k2]))
    assert z**2 == pytest.approx(chi2, rel=1e-9, abs=1e-9)
    assert p == pytest.approx(chi2_p, rel=1e-6, abs=1e-12)


def test_proportion_sign_follows_the_current_share() -> None:
    assert ds.proportion_test(10, 100, 30, 100).statistic > 0
    assert ds.proportion_test(30, 100, 10, 100).statistic < 0


def test_benjamini_hochberg_by_hand() -> None:
    # sorted: 0.005 (rank 1), 0.01 (2), 0.03 (3), 0.04 (4); p * 4 / rank = .02 .02 .04 .04
    p = np.array([0.01, 0.04, 0.03, 0.005])
    assert ds.adjust_p_values(p).tolist() == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert ds.adjust_p_values(p, "bonferroni").tolist() == pytest.approx([0.04, 0.16, 0.12, 0.02])
    assert ds.adjust_p_values(p, "none").tolist() == p.tolist()


def test_benjamini_hochberg_takes_the_later_minimum() -> None:
    # 0.04 * 3 / 2 = 0.06 exceeds 0.05 * 3 / 3 = 0.05, so the middle one steps down to 0.05.
    adjusted = ds.adjust_p_values(np.array([0.001, 0.04, 0.05]))
    assert adjusted.tolist() == pytest.approx([0.003, 0.05, 0.05])


@given(p_value_lists)
def test_benjamini_hochberg_agrees_with_scipy(p_values: list[float]) -> None:
    p = np.array(p_values)
    adjusted = ds.adjust_p_values(p)
    if p.size:
        assert adjusted == pytest.approx(stats.false_discovery_control(p), rel=1e-9, abs=1e-15)
    assert (adjusted >= p - 1e-15).all()
    assert (adjusted <= 1).all()


def test_unknown_correction_and_bad_p_values_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="unknown correction"):
        ds.adjust_p_values(np.array([0.1]), "holm")
    with pytest.raises(InvalidArgumentError, match=r"\[0, 1\]"):
        ds.adjust_p_values(np.array([1.5]))


def test_count_vectors_must_match_and_hold_something() -> None:
    with pytest.raises(InvalidArgumentError, match="differ in length"):
        ds.psi(np.array([1.0, 2.0]), np.array([1.0]))
    with pytest.raises(InvalidArgumentError, match="all be zero"):
        ds.jensen_shannon(np.array([0.0, 0.0]), np.array([1.0, 1.0]))


@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=200))
def test_bin_counts_agree_with_numpy_histogram_inside_the_edges(values: list[float]) -> None:
    edges = np.array([0.0, 0.1, 0.25, 0.5, 0.9, 1.0])
    counts = ds.bin_counts(np.array(values), edges)
    assert counts.tolist() == np.histogram(values, edges)[0].tolist()


def test_bin_counts_put_outside_values_in_the_end_bins() -> None:
    counts = ds.bin_counts(np.array([-5.0, 0.0, 2.0, 3.0, 99.0]), np.array([0.0, 1.0, 3.0]))
    assert counts.tolist() == [2.0, 3.0]


@given(drift_samples, st.lists(st.floats(0, 1), min_size=1, max_size=9))
def test_sorted_quantiles_agree_with_numpy(values: list[float], levels: list[float]) -> None:
    x = np.sort(np.array(values))
    expected = np.quantile(x, levels)
    assert ds.sorted_quantiles(x, np.array(levels)) == pytest.approx(expected, rel=1e-12, abs=1e-9)


@given(drift_samples)
def test_bin_counts_of_sorted_values_match_the_general_case(values: list[float]) -> None:
    x = np.sort(np.array(values))
    edges = np.unique(np.quantile(x, [0, 0.2, 0.5, 0.5, 0.9, 1]))
    expected = ds.bin_counts(x, edges)
    assert ds.bin_counts(x, edges, presorted=True).tolist() == expected.tolist()
