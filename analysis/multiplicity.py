"""Holm's step-down correction for a family of p-values.

Holm, S. (1979) "A simple sequentially rejective multiple test procedure",
Scandinavian Journal of Statistics 6:65–70. With the m p-values sorted,
p(1) ≤ … ≤ p(m), the adjusted value of the i-th is
max over j ≤ i of min(1, (m − j + 1) · p(j)).
"""
from __future__ import annotations

import numpy as np


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values, same shape and order as `p_values` (shape (m,)).

    NaN entries (tests that could not be run) are not part of the family and
    stay NaN.
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    m = present.size
    order = present[np.argsort(p[present], kind="stable")]
    multipliers = m - np.arange(m)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(multipliers * p[order]))
    return adjusted
