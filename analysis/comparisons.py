"""Paired comparisons of IQT against LF and HF: pairing, tests, Holm correction.

Pairing (docs/reader_study.md): in experiment 2 every reader scores all three image sets
of a patient side by side, so a pair is the two scores of the same reader and
patient. In experiment 1 a reader sees one set per patient, so a pair is the
two per-patient means over readers (each mean over the readers who saw that
set, missing scores excluded). A pair is used only when both sides exist.

One family for Holm's correction is every test of one experiment and reader
group (criteria × sequences × comparisons).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from analysis.multiplicity import holm
from analysis.scores import CRITERIA, SEQUENCES, select_group
from analysis.signed_rank import signed_rank_test

TEST_COLUMNS = ["experiment", "reader_group", "criterion", "sequence", "comparison",
                "n_pairs", "statistic", "p_value", "p_holm", "effect_size"]
COMPARISONS = {"IQT-LF": ("IQT", "LF"), "IQT-HF": ("IQT", "HF")}
PAIRINGS = ("design", "reader_patient", "patient_mean")
DESIGN_PAIRING = {1: "patient_mean", 2: "reader_patient"}


def paired_scores(stratum: pd.DataFrame, first: str, second: str, pairing: str
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Paired scores of image types `first` and `second` in one stratum.

    `stratum` holds one experiment, criterion and sequence. `pairing` is
    'reader_patient' or 'patient_mean' ('design' is resolved by the caller).
    Returns two float arrays of shape (n_pairs,), ordered by unit.
    """
    scored = stratum.dropna(subset=["score"])
    units = {"reader_patient": ["reader", "patient"], "patient_mean": ["patient"]}[pairing]
    wide = scored.groupby(units + ["image_type"])["score"].mean().unstack("image_type")
    wide = wide.reindex(columns=[first, second]).dropna()
    return wide[first].to_numpy(), wide[second].to_numpy()


def resolve_pairing(pairing: str, experiment: int) -> str:
    """The concrete pairing of one experiment: 'design' follows docs/reader_study.md."""
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")
    return DESIGN_PAIRING[experiment] if pairing == "design" else pairing


def signed_rank_tests(scores: pd.DataFrame, groups: Sequence[str],
                      zero_method: str = "wilcox", pairing: str = "design") -> pd.DataFrame:
    """Wilcoxon signed-rank tests of IQT vs LF and IQT vs HF (columns TEST_COLUMNS).

    One row per experiment × reader group × criterion × sequence present in
    the data × comparison; `statistic`, `p_value` and `effect_size` are NaN
    where no non-zero difference is left.
    """
    rows = []
    for experiment in sorted(scores["experiment"].unique()):
        for group in groups:
            chosen = select_group(scores[scores["experiment"] == experiment], group)
            rows.extend(_family(chosen, group, zero_method,
                                resolve_pairing(pairing, int(experiment))))
    table = pd.DataFrame(rows, columns=TEST_COLUMNS)
    for _, family in table.groupby(["experiment", "reader_group"], sort=False):
        table.loc[family.index, "p_holm"] = holm(family["p_value"].to_numpy())
    return table


def _family(experiment_scores: pd.DataFrame, group: str, zero_method: str, pairing: str
            ) -> list[dict]:
    """The tests of one experiment and reader group, before Holm's correction."""
    rows = []
    for criterion in CRITERIA:
        for sequence in SEQUENCES:
            stratum = experiment_scores[(experiment_scores["criterion"] == criterion)
                                        & (experiment_scores["sequence"] == sequence)]
            if stratum["score"].notna().sum() == 0:
                continue
            for comparison, (first, second) in COMPARISONS.items():
                x, y = paired_scores(stratum, first, second, pairing)
                result = signed_rank_test(x, y, zero_method=zero_method)
                rows.append(dict(experiment=int(stratum["experiment"].iloc[0]),
                                 reader_group=group, criterion=criterion, sequence=sequence,
                                 comparison=comparison, n_pairs=result.n_pairs,
                                 statistic=result.statistic, p_value=result.p_value,
                                 p_holm=np.nan, effect_size=result.effect_size))
    return rows
