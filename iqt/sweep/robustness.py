"""Robustness without retraining: trained runs evaluated over a range of one test-time simulator value.

Axes (each value a deterministic test setting of `iqt.evaluation`, every other
parameter at its mean):

- `snr`: both tissues' SNR times 0.25-4 (the noise; the WM/GM contrast stays);
- `thickness`: slice thickness 3-7 mm at the run's fixed slice spacing
  (`slice_thickness_fraction` = thickness / spacing);
- `contrast`: the WM-GM contrast (SNR_WM / SNR_GM − 1) shifted by −30 % to +30 %,
  the SNR of the tissue the contrast model holds kept (noise level unchanged);
- `inplane_blur`: an in-plane Gaussian blur of FWHM 0-2 mm.

A value whose simulator equals one of the evaluation's named settings takes its
name, and so its noise key: the same condition gives the same numbers as
`launch.evaluate`. Runs in folders `<setting>/seed<k>` (a sweep's) are the seeds
of `<setting>`; the curves are IQT's mean ± SD over seeds of the mean over test
volumes, beside cubic-spline interpolation of the same simulated inputs.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Sequence

import ml_collections
import numpy as np
import pandas as pd

from simulators import distributions
from iqt import evaluation
from iqt.errors import UserError
from iqt.io_utils import atomic_write_text

AXES = {   # axis: (default values, label of the x axis)
    "snr": ((0.25, 0.5, 1.0, 2.0, 4.0), "SNR / mean SNR"),
    "thickness": ((3.0, 4.0, 5.0, 6.0, 7.0), "slice thickness (mm)"),
    "contrast": ((-0.3, -0.15, 0.0, 0.15, 0.3), "WM-GM contrast shift (fraction)"),
    "inplane_blur": ((0.0, 0.5, 1.0, 1.5, 2.0), "in-plane blur FWHM (mm)"),
}
VALID_RANGES = {   # axis: the lowest and highest value it takes (both included)
    "snr": (0.01, 100.0),        # a factor on the run's mean (SNR_WM, SNR_GM)
    "thickness": (0.5, 20.0),    # slice thickness, mm
    "contrast": (-0.9, 0.9),     # fraction of the WM-GM contrast added (−1 would remove it)
    "inplane_blur": (0.0, 10.0),  # in-plane Gaussian FWHM, mm
}
METHODS = ("IQT", "cubic")


def check_values(axis: str, values: Sequence[float]) -> None:
    """Every value of `axis` is finite and within `VALID_RANGES[axis]`; a `UserError` otherwise."""
    low, high = VALID_RANGES[axis]
    bad = [v for v in values if not (np.isfinite(v) and low <= v <= high)]
    if bad:
        raise UserError(f"--values {', '.join(f'{v:g}' for v in bad)} outside the range of --axis {axis}: "
                        f"{low:g} to {high:g} ({AXES[axis][1]})")


def _variant(axis: str, value: float, sim: ml_collections.ConfigDict) -> Callable[[ml_collections.ConfigDict], None]:
    snr = distributions.pair_mean(sim.snr)   # (SNR_WM, SNR_GM) at the run's mean
    if axis == "snr":
        pair = tuple(value * snr)
    elif axis == "contrast":
        if sim.contrast not in ("snr_gm_fixed", "snr_wm_fixed"):
            raise UserError(f"--axis contrast needs sim.contrast snr_gm_fixed or snr_wm_fixed, not {sim.contrast}")
        shifted = (1 + value) * (snr[0] / snr[1] - 1)          # new SNR_WM / SNR_GM − 1
        pair = ((snr[1] * (1 + shifted), snr[1]) if sim.contrast == "snr_gm_fixed"
                else (snr[0], snr[0] / (1 + shifted)))

    def variant(s: ml_collections.ConfigDict) -> None:
        if axis in ("snr", "contrast"):
            s.snr = distributions.fixed_pair(tuple(float(v) for v in pair))
        elif axis == "thickness":
            s.parameters.slice_thickness_fraction = distributions.fixed(value / (s.factor * s.hf_voxel_mm))
        else:
            s.parameters.inplane_fwhm_mm = distributions.fixed(value)
    return variant


def _same_condition(a: ml_collections.ConfigDict, b: ml_collections.ConfigDict) -> bool:
    """Whether two deterministic simulator configs simulate the same: equal mean parameters, equal rest."""
    pa, pb = evaluation.setting_parameters(a), evaluation.setting_parameters(b)
    if pa.keys() != pb.keys() or not all(np.isclose(pa[k], pb[k], rtol=1e-9, atol=1e-12) for k in pa):
        return False
    rest = [{k: v for k, v in c.to_dict().items() if k not in ("snr", "parameters")} for c in (a, b)]
    return rest[0] == rest[1]


def axis_settings(axis: str, values: Sequence[float], sim: ml_collections.ConfigDict) -> list[evaluation.Setting]:
    """One test setting per value; named like the evaluation's setting it equals, else `axis=value`."""
    if axis not in AXES:
        raise UserError(f"--axis must be one of {', '.join(AXES)}, got {axis!r}")
    out = []
    for value in values:
        variant = _variant(axis, float(value), sim)
        setting = evaluation.Setting(f"{axis}={value:g}", f"{axis} at {value:g}", variant)
        condition = evaluation.setting_config(setting, sim)
        named = [n for n in evaluation.SETTINGS if _same_condition(condition, evaluation.setting_config(n, sim))]
        out.append(evaluation.Setting(named[0], setting.description, variant) if named else setting)
    return out


