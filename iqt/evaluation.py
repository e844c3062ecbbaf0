"""Evaluation on simulated low-field data: IQT against interpolation along the slices.

For every held-out HF volume and every named test setting of the simulator
(fixed parameters, a fixed noise seed per subject and setting), the LF volume
is simulated, enhanced by IQT, and upsampled along the slice axis by nearest,
linear and cubic-spline interpolation at the positions of the slice
convention (LF slice j sits at HF index r·j + (r − 1)/2). Each estimate is
compared with the HF truth by RMSE, PSNR and SSIM inside the brain mask
(`iqt.metrics`, docs/method.md §6). Intensities are the normalised ones of
training (HF divided by its 99th percentile in the brain).
"""
from __future__ import annotations

import dataclasses
import os
import zlib
from pathlib import Path
from typing import Callable, Iterable, Sequence

import jax
import ml_collections
import numpy as np
import pandas as pd
from scipy import ndimage

import simulators
from simulators import distributions
from iqt import metrics
from iqt.errors import UserError
from iqt.io_utils import atomic_path, atomic_write_text
from iqt.tiling import DEFAULT_TILE_LF, check_tile_size

INTERPOLATION_ORDERS = {"nearest": 0, "linear": 1, "cubic": 3}
METHODS = ("IQT", *INTERPOLATION_ORDERS)
METRICS = ("psnr", "ssim", "rmse")
METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "rmse": "RMSE"}
EVALUATION_SEED_OFFSET = 7919  # the evaluation's noise never reuses a training key


# --- test settings of the simulator ---------------------------------------------------------

def _snr_times(factor: float):
    def variant(sim: ml_collections.ConfigDict) -> None:
        sim.snr = distributions.fixed_pair(tuple(factor * distributions.pair_mean(sim.snr)))
    return variant


def _thickness_per_spacing(fraction: float):
    def variant(sim: ml_collections.ConfigDict) -> None:
        sim.parameters.slice_thickness_mm = distributions.fixed(fraction * sim.factor * sim.hf_voxel_mm)
    return variant


@dataclasses.dataclass(frozen=True)
class Setting:
    """A named test condition: changes to the run's `sim` config; parameters at their means."""

    name: str
    description: str
    variant: Callable[[ml_collections.ConfigDict], None]


SETTINGS = {s.name: s for s in (
    Setting("mean", "every simulator parameter at its configured mean", lambda sim: None),
    Setting("snr_low", "mean parameters, SNR of WM and GM halved", _snr_times(0.5)),
    Setting("snr_high", "mean parameters, SNR of WM and GM doubled", _snr_times(2.0)),
    Setting("thin_slices", "slice thickness half the slice spacing (gap = thickness)",
            _thickness_per_spacing(0.5)),
    Setting("thick_slices", "slice thickness = slice spacing (no gap)", _thickness_per_spacing(1.0)),
)}
DEFAULT_SETTINGS = ("mean", "snr_low", "snr_high", "thick_slices")


def check_settings(names: Iterable[str]) -> tuple[str, ...]:
    names = tuple(names)
    unknown = [n for n in names if n not in SETTINGS]
    if unknown or not names:
        raise UserError(f"unknown test setting(s) {', '.join(unknown) or '(none given)'}; "
                        f"choose from {', '.join(SETTINGS)}")
    return names


