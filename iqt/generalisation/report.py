"""The benchmark's report: IQT against cubic splines per brain and case, the goals, and the files.

`comparison` reduces the long table to one row per (brain, case): IQT's and
cubic's scores and the differences the goals are stated in. The goals hold on
the unseen brain (Colin27) in every case:

| goal | column |
| --- | --- |
| PSNR after the affine intensity fit at least 1.5 dB above cubic's | `gain_psnr_fit` ≥ 1.5 |
| SSIM above cubic's | `gain_ssim` > 0 |
| PSNR (contrast counts) above cubic's | `gain_psnr` > 0 |
| texture within 1.1 × cubic's | `texture_ratio` ≤ 1.1 |
| less slice-periodic error than cubic | `periodic_ratio` < 1 |
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from iqt.io_utils import atomic_write_text

GOALS = {"gain_psnr_fit": (">=", 1.5), "gain_ssim": (">", 0.0), "gain_psnr": (">", 0.0),
         "texture_ratio": ("<=", 1.1), "periodic_ratio": ("<", 1.0)}
GOAL_BRAIN = "colin27"
_COMPARE = {">=": np.greater_equal, ">": np.greater, "<=": np.less_equal, "<": np.less}


def comparison(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (brain, case): IQT's and cubic's scores, their differences and ratios, goals met."""
    iqt = table[table.method == "IQT"].set_index(["brain", "case"])
    cubic = table[table.method == "cubic"].set_index(["brain", "case"])
    out = pd.DataFrame(index=iqt.index)
    for score in ("psnr_fit", "ssim", "psnr", "texture", "periodic_rmse", "edge_sharpness"):
        out[f"iqt_{score}"], out[f"cubic_{score}"] = iqt[score], cubic[score]
    out["gain_psnr_fit"] = iqt.psnr_fit - cubic.psnr_fit
    out["gain_ssim"] = iqt.ssim - cubic.ssim
    out["gain_psnr"] = iqt.psnr - cubic.psnr
    out["texture_ratio"] = iqt.texture / cubic.texture
    out["periodic_ratio"] = iqt.periodic_rmse / cubic.periodic_rmse
    out["goals_met"] = np.logical_and.reduce([_COMPARE[op](out[c], limit) for c, (op, limit) in GOALS.items()])
    return out.reset_index()


def goals_met(compared: pd.DataFrame) -> bool:
    """Every goal in every case of the goal brain (False when it was not evaluated)."""
    rows = compared[compared.brain == GOAL_BRAIN]
    return bool(len(rows)) and bool(rows.goals_met.all())


def markdown(compared: pd.DataFrame) -> str:
    """The table a person reads: IQT / cubic per score, gains and ratios, goals met per row."""
    lines = ["| brain | case | PSNR fit IQT / cubic (gain) | SSIM IQT / cubic | PSNR IQT / cubic | "
             "texture IQT / cubic | periodic RMSE IQT / cubic | edge sharpness IQT / cubic | goals |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | :---: |"]
    for _, r in compared.iterrows():
        goals = ("met" if r.goals_met else "not met") if r.brain == GOAL_BRAIN else "–"
        lines.append(
            f"| {r.brain} | {r.case} | {r.iqt_psnr_fit:.2f} / {r.cubic_psnr_fit:.2f} ({r.gain_psnr_fit:+.2f}) | "
            f"{r.iqt_ssim:.4f} / {r.cubic_ssim:.4f} | {r.iqt_psnr:.2f} / {r.cubic_psnr:.2f} | "
            f"{r.iqt_texture:.2f} / {r.cubic_texture:.2f} ({r.texture_ratio:.2f}×) | "
            f"{r.iqt_periodic_rmse:.4f} / {r.cubic_periodic_rmse:.4f} ({r.periodic_ratio:.2f}×) | "
            f"{r.iqt_edge_sharpness:.2f} / {r.cubic_edge_sharpness:.2f} | {goals} |")
    return "\n".join(lines) + "\n"


def write_report(table: pd.DataFrame, out_dir: str | os.PathLike, about: dict) -> dict[str, Path]:
    """generalisation.csv (every method), generalisation.md and generalisation.json (the comparison,
    the goals and `about`: the run, the network's runtime, seconds) into `out_dir`, atomically."""
    out_dir = Path(out_dir)
    compared = comparison(table)
    paths = {"csv": out_dir / "generalisation.csv", "markdown": out_dir / "generalisation.md",
             "json": out_dir / "generalisation.json"}
    atomic_write_text(paths["csv"], table.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(paths["markdown"], markdown(compared))
    record = {**about, "goals": {k: f"{op} {v:g}" for k, (op, v) in GOALS.items()},
              "goal_brain": GOAL_BRAIN, "all_goals_met": goals_met(compared),
              "comparison": json.loads(compared.to_json(orient="records")),
              "scores": json.loads(table.to_json(orient="records"))}
    atomic_write_text(paths["json"], json.dumps(record, indent=1) + "\n")
    return paths
