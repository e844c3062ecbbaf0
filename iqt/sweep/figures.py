"""The sweep's figures: IQT's metrics per setting (one dot per seed), and robustness curves."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from iqt import figures
from iqt.evaluation_report import METRIC_LABELS

SWEEP_METRICS = ("psnr", "ssim", "periodic_rmse")


def save_sweep_figure(seeds: pd.DataFrame, path: str | os.PathLike) -> None:
    """Per metric: each setting's seeds (dots) and their mean ± SD (bar), pooled over test settings ('all')."""
    plt = figures.plt
    pooled = seeds[seeds["test_setting"] == "all"]
    metrics = [m for m in SWEEP_METRICS if m in pooled.columns]
    settings = list(dict.fromkeys(pooled["setting"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for i, setting in enumerate(settings):
            v = pooled.loc[pooled["setting"] == setting, metric].to_numpy()
            ax.plot(np.full(len(v), i), v, "o", alpha=0.5, color=f"C{i}")
            ax.errorbar(i + 0.15, v.mean(), yerr=v.std(ddof=1) if len(v) > 1 else 0, fmt="s", capsize=4,
                        color=f"C{i}")
        ax.set_xticks(range(len(settings)), settings, rotation=15)
        ax.set_xlim(-0.5, len(settings) - 0.5)
        ax.set_ylabel(METRIC_LABELS[metric])
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle("IQT on the test volumes, all test settings: seeds (dots), mean ± SD (squares)")
    fig.tight_layout()
    figures.save_png(fig, path)


def save_robustness_figure(curves: pd.DataFrame, x_label: str, path: str | os.PathLike) -> None:
    """PSNR and SSIM against the axis value: a line and a ±SD band per model, cubic splines dashed."""
    plt = figures.plt
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, metric, label in zip(axes, ("psnr", "ssim"), ("PSNR (dB)", "SSIM")):
        for i, (group, c) in enumerate(curves.groupby("group", sort=False)):
            x, m, s = c["value"].to_numpy(), c[f"{metric}_mean"].to_numpy(), c[f"{metric}_std"].fillna(0).to_numpy()
            style = dict(color="0.4", linestyle="--") if group == "cubic" else dict(color=f"C{i}")
            ax.plot(x, m, marker="o", label=f"{group} (n={int(c['n_runs'].max())})", **style)
            ax.fill_between(x, m - s, m + s, alpha=0.2, color=style["color"])
        ax.set_xlabel(x_label)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.suptitle("robustness at test time: mean ± SD over seeds")
    fig.tight_layout()
    figures.save_png(fig, path)
