"""Figure 5 of the reader study: mean scores of LF, IQT and HF per sequence.

Layout of the published figure: rows are (all readers, experiment 1), (all
readers, experiment 2), (HF-expert readers, experiment 2), (LF readers,
experiment 2) — here one experiment-2 row per reported reader group; columns
are GM–WM differentiation and lesion definition. Each panel holds one group
of three bars (LF, IQT, HF) per sequence; error bars are ± 1 SD of the scores
pooled over patients and readers.
"""
from __future__ import annotations

import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend choice)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.scores import (ALL_READERS, CRITERIA, CRITERION_NAMES, IMAGE_TYPES,  # noqa: E402
                             SCORE_RANGE, SEQUENCES)
from analysis.summary import stratum_means  # noqa: E402

GROUP_TITLES = {ALL_READERS: "All readers", "HF": "HF-expert readers", "LF": "LF readers"}
COLOURS = {"LF": "#9e9e9e", "IQT": "#e07b39", "HF": "#3b6ea8"}
SCORE_LABELS = {1: "1 not visible", 2: "2 subtle", 3: "3 clear", 4: "4 very clear"}


def figure5_rows(groups: Sequence[str] = (ALL_READERS, "HF", "LF")
                 ) -> list[tuple[int, str, str]]:
    """(experiment, reader group, row title) of each row: all readers in experiments
    1 and 2, then each other reader group in experiment 2 (the published layout
    for groups HF and LF)."""
    def title(group: str, experiment: int) -> str:
        return f"{GROUP_TITLES.get(group, f'{group} readers')}\nexperiment {experiment}"
    rows = [(1, ALL_READERS), (2, ALL_READERS)]
    rows += [(2, group) for group in groups if group != ALL_READERS]
    return [(experiment, group, title(group, experiment)) for experiment, group in rows]


def figure5(summary: pd.DataFrame, path: str | os.PathLike,
            groups: Sequence[str] = (ALL_READERS, "HF", "LF")) -> None:
    """Draws the Figure 5 grid from a `summary_table` and saves it as PNG at `path`."""
    rows = figure5_rows(groups)
    fig, axes = plt.subplots(len(rows), len(CRITERIA), figsize=(10, 2.9 * len(rows) + 0.8),
                             sharey=True, squeeze=False)
    for row, (experiment, group, title) in enumerate(rows):
        for column, criterion in enumerate(CRITERIA):
            ax = axes[row, column]
            _panel(ax, stratum_means(summary, experiment, group, criterion))
            if row == 0:
                ax.set_title(CRITERION_NAMES[criterion], fontsize=13, fontweight="bold")
        axes[row, 0].set_ylabel(f"{title}\n\nmean score", fontsize=11)
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLOURS[t]) for t in IMAGE_TYPES]
    fig.legend(handles, IMAGE_TYPES, loc="upper center", ncol=3, frameon=False, fontsize=12,
               bbox_to_anchor=(0.5, 1.0))
    fig.text(0.5, 0.005, "bars: mean score over patients and readers; error bars: ± 1 SD",
             ha="center", va="bottom", fontsize=9, color="0.35")
    fig.tight_layout(rect=(0, 0.015, 1, 0.965))
    fig.savefig(path, dpi=130, format="png")
    plt.close(fig)


def _panel(ax: plt.Axes, means: pd.DataFrame) -> None:
    """One panel: bars of LF, IQT, HF for each sequence, or a note if empty."""
    positions = np.arange(len(SEQUENCES))
    width = 0.26
    for k, image_type in enumerate(IMAGE_TYPES):
        mean = means[("mean", image_type)].to_numpy(dtype=float)
        sd = np.nan_to_num(means[("sd", image_type)].to_numpy(dtype=float))
        ax.bar(positions + (k - 1) * width, np.nan_to_num(mean), width, yerr=sd,
               color=COLOURS[image_type], edgecolor="white", capsize=3,
               error_kw=dict(elinewidth=1, ecolor="0.2"))
    if means[["mean"]].isna().all().all():
        ax.text(0.5, 0.5, "no scores", transform=ax.transAxes, ha="center", va="center",
                color="0.5", fontsize=11)
    lo, hi = SCORE_RANGE
    ax.set_ylim(0, hi + 0.6)
    ax.set_yticks(range(lo, hi + 1))
    ax.set_yticklabels([SCORE_LABELS[s] for s in range(lo, hi + 1)], fontsize=9)
    ax.set_xticks(positions)
    ax.set_xticklabels(SEQUENCES, fontsize=11)
    ax.grid(axis="y", color="0.9", zorder=0)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
