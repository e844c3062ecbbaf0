"""Wilcoxon signed-rank test, rank-biserial effect size and Holm's correction."""
import itertools

import numpy as np
import pytest
import scipy.stats

from analysis.multiplicity import holm
from analysis.signed_rank import (permutation_p_value, rank_biserial, signed_rank_test,
                                  signed_ranks)

# Hollander & Wolfe (1973), Nonparametric Statistical Methods, pp. 29f (also the
# example of R's `wilcox.test`): Hamilton depression scale factor of 9 patients
# at the first (x) and second (y) visit after a tranquilliser. Published:
# T+ = 40, one-sided exact P = 0.0195 (so two-sided 0.039); large-sample
# approximation T* = 2.07.
DEPRESSION_X = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
DEPRESSION_Y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]

# Darwin's Zea mays data as given by Fisher (1935), The Design of Experiments,
# §17: height differences (eighths of an inch) of 15 cross- vs self-fertilised
# pairs. Signed-rank test: T− = 24, two-sided exact P = 0.0413 (e.g. R
# `wilcox.test(ZeaMays$diff)` in the HistData documentation: V = 96,
# p-value = 0.04126).
DARWIN_DIFFERENCES = [49, -67, 8, 16, 6, 23, 28, 41, 14, 29, 56, 24, 75, 60, -48]


def test_hollander_wolfe_depression_example():
    result = signed_rank_test(DEPRESSION_X, DEPRESSION_Y)
    r_plus, r_minus, total = signed_ranks(np.subtract(DEPRESSION_X, DEPRESSION_Y))
    assert (r_plus, r_minus, total) == (40, 5, 45)
    assert result.statistic == 5  # two-sided statistic min(T+, T−)
    assert result.p_value == pytest.approx(2 * 0.0195, abs=2e-4)
    assert result.p_value == pytest.approx(2 * 10 / 2**9)  # 10 of 512 sign patterns have T− ≤ 5
    assert result.effect_size == pytest.approx((40 - 5) / 45)
    # Large-sample approximation quoted in the book: T* = (40 − 22.5) / sqrt(71.25) = 2.07.
    approx = signed_rank_test(DEPRESSION_X, DEPRESSION_Y, method="asymptotic")
    z = scipy.stats.norm.isf(approx.p_value / 2)
    assert z == pytest.approx(2.07, abs=0.005)


def test_darwin_zea_mays_example():
    d = np.array(DARWIN_DIFFERENCES, dtype=float)
    result = signed_rank_test(d, np.zeros_like(d))
    assert result.n_pairs == 15
    assert result.statistic == 24
    assert result.p_value == pytest.approx(0.04126, abs=5e-6)
    assert result.effect_size == pytest.approx((96 - 24) / 120)


def _brute_force_p(d: np.ndarray, zero_method: str) -> float:
    """Enumerates all 2^n sign patterns of the non-zero ranks (independent reference)."""
    kept = d if zero_method != "wilcox" else d[d != 0]
    ranks = scipy.stats.rankdata(np.abs(kept))[kept != 0]
    observed = scipy.stats.rankdata(np.abs(kept))[kept > 0].sum()
    sums = [sum(r for r, s in zip(ranks, signs) if s)
            for signs in itertools.product([0, 1], repeat=len(ranks))]
    sums = np.array(sums)
    return min(1.0, 2 * min(np.mean(sums <= observed + 1e-9), np.mean(sums >= observed - 1e-9)))


