"""Krippendorff's alpha and quadratic-weighted kappa."""
import numpy as np
import pandas as pd
import pytest

from analysis.agreement import (ALPHA, KAPPA, agreement_table, krippendorff_alpha,
                                quadratic_weighted_kappa)

NA = np.nan
# Krippendorff, K. (2011) "Computing Krippendorff's Alpha-Reliability",
# University of Pennsylvania (ScholarlyCommons), section C: 4 observers
# (rows) × 12 units (columns), values 1–5, with missing values. Published:
# alpha nominal 0.743, ordinal 0.815, interval 0.849, ratio 0.797.
KRIPPENDORFF_2011 = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NA, NA, NA],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NA, 3],
    [NA, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NA],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NA],
])


@pytest.mark.parametrize("level, published", [("nominal", 0.743), ("ordinal", 0.815),
                                              ("interval", 0.849), ("ratio", 0.797)])
def test_krippendorff_paper_example(level, published):
    import krippendorff  # the package analysis.agreement relies on

    assert krippendorff.alpha(KRIPPENDORFF_2011, level_of_measurement=level) == pytest.approx(
        published, abs=5e-4)


def test_our_alpha_wrapper_on_scores_1_to_4():
    # Drop the unit holding a 5 so that the data live in the 1–4 score domain;
    # with value_domain 1–4 the wrapper must agree with the package called plainly.
    import krippendorff

    data = np.delete(KRIPPENDORFF_2011, 9, axis=1)
    assert krippendorff_alpha(data) == pytest.approx(
        krippendorff.alpha(data, level_of_measurement="ordinal"))
    assert np.isnan(krippendorff_alpha(np.array([[1, NA], [NA, 2]])))  # nothing pairable
    assert np.isnan(krippendorff_alpha(np.array([[3, 3], [3, 3]])))  # no variation: 0/0
    assert krippendorff_alpha(np.array([[1, 2, 3, 4], [1, 2, 3, 4]])) == 1


def test_quadratic_weighted_kappa_by_hand():
    # a = 1,2,3,4; b = 1,2,4,4. Weights (i−j)²/9. Observed Σ w·O = (1/9)(1/4) = 1/36.
    # Marginals a = ¼ each, b = (¼, ¼, 0, ½); Σ_i (i−j)² = 14, 6, 6, 14 for j = 1..4,
    # so Σ w·E = ¼ · (¼·14 + ¼·6 + 0·6 + ½·14) / 9 = 1/3.
    # kappa = 1 − (1/36)/(1/3) = 11/12.
    assert quadratic_weighted_kappa([1, 2, 3, 4], [1, 2, 4, 4]) == pytest.approx(11 / 12)
    assert quadratic_weighted_kappa([1, 2, 3, 4], [1, 2, 3, 4]) == 1
    assert quadratic_weighted_kappa([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    assert np.isnan(quadratic_weighted_kappa([2, 2], [2, 2]))


def test_quadratic_weighted_kappa_counts_unused_categories():
    # The weights are distances on the whole 1–4 scale, used or not; w_ij = (i−j)².
    # a = 2,3 and b = 3,3: Σ w·O = ½·1; marginals a = (0, ½, ½, 0), b = (0, 0, 1, 0),
    # Σ w·E = ½·(2−3)² + ½·0 = ½; kappa = 1 − ½/½ = 0.
    assert quadratic_weighted_kappa([2, 3], [3, 3]) == pytest.approx(0.0)
    # a = 1,4 and b = 1,3: O has (1,1) and (4,3): Σ w·O = ½·1; marginals a = (½,0,0,½),
    # b = (½,0,½,0): Σ w·E = ¼·(0 + 4 + 9 + 1) = 3.5; kappa = 1 − 0.5/3.5 = 6/7.
    assert quadratic_weighted_kappa([1, 4], [1, 3]) == pytest.approx(6 / 7)


def test_agreement_table_units_and_pairs():
    rows = []
    for reader, scores in {"R1": [1, 2, 3], "R2": [1, 2, 4], "R3": [2, np.nan, 3]}.items():
        for patient, score in zip(["P1", "P2", "P3"], scores):
            rows.append(dict(reader=reader, reader_group="", patient=patient, experiment=2,
                             image_type="LF", sequence="T1w", criterion="gm_wm", score=score))
    table = agreement_table(pd.DataFrame(rows))
    alpha = table[table["measure"] == ALPHA]
    assert len(alpha) == 1 and alpha["n_units"].item() == 3 and alpha["n_readers"].item() == 3
    kappas = table[table["measure"] == KAPPA].set_index(["reader_a", "reader_b"])
    assert kappas.loc[("R1", "R2"), "n_units"] == 3
    assert kappas.loc[("R1", "R3"), "n_units"] == 2  # R3 has no score for P2
    assert kappas.loc[("R1", "R2"), "value"] == pytest.approx(
        quadratic_weighted_kappa([1, 2, 3], [1, 2, 4]))
