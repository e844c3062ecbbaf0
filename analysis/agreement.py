"""Inter-reader agreement: Krippendorff's alpha and quadratic-weighted kappa.

Alpha (ordinal) comes from the maintained `krippendorff` package; it accepts
any number of readers and missing scores. Cohen's kappa with quadratic
weights (Cohen 1968, Psychological Bulletin 70:213–220) comes from
scikit-learn, for one pair of readers on the units both scored:

    kappa_w = 1 − Σ w_ij O_ij / Σ w_ij E_ij,   w_ij = (i − j)²,

with O the observed and E the chance-expected (outer product of the two
readers' marginals) proportions over the k score categories 1–4.
"""
from __future__ import annotations

import itertools
import warnings

import krippendorff
import numpy as np
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import cohen_kappa_score

from analysis.scores import ALL_READERS, SCORE_RANGE, in_reading_order

CATEGORIES = np.arange(SCORE_RANGE[0], SCORE_RANGE[1] + 1)
AGREEMENT_COLUMNS = ["measure", "experiment", "criterion", "sequence", "image_type",
                     "reader_a", "reader_b", "n_readers", "n_units", "value"]
ALPHA = "krippendorff_alpha_ordinal"
KAPPA = "cohen_kappa_quadratic"


def krippendorff_alpha(reliability: np.ndarray, level: str = "ordinal") -> float:
    """Krippendorff's alpha of a (readers, units) matrix of scores, NaN = missing.

    NaN when fewer than two units carry two scores or all paired scores agree
    trivially (alpha is 0/0 then).
    """
    reliability = np.asarray(reliability, dtype=float)
    pairable = (~np.isnan(reliability)).sum(axis=0) >= 2
    values = reliability[:, pairable]
    if pairable.sum() < 1 or np.unique(values[~np.isnan(values)]).size < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(krippendorff.alpha(values, level_of_measurement=level,
                                        value_domain=CATEGORIES))


def quadratic_weighted_kappa(a: np.ndarray, b: np.ndarray,
                             categories: np.ndarray = CATEGORIES) -> float:
    """Cohen's quadratic-weighted kappa of two readers' scores (shape (n,)).

    NaN when the chance disagreement is zero (both readers used one category).
    """
    with warnings.catch_warnings():  # the undefined case warns, and is NaN by design
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return float(cohen_kappa_score(np.asarray(a), np.asarray(b), labels=categories,
                                       weights="quadratic", replace_undefined_by=np.nan))


def agreement_table(scores: pd.DataFrame) -> pd.DataFrame:
    """All agreement figures of a validated scores table (columns AGREEMENT_COLUMNS).

    Alpha: per experiment × criterion × sequence × image type, units = patients.
    Kappa: per experiment × criterion × reader pair, units = (patient, image
    type, sequence) both readers scored; pairs sharing fewer than 2 units are
    left out.
    """
    scored = scores.dropna(subset=["score"])
    alphas = [_alpha_row(key, group) for key, group in
              scored.groupby(["experiment", "criterion", "sequence", "image_type"])]
    kappas = [row for (experiment, criterion), group in
              scored.groupby(["experiment", "criterion"])
              for row in _kappa_rows(experiment, criterion, group)]
    return pd.concat([in_reading_order(pd.DataFrame(rows, columns=AGREEMENT_COLUMNS))
                      for rows in (alphas, kappas)], ignore_index=True)


def _alpha_row(key: tuple, group: pd.DataFrame) -> dict:
    experiment, criterion, sequence, image_type = key
    matrix = group.pivot(index="reader", columns="patient", values="score")
    return dict(measure=ALPHA, experiment=experiment, criterion=criterion,
                sequence=sequence, image_type=image_type, reader_a=ALL_READERS,
                reader_b=ALL_READERS, n_readers=matrix.shape[0],
                n_units=int(((~matrix.isna()).sum(axis=0) >= 2).sum()),
                value=krippendorff_alpha(matrix.to_numpy()))


def _kappa_rows(experiment: int, criterion: str, group: pd.DataFrame) -> list[dict]:
    wide = group.pivot(index=["patient", "image_type", "sequence"], columns="reader",
                       values="score")
    rows = []
    for reader_a, reader_b in itertools.combinations(sorted(wide.columns), 2):
        both = wide[[reader_a, reader_b]].dropna()
        if len(both) < 2:
            continue
        rows.append(dict(measure=KAPPA, experiment=experiment, criterion=criterion,
                         sequence=ALL_READERS, image_type=ALL_READERS, reader_a=reader_a,
                         reader_b=reader_b, n_readers=2, n_units=len(both),
                         value=quadratic_weighted_kappa(both[reader_a].to_numpy(),
                                                        both[reader_b].to_numpy())))
    return rows
