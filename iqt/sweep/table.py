"""The sweep's table: IQT's metrics per setting, mean ± SD over seeds, and Wilcoxon tests between settings.

Every job's `evaluation/evaluation.csv` holds one row per test volume × test
setting × method. For each sweep setting and metric, a seed's value is IQT's
mean over the test volumes and test settings; the table gives the mean ± SD
(ddof 1) of those over seeds, per test setting and over all of them ('all').
Settings are compared per metric by a Wilcoxon signed-rank test
(`scipy.stats.wilcoxon`, two-sided) over the (test volume × test setting) pairs,
each the mean over seeds; with few pairs the smallest possible p is large
(2 / 2^n: 0.125 for n = 4), so a second test pairs the seeds too
(test volume × test setting × seed; seed k of one setting shares its
initialisation and data order with seed k of the other).
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from iqt import evaluation_report as report
from iqt.io_utils import atomic_write_text
from iqt.sweep.runner import EVALUATION_DIR, Job

METHOD = "IQT"
KEYS = ("setting", "seed", "subject", "test_setting")


def collect(jobs: Sequence[Job]) -> pd.DataFrame:
    """IQT's rows of every job's evaluation.csv, with the job's setting and seed:
    columns setting, seed, subject, test_setting and the metrics."""
    frames = []
    for job in jobs:
        table = pd.read_csv(job.workdir / EVALUATION_DIR / "evaluation.csv")
        table = table[table["method"] == METHOD].drop(columns="method").rename(columns={"setting": "test_setting"})
        frames.append(table.assign(setting=job.setting.name, seed=job.seed))
    long = pd.concat(frames, ignore_index=True)
    metrics = [m for m in report.metric_columns(long) if long[m].notna().any()]   # seam: NaN for one tile
    return long[[*KEYS, *metrics]]


def per_seed(long: pd.DataFrame) -> pd.DataFrame:
    """Each seed's mean over test volumes, per test setting and over all ('all')."""
    metrics = report.metric_columns(long)
    by_test = long.groupby(["setting", "seed", "test_setting"], sort=False)[metrics].mean().reset_index()
    pooled = long.groupby(["setting", "seed"], sort=False)[metrics].mean().reset_index().assign(test_setting="all")
    return pd.concat([by_test, pooled], ignore_index=True)


def summary(long: pd.DataFrame) -> pd.DataFrame:
    """One row per setting × test setting (and 'all'): n_seeds, and mean and SD over seeds per metric."""
    metrics = report.metric_columns(long)
    seeds = per_seed(long)
    grouped = seeds.groupby(["setting", "test_setting"], sort=False)[metrics]
    out = grouped.agg(["mean", "std"])
    out.columns = [f"{m}_{stat}" for m, stat in out.columns]
    out.insert(0, "n_seeds", seeds.groupby(["setting", "test_setting"], sort=False).size())
    out = out.reset_index()
    order = {name: i for i, name in enumerate(dict.fromkeys(long["setting"]))}
    return out.sort_values("setting", key=lambda s: s.map(order), kind="stable", ignore_index=True)


def wilcoxon_tests(long: pd.DataFrame) -> pd.DataFrame:
    """Per metric and pair of settings: median difference (a − b), and two-sided Wilcoxon p over the
    (volume × test setting) pairs (seed means) and over (volume × test setting × seed)."""
    metrics = report.metric_columns(long)
    settings = list(dict.fromkeys(long["setting"]))
    pairs_mean = long.groupby(["setting", "subject", "test_setting"])[metrics].mean()
    pairs_seed = long.set_index(["setting", "subject", "test_setting", "seed"])[metrics].sort_index()
    rows = []
    for a, b, metric in ((a, b, m) for a, b in itertools.combinations(settings, 2) for m in metrics):
        row = {"setting_a": a, "setting_b": b, "metric": metric}
        for name, table in (("pairs", pairs_mean), ("pairs_x_seeds", pairs_seed)):
            joined = pd.concat([table.loc[a, metric], table.loc[b, metric]], axis=1, join="inner").dropna()
            diff = joined.iloc[:, 0].to_numpy() - joined.iloc[:, 1].to_numpy()
            row[f"n_{name}"] = len(diff)
            row[f"p_{name}"] = stats.wilcoxon(diff).pvalue if np.any(diff != 0) else 1.0
            if name == "pairs":
                row["median_difference"] = float(np.median(diff)) if len(diff) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(summary_table: pd.DataFrame, tests: pd.DataFrame) -> str:
    """The summary as mean ± SD over seeds, and the tests, as markdown tables."""
    metrics = [m for m in report.METRICS if f"{m}_mean" in summary_table.columns]
    lines = ["| setting | test setting | seeds | " + " | ".join(report.METRIC_LABELS[m] for m in metrics) + " |",
             "| --- | --- | ---: |" + " ---: |" * len(metrics)]
    for _, row in summary_table.iterrows():
        cells = [report.cell(row[f"{m}_mean"], row[f"{m}_std"], report.DIGITS.get(m, 4)) for m in metrics]
        lines.append(f"| {row['setting']} | {row['test_setting']} | {row['n_seeds']} | " + " | ".join(cells) + " |")
    lines += ["", "| a | b | metric | median a − b | n pairs | p | n pairs × seeds | p |",
              "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for _, t in tests.iterrows():
        lines.append(f"| {t['setting_a']} | {t['setting_b']} | {t['metric']} | {t['median_difference']:.4g} | "
                     f"{t['n_pairs']} | {t['p_pairs']:.3g} | {t['n_pairs_x_seeds']} | {t['p_pairs_x_seeds']:.3g} |")
    return "\n".join(lines) + "\n"


def write_table(jobs: Sequence[Job], out_dir: str | os.PathLike) -> dict[str, Path]:
    """sweep_table.csv (summary), sweep_tests.csv, sweep_table.md and sweep_table.png, atomically."""
    from iqt.sweep import figures

    out_dir = Path(out_dir)
    long = collect(jobs)
    table, tests = summary(long), wilcoxon_tests(long)
    paths = {"csv": out_dir / "sweep_table.csv", "tests": out_dir / "sweep_tests.csv",
             "markdown": out_dir / "sweep_table.md", "figure": out_dir / "sweep_table.png"}
    atomic_write_text(paths["csv"], table.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(paths["tests"], tests.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(paths["markdown"], markdown(table, tests))
    figures.save_sweep_figure(per_seed(long), paths["figure"])
    return paths
