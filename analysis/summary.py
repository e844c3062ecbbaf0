"""Descriptive statistics of the reader scores: means, SD, median, % vs LF.

Every stratum is one experiment × reader group × criterion × sequence × image
type; the statistics pool all patients and readers of the stratum, missing
scores excluded. `pct_vs_LF` = (mean − mean of LF) / mean of LF × 100 in the
same experiment, reader group, criterion and sequence.
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from analysis.scores import IMAGE_TYPES, SEQUENCES, in_reading_order, select_group

SUMMARY_COLUMNS = ["experiment", "reader_group", "criterion", "sequence", "image_type",
                   "n", "mean", "sd", "median", "pct_vs_LF"]
STRATUM = ["experiment", "reader_group", "criterion", "sequence"]


def summary_table(scores: pd.DataFrame, groups: Sequence[str]) -> pd.DataFrame:
    """Descriptive statistics per stratum (columns SUMMARY_COLUMNS).

    `groups` lists the reader groups to report; `ALL_READERS` pools everyone.
    Strata without any score are left out; `sd` is the sample SD (n − 1).
    """
    parts = []
    for group in groups:
        scored = select_group(scores, group).dropna(subset=["score"])
        stats = (scored.groupby(["experiment", "criterion", "sequence", "image_type"])["score"]
                 .agg(n="size", mean="mean", sd="std", median="median").reset_index())
        parts.append(stats.assign(reader_group=group))
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if table.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    table["pct_vs_LF"] = percent_difference(table, reference="LF")
    return in_reading_order(table, groups)[SUMMARY_COLUMNS]


def percent_difference(table: pd.DataFrame, reference: str) -> pd.Series:
    """(mean − mean of `reference` image type) / mean of reference × 100 per stratum."""
    reference_means = (table[table["image_type"] == reference]
                       .set_index(STRATUM)["mean"].rename("reference_mean"))
    joined = table.join(reference_means, on=STRATUM)
    return (joined["mean"] - joined["reference_mean"]) / joined["reference_mean"] * 100


def stratum_means(summary: pd.DataFrame, experiment: int, group: str, criterion: str
                  ) -> pd.DataFrame:
    """Means and SDs of one panel as (sequence, image_type) tables, rows SEQUENCES."""
    panel = summary[(summary["experiment"] == experiment) & (summary["reader_group"] == group)
                    & (summary["criterion"] == criterion)]
    wide = panel.pivot(index="sequence", columns="image_type", values=["mean", "sd"])
    return wide.reindex(index=list(SEQUENCES)).reindex(
        columns=pd.MultiIndex.from_product([["mean", "sd"], IMAGE_TYPES]))