def test_hand_made_table_with_ties_and_zeros():
    # d = IQT − LF for six reader-patient pairs, scores 1–4: one zero, ties.
    iqt = np.array([3, 3, 2, 4, 2, 4])
    lf = np.array([2, 1, 2, 2, 1, 3])  # d = 1, 2, 0, 2, 1, 1
    # wilcox: zero dropped; |d| = 1,1,1 → rank 2 each; 2,2 → rank 4.5 each.
    assert signed_ranks(iqt - lf, "wilcox") == (15, 0, 15)
    # pratt: zero ranked 1; 1,1,1 → 3 each; 2,2 → 5.5 each; zero rank on neither side.
    assert signed_ranks(iqt - lf, "pratt") == (20, 0, 21)
    # zsplit: the zero's rank 1 split half and half.
    assert signed_ranks(iqt - lf, "zsplit") == (20.5, 0.5, 21)
    assert rank_biserial(iqt, lf, "wilcox") == 1
    assert rank_biserial(iqt, lf, "pratt") == pytest.approx(20 / 21)
    assert rank_biserial(iqt, lf, "zsplit") == pytest.approx(20 / 21)
    result = signed_rank_test(iqt, lf)
    assert (result.n_pairs, result.statistic) == (6, 0)
    assert result.p_value == pytest.approx(2 / 2**5)  # all 5 non-zero signs positive


@pytest.mark.parametrize("zero_method", ["wilcox", "pratt", "zsplit"])
def test_permutation_p_matches_brute_force_and_scipy(zero_method):
    rng = np.random.default_rng(7)
    for _ in range(5):  # scipy enumerates sign patterns one by one: keep n small
        n = int(rng.integers(3, 9))
        x = rng.integers(1, 5, n).astype(float)
        y = rng.integers(1, 5, n).astype(float)
        if not np.any(x != y):
            continue
        expected = _brute_force_p(x - y, zero_method)
        assert permutation_p_value(x - y, zero_method) == pytest.approx(expected)
        reference = scipy.stats.wilcoxon(x, y, zero_method=zero_method)  # scipy's own 'auto'
        result = signed_rank_test(x, y, zero_method=zero_method)
        assert result.p_value == pytest.approx(reference.pvalue)
        assert result.statistic == pytest.approx(reference.statistic)


def test_missing_pairs_dropped_and_untestable_is_nan():
    result = signed_rank_test([1, np.nan, 3, 2], [2, 2, np.nan, 2])  # d = −1, 0
    assert result.n_pairs == 2
    assert result.p_value == 1.0  # one non-zero difference: either sign has probability 1/2
    assert result.effect_size == -1
    all_equal = signed_rank_test([2, 3], [2, 3])
    assert all_equal.n_pairs == 2
    assert np.isnan(all_equal.p_value) and np.isnan(all_equal.effect_size)


def test_rank_biserial_sign_follows_direction():
    x, y = np.array([1, 2, 3, 4.0]), np.array([2, 4, 2, 1.0])  # d = −1, −2, 1, 3
    # |d| ranks: 1,1 → 1.5; 2 → 3; 3 → 4. R+ = 1.5 + 4, R− = 1.5 + 3.
    assert rank_biserial(x, y) == pytest.approx((5.5 - 4.5) / 10)
    assert rank_biserial(y, x) == pytest.approx(-(5.5 - 4.5) / 10)


def test_holm_against_hand_computation():
    # Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → max so far 0.06.
    assert holm(np.array([0.01, 0.04, 0.03, 0.005])) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # NaN is not part of the family: m = 2.
    adjusted = holm(np.array([0.01, np.nan, 0.04]))
    assert adjusted[[0, 2]] == pytest.approx([0.02, 0.04]) and np.isnan(adjusted[1])
    assert holm(np.array([0.5, 0.6])) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm(np.array([])).shape == (0,)


def test_large_samples_with_ties_use_scipys_normal_approximation():
    rng = np.random.default_rng(3)
    x, y = rng.integers(1, 5, 40).astype(float), rng.integers(1, 5, 40).astype(float)
    for zero_method in ("wilcox", "pratt", "zsplit"):
        reference = scipy.stats.wilcoxon(x, y, zero_method=zero_method, method="asymptotic")
        result = signed_rank_test(x, y, zero_method=zero_method)
        assert result.p_value == pytest.approx(reference.pvalue)
        assert result.statistic == pytest.approx(reference.statistic)