def setting_config(name: str, sim_config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of `sim_config` changed by the named setting, with every draw at its mean."""
    sim = ml_collections.ConfigDict(sim_config.to_dict())
    SETTINGS[name].variant(sim)
    sim.deterministic = True
    return sim


def setting_parameters(sim_config: ml_collections.ConfigDict) -> dict[str, float]:
    """The mean parameters of a (setting's) simulator config, as scalars."""
    return {k: float(np.asarray(v)[0]) for k, v in simulators.mean_parameters(sim_config, 1).items()}


def setting_key(seed: int, setting: str, subject_id: str) -> jax.Array:
    """A fixed key per (seed, setting, subject), independent of which others are evaluated."""
    key = jax.random.key(seed + EVALUATION_SEED_OFFSET)
    for word in (setting, subject_id):
        key = jax.random.fold_in(key, zlib.crc32(word.encode()) & 0x7FFFFFFF)
    return key


# --- the interpolation baselines ------------------------------------------------------------

def slice_interpolation_matrix(n_lf: int, factor: int, order: int) -> np.ndarray:
    """(n_lf, n_lf · factor) matrix M such that hf = lf @ M interpolates along the slices.

    HF slice i is read at LF coordinate (i − (r − 1)/2) / r (scipy spline of
    `order`, constant continuation beyond the outer slice centres).
    """
    positions = (np.arange(n_lf * factor) - (factor - 1) / 2.0) / factor
    identity = np.eye(n_lf)
    return np.stack([ndimage.map_coordinates(identity[j], positions[None], order=order, mode="nearest")
                     for j in range(n_lf)])


def interpolate_slices(lf: np.ndarray, factor: int, order: int) -> np.ndarray:
    """(..., n_lf) → (..., n_lf · factor) float32, interpolated along the last axis."""
    matrix = slice_interpolation_matrix(lf.shape[-1], factor, order)
    return np.tensordot(np.asarray(lf, np.float64), matrix, axes=([-1], [0])).astype(np.float32)


# --- evaluation -----------------------------------------------------------------------------

Enhance = Callable[[np.ndarray], np.ndarray]
"""A normalised LF volume (x, y, z_lf) → its IQT estimate (x, y, z_lf · r)."""


def estimates(lf: np.ndarray, factor: int, enhance: Enhance) -> dict[str, np.ndarray]:
    """Every method's HF estimate of `lf`, by method name."""
    out = {"IQT": np.asarray(enhance(lf), np.float32)}
    out.update({name: interpolate_slices(lf, factor, order) for name, order in INTERPOLATION_ORDERS.items()})
    return out


def evaluate_subject(subject, enhance: Enhance, sim_config: ml_collections.ConfigDict,
                     settings: Sequence[str], seed: int) -> list[dict]:
    """One row per (setting, method): the subject's RMSE, PSNR and SSIM in the brain mask."""
    factor = int(sim_config.factor)
    rows = []
    for name in settings:
        sim = setting_config(name, sim_config)
        lf = np.asarray(simulators.simulate_volume(
            setting_key(seed, name, subject.subject_id), subject.image, subject.tissue,
            setting_parameters(sim), sim, tissue_means=getattr(subject, "tissue_means", None)), np.float32)
        truth = np.asarray(subject.image[..., :lf.shape[-1] * factor], np.float32)
        for method, estimate in estimates(lf, factor, enhance).items():
            rows.append({"subject": subject.subject_id, "setting": name, "method": method,
                         **metrics.all_metrics(truth, estimate)})
    return rows


def evaluate(subjects: Iterable, enhance: Enhance, sim_config: ml_collections.ConfigDict,
             settings: Sequence[str] = DEFAULT_SETTINGS, seed: int = 0) -> pd.DataFrame:
    """The long table: one row per subject × setting × method, columns METRICS."""
    rows = [row for subject in subjects
            for row in evaluate_subject(subject, enhance, sim_config, check_settings(settings), seed)]
    if not rows:
        raise UserError("no held-out subject to evaluate: the split is empty")
    return pd.DataFrame(rows, columns=["subject", "setting", "method", *METRICS])


# --- reporting ------------------------------------------------------------------------------

def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample SD (ddof 1; 0 for one subject) per setting × method, in table order."""
    grouped = table.groupby(["setting", "method"], sort=False)[list(METRICS)]
    return grouped.agg(["mean", "std", "count"]).fillna(0.0)


def markdown_table(table: pd.DataFrame) -> str:
    """Mean ± SD over subjects, one row per setting and method."""
    stats = summary(table)
    digits = {"psnr": 2, "ssim": 4, "rmse": 4}
    lines = ["| setting | method | n | " + " | ".join(METRIC_LABELS[m] for m in METRICS) + " |",
             "| --- | --- | ---: |" + " ---: |" * len(METRICS)]
    for (setting, method), row in stats.iterrows():
        cells = [f"{row[(m, 'mean')]:.{digits[m]}f} ± {row[(m, 'std')]:.{digits[m]}f}" for m in METRICS]
        count = int(row[(METRICS[0], "count")])
        lines.append(f"| {setting} | {method} | {count} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def save_figure(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Mean ± SD of each metric per setting (x axis), one marker colour per method."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = summary(table)
    settings = list(dict.fromkeys(table["setting"]))
    methods = list(dict.fromkeys(table["method"]))
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 3.6))
    offsets = np.linspace(-0.25, 0.25, len(methods))
    for ax, metric in zip(axes, METRICS):
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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_report(table: pd.DataFrame, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Writes evaluation.csv, evaluation.md and evaluation.png (atomically) into `out_dir`."""
    out_dir = Path(out_dir)
    paths = {"csv": out_dir / "evaluation.csv", "markdown": out_dir / "evaluation.md",
             "figure": out_dir / "evaluation.png"}
    atomic_write_text(paths["csv"], table.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(paths["markdown"], markdown_table(table))
    save_figure(table, paths["figure"])
    return paths


# --- a training run -------------------------------------------------------------------------

def evaluate_run(workdir: str | os.PathLike, *, split: str = "test",
                 settings: Sequence[str] = DEFAULT_SETTINGS, out_dir: str | os.PathLike | None = None,
                 checkpoint: str = "best", batch_size: int = 1, tile_lf=DEFAULT_TILE_LF,
                 progress: bool = True) -> tuple[pd.DataFrame, dict[str, Path]]:
    """`launch.evaluate`: the run's network on its held-out split; returns (table, written files).

    `split` is 'test', 'validation' or 'train' (the config's names for them) or a
    split name of the dataset; the report goes to `out_dir` (default WORKDIR/evaluation).
    """
    from iqt.data import pipeline
    from iqt.inference import load_predictor

    settings, tile_lf = check_settings(settings), check_tile_size(tile_lf)
    predictor, config = load_predictor(workdir, checkpoint)
    names = {"test": config.data.test_split, "validation": config.data.validation_split,
             "train": config.data.train_split}
    subjects = pipeline.load_split_subjects(config.data, names.get(split, split))

    def enhance(lf: np.ndarray) -> np.ndarray:
        return predictor.enhance(lf, batch_size=batch_size, tile_lf=tile_lf, progress=progress)

    table = evaluate(subjects, enhance, config.sim, settings, seed=int(config.seed))
    return table, write_report(table, Path(workdir) / "evaluation" if out_dir is None else out_dir)
