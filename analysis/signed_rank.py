"""The Wilcoxon signed-rank test for matched pairs, with its effect size.

The test is scipy's (`scipy.stats.wilcoxon`, two-sided) with its default
`method='auto'`: the exact null distribution without ties or zeros; with ties
or zeros and at most 13 pairs, the exact permutation distribution of the
signed ranks (each difference's sign flipped with probability 1/2); the
tie-corrected normal approximation beyond. scipy enumerates that permutation
case one sign pattern at a time (≈0.2 s a test); `permutation_p_value` gets
the same p-value from the distribution of the rank sum by convolution, so a
whole study takes milliseconds (tests check it against scipy).

This module adds the matched-pairs rank-biserial correlation (Kerby 2014,
"The simple difference formula", Comprehensive Psychology 3:11.IT.3.1).
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import scipy.stats

ZERO_METHODS = ("wilcox", "pratt", "zsplit")
PERMUTATION_MAX_PAIRS = 13  # scipy's 'auto' threshold for the permutation method


@dataclasses.dataclass(frozen=True)
class SignedRankResult:
    """One two-sided signed-rank test of x against y (differences d = x − y).

    n_pairs: pairs with both values present (zero differences included).
    statistic: scipy's two-sided statistic, min(R+, R−).
    p_value: two-sided p (NaN when no non-zero difference is left).
    effect_size: matched-pairs rank-biserial correlation in [−1, 1];
      positive when x tends to exceed y.
    """
    n_pairs: int
    statistic: float
    p_value: float
    effect_size: float


def signed_ranks(d: np.ndarray, zero_method: str = "wilcox") -> tuple[float, float, float]:
    """Returns (R+, R−, total rank sum) of the differences `d` (shape (n,)).

    |d| is ranked with average ranks for ties. 'wilcox' drops zeros before
    ranking; 'pratt' ranks zeros but counts them on neither side; 'zsplit'
    ranks zeros and gives half of their ranks to each side.
    """
    _check_zero_method(zero_method)
    d = np.asarray(d, dtype=float)
    if zero_method == "wilcox":
        d = d[d != 0]
    ranks = scipy.stats.rankdata(np.abs(d))
    r_plus, r_minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    if zero_method == "zsplit":
        half_zero = ranks[d == 0].sum() / 2
        r_plus, r_minus = r_plus + half_zero, r_minus + half_zero
    return float(r_plus), float(r_minus), float(ranks.sum())


def rank_biserial(x: np.ndarray, y: np.ndarray, zero_method: str = "wilcox") -> float:
    """Matched-pairs rank-biserial correlation r = (R+ − R−) / (sum of all ranks).

    With 'wilcox' this is Kerby's simple difference formula; with 'pratt' and
    'zsplit' the ranks of zero differences count in the denominator only.
    NaN when no difference is left to rank.
    """
    r_plus, r_minus, total = signed_ranks(np.asarray(x, float) - np.asarray(y, float),
                                          zero_method)
    return (r_plus - r_minus) / total if total > 0 else float("nan")


def signed_rank_test(x: np.ndarray, y: np.ndarray, zero_method: str = "wilcox",
                     method: str = "auto") -> SignedRankResult:
    """Two-sided Wilcoxon signed-rank test of paired samples x, y (shape (n,)).

    Pairs with a missing (NaN) value on either side are dropped first.
    """
    _check_zero_method(zero_method)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got {x.shape} and {y.shape}")
    both = ~(np.isnan(x) | np.isnan(y))
    x, y = x[both], y[both]
    n_pairs, d = int(both.sum()), x - y
    if not np.any(d != 0):
        return SignedRankResult(n_pairs, float("nan"), float("nan"), float("nan"))
    effect_size = rank_biserial(x, y, zero_method)
    if method == "auto" and _has_ties_or_zeros(d) and d.size <= PERMUTATION_MAX_PAIRS:
        r_plus, r_minus, _ = signed_ranks(d, zero_method)
        return SignedRankResult(n_pairs, min(r_plus, r_minus),
                                permutation_p_value(d, zero_method), effect_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's small-n notes
        result = scipy.stats.wilcoxon(x, y, zero_method=zero_method, method=method)
    return SignedRankResult(n_pairs, float(result.statistic), float(result.pvalue), effect_size)


def permutation_p_value(d: np.ndarray, zero_method: str = "wilcox") -> float:
    """Two-sided p of the signed-rank sum under random signs of the differences `d`.

    Under H0 each non-zero difference is positive or negative with probability
    1/2 given the ranks, so R+ = Σ r_i B_i with B_i ~ Bernoulli(1/2). Average
    ranks are multiples of 1/2, so 2 R+ is an integer whose distribution is
    built by convolving one rank at a time. p = min(1, 2 min(P(R+ ≤ obs),
    P(R+ ≥ obs))), scipy's two-sided permutation p-value. Zero differences
    never change sign, so they shift R+ by a constant at most.
    """
    d = np.asarray(d, dtype=float)
    kept = d if zero_method != "wilcox" else d[d != 0]
    ranks = scipy.stats.rankdata(np.abs(kept))
    doubled = np.rint(2 * ranks[kept != 0]).astype(int)
    distribution = np.zeros(doubled.sum() + 1)
    distribution[0] = 1.0
    for rank in doubled:
        shifted = np.zeros_like(distribution)
        shifted[rank:] = distribution[:-rank]
        distribution = (distribution + shifted) / 2
    observed = int(np.rint(2 * ranks[kept > 0].sum()))
    lower, upper = distribution[:observed + 1].sum(), distribution[observed:].sum()
    return float(min(1.0, 2 * min(lower, upper)))


def _has_ties_or_zeros(d: np.ndarray) -> bool:
    magnitudes = np.abs(d)
    return bool(np.any(magnitudes == 0) or np.unique(magnitudes).size < magnitudes.size)


def _check_zero_method(zero_method: str) -> None:
    if zero_method not in ZERO_METHODS:
        raise ValueError(f"zero_method must be one of {ZERO_METHODS}, got {zero_method!r}")