def run_group(workdir: Path) -> tuple[str, str]:
    """(setting, seed label) of a run: `<setting>/seed<k>` folders are seeds of <setting>."""
    workdir = Path(workdir).resolve()
    if re.fullmatch(r"seed\d+", workdir.name):
        return workdir.parent.name, workdir.name
    return workdir.name, ""


def evaluate_runs(workdirs: Sequence[str | os.PathLike], axis: str, values: Sequence[float] | None = None, *,
                  checkpoint: str = "best", log: Callable[[str], None] = print) -> pd.DataFrame:
    """IQT and cubic splines of every run at every value: one row per run × subject × value × method."""
    from iqt.data import splits
    from iqt.inference import enhance_lf, load_predictor

    values = AXES[axis][0] if values is None and axis in AXES else values
    check_values(axis, values)
    frames = []
    for i, workdir in enumerate(workdirs):
        predictor, config = load_predictor(workdir, checkpoint)
        settings = axis_settings(axis, values, config.sim)
        log(f"robustness: run {i + 1}/{len(workdirs)} {workdir}: {axis} at {', '.join(f'{v:g}' for v in values)}")
        subjects = splits.load_split_subjects(config.data, config.data.test_split)
        table = evaluation.evaluate(subjects, lambda lf: enhance_lf(lf, predictor, progress=False), config.sim,
                                    settings, seed=int(config.seed))
        value_of = {s.name: float(v) for s, v in zip(settings, values)}
        group, seed = run_group(workdir)
        frames.append(table[table["method"].isin(METHODS)].assign(
            run=str(workdir), group=group, seed=seed, value=table["setting"].map(value_of)))
    return pd.concat(frames, ignore_index=True)


def curves(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and SD over runs (seeds) of each run's mean over subjects: per group × method × value.
    Cubic splines do not depend on the model: one curve over every run (group 'cubic')."""
    per_run = table.groupby(["group", "run", "method", "value"], sort=False)[["psnr", "ssim"]].mean().reset_index()
    per_run.loc[per_run["method"] == "cubic", "group"] = "cubic"
    out = per_run.groupby(["group", "method", "value"], sort=False)[["psnr", "ssim"]].agg(["mean", "std", "count"])
    out.columns = [f"{m}_{s}" for m, s in out.columns]
    return out.reset_index().rename(columns={"psnr_count": "n_runs"}).drop(columns="ssim_count")


def markdown(curve_table: pd.DataFrame, axis: str) -> str:
    lines = [f"| model | {AXES[axis][1]} | runs | PSNR (dB) | SSIM |", "| --- | ---: | ---: | ---: | ---: |"]
    for _, r in curve_table.iterrows():
        sd = lambda v, d: "" if np.isnan(v) else f" ± {v:.{d}f}"   # noqa: E731
        lines.append(f"| {r['group']} | {r['value']:g} | {r['n_runs']} | {r['psnr_mean']:.2f}{sd(r['psnr_std'], 2)} "
                     f"| {r['ssim_mean']:.4f}{sd(r['ssim_std'], 4)} |")
    return "\n".join(lines) + "\n"


def write_report(table: pd.DataFrame, axis: str, out_dir: str | os.PathLike) -> dict[str, Path]:
    """robustness_<axis>.csv (every row), _curves.csv, .md and .png into `out_dir`, atomically."""
    from iqt.sweep import figures

    out_dir, stem = Path(out_dir), f"robustness_{axis}"
    curve_table = curves(table)
    paths = {"csv": out_dir / f"{stem}.csv", "curves": out_dir / f"{stem}_curves.csv",
             "markdown": out_dir / f"{stem}.md", "figure": out_dir / f"{stem}.png"}
    atomic_write_text(paths["csv"], table.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(paths["curves"], curve_table.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(paths["markdown"], markdown(curve_table, axis))
    figures.save_robustness_figure(curve_table, AXES[axis][1], paths["figure"])
    return paths
