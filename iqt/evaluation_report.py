"""The evaluation's report: the metrics' names and print order, mean ± SD tables, the figure.

The long table of `iqt.evaluation` (one row per subject × setting × method) is
summarised per setting and method over the test volumes and written as
evaluation.csv, evaluation.md and evaluation.png.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from iqt.io_utils import atomic_write_text

METRIC_SETS = {"ours": ("psnr", "ssim", "rmse"), "reference": ("psnr_ref", "ssim_ref", "rmse_ref")}
METRIC_SETS["both"] = METRIC_SETS["ours"] + METRIC_SETS["reference"]
ARTEFACTS = ("slice_periodic", "periodic_rmse", "seam")
METRICS = ("psnr", "psnr_ref", "ssim", "ssim_ref", "rmse", "rmse_ref", *ARTEFACTS)  # in print order
METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "rmse": "RMSE", "psnr_ref": "PSNR ref (dB)",
                 "ssim_ref": "SSIM ref", "rmse_ref": "RMSE ref", "slice_periodic": "slice-periodic",
                 "periodic_rmse": "periodic RMSE", "seam": "seam"}
DIGITS = {"psnr": 2, "psnr_ref": 2, "seam": 3}   # decimals shown; 4 for the others


def metric_columns(table: pd.DataFrame) -> list[str]:
    """The metric columns a table holds, in print order."""
    return [m for m in METRICS if m in table.columns]


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample SD (ddof 1; NaN for one subject) and n (subjects) per setting × method, in table order."""
    grouped = table.groupby(["setting", "method"], sort=False)
    stats = grouped[metric_columns(table)].agg(["mean", "std"])
    stats[("n", "")] = grouped.size()
    return stats


def cell(mean: float, sd: float, digits: int) -> str:
    """'mean ± sd'; the mean alone where there is no SD (one subject, one seed); 'n/a' for no value."""
    if np.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f}" if np.isnan(sd) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def markdown_table(table: pd.DataFrame) -> str:
    """Mean ± SD over the n test volumes, one row per setting and method."""
    stats, columns = summary(table), metric_columns(table)
    lines = ["| setting | method | n | " + " | ".join(METRIC_LABELS[m] for m in columns) + " |",
             "| --- | --- | ---: |" + " ---: |" * len(columns)]
    for (setting, method), row in stats.iterrows():
        cells = [cell(row[(m, "mean")], row[(m, "std")], DIGITS.get(m, 4)) for m in columns]
        lines.append(f"| {setting} | {method} | {int(row[('n', '')])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def save_figure(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Mean ± SD of each metric per setting (x axis), one marker colour per method."""
    from iqt import figures
    plt = figures.plt

    stats, columns = summary(table), metric_columns(table)
    stats[[(m, "std") for m in columns]] = stats[[(m, "std") for m in columns]].fillna(0.0)  # bars
    settings = list(dict.fromkeys(table["setting"]))
    methods = list(dict.fromkeys(table["method"]))
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.6), squeeze=False)
    axes = axes[0]
    offsets = np.linspace(-0.25, 0.25, len(methods))
    for ax, metric in zip(axes, columns):
        for offset, method in zip(offsets, methods):
            rows = [stats.loc[(s, method)] for s in settings]
            ax.errorbar(np.arange(len(settings)) + offset, [r[(metric, "mean")] for r in rows],
                        yerr=[r[(metric, "std")] for r in rows], fmt="o", capsize=3, label=method)
        ax.set_xticks(np.arange(len(settings)), settings, rotation=20)
        ax.set_ylabel(METRIC_LABELS[metric])
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.suptitle("simulated low-field test data: mean ± SD over subjects")
    fig.tight_layout()
    figures.save_png(fig, path)


def write_report(table: pd.DataFrame, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Writes evaluation.csv, evaluation.md and evaluation.png (atomically) into `out_dir`."""
    out_dir = Path(out_dir)
    paths = {"csv": out_dir / "evaluation.csv", "markdown": out_dir / "evaluation.md",
             "figure": out_dir / "evaluation.png"}
    atomic_write_text(paths["csv"], table.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(paths["markdown"], markdown_table(table))
    save_figure(table, paths["figure"])
    return paths
