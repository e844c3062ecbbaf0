"""Evaluation on simulated low-field data: IQT against interpolation along the slices.

For every held-out HF volume and every named test setting of the simulator
(fixed parameters, a fixed noise seed per subject and setting), the LF volume
is simulated, enhanced by IQT, and upsampled along the slice axis by nearest,
linear and cubic-spline interpolation at the positions of the slice
convention (LF slice j sits at HF index r·j + (r − 1)/2). Each estimate is
compared with the HF truth by RMSE, PSNR and SSIM inside the brain mask
(`iqt.metrics`: 'ours', in the brain the simulator keeps; or 'reference', the
published definitions; or both), and by three artefact scores inside the brain:
the share of the error's power at the LF slice frequency and its harmonics
(`slice_periodic`), the RMS of that periodic part of the error (`periodic_rmse`,
comparable between methods) and the tile-seam score (`seam`; the interpolation
methods are scored at IQT's tile borders, a control). The truth is the HF
object as training sees it (`simulators.hf_object`), on the dataset's stored
scale (HF divided by its 99th percentile in the brain); IQT enhances the
simulated LF exactly as `launch.infer` enhances a file
(`iqt.inference.enhance_lf`), so its estimate is on that scale too, while the
interpolations stay on the LF's.
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

import simulators
from simulators import distributions
from iqt import metrics
from iqt.interpolation import INTERPOLATION_ORDERS, interpolate_slices
from iqt.errors import UserError
from iqt.evaluation_report import ARTEFACTS, METRIC_SETS, METRICS, write_report
from iqt.tiling import DEFAULT_TILE_LF, check_tile_size

METHODS = ("IQT", *INTERPOLATION_ORDERS)
FIGURE_SETTING = "mean"   # the setting whose LF | cubic | IQT | truth figure is drawn per subject
EVALUATION_SEED_OFFSET = 7919  # the evaluation's noise never reuses a training key


# --- test settings of the simulator ---------------------------------------------------------

def _snr_times(factor: float):
    def variant(sim: ml_collections.ConfigDict) -> None:
        sim.snr = distributions.fixed_pair(tuple(factor * distributions.pair_mean(sim.snr)))
    return variant


def _thickness_per_spacing(fraction: float):
    def variant(sim: ml_collections.ConfigDict) -> None:
        sim.parameters.slice_thickness_fraction = distributions.fixed(fraction)
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
    names = tuple(names)   # names of SETTINGS, or Setting objects (conditions of one's own)
    unknown = [n for n in names if not isinstance(n, Setting) and n not in SETTINGS]
    if unknown or not names:
        raise UserError(f"unknown test setting(s) {', '.join(unknown) or '(none given)'}; "
                        f"choose from {', '.join(SETTINGS)}")
    return names


def setting_config(name: str, sim_config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of `sim_config` changed by the named setting (or a `Setting`), with every draw at its mean."""
    sim = ml_collections.ConfigDict(sim_config.to_dict())
    (name if isinstance(name, Setting) else SETTINGS[name]).variant(sim)
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


# --- evaluation -----------------------------------------------------------------------------

Enhance = Callable[[np.ndarray], np.ndarray]
"""An LF volume (x, y, z_lf), as simulated → its IQT estimate (x, y, z_lf · r) on the HF scale
(`iqt.inference.enhance_lf`: the same normalisation as `launch.infer`)."""
Borders = Callable[[tuple[int, int, int]], Sequence[int]]
"""An LF shape (x, y, z_lf) → the HF slice indices b where IQT's tiles meet (pairs b - 1, b)."""


def check_metric_set(name: str) -> str:
    if name not in METRIC_SETS:
        raise UserError(f"--metrics must be one of {', '.join(METRIC_SETS)}, got {name!r}")
    return name


def estimates(lf: np.ndarray, factor: int, enhance: Enhance) -> dict[str, np.ndarray]:
    """Every method's HF estimate of `lf`, by method name."""
    out = {"IQT": np.asarray(enhance(lf), np.float32)}
    out.update({name: interpolate_slices(lf, factor, order) for name, order in INTERPOLATION_ORDERS.items()})
    return out


def volume_metrics(truth: np.ndarray, estimate: np.ndarray, brain: np.ndarray, factor: int,
                   borders_hf: Sequence[int], metric_set: str = "ours") -> dict[str, float]:
    """The table's columns for one estimate: `metric_set`'s image metrics and the artefact scores."""
    row = {}
    if metric_set in ("ours", "both"):
        row.update(metrics.all_metrics(truth, estimate, brain))
    if metric_set in ("reference", "both"):
        row.update(metrics.reference_metrics(truth, estimate))
    row["slice_periodic"] = metrics.slice_periodic_power(truth, estimate, factor, brain)
    row["periodic_rmse"] = metrics.slice_periodic_rmse(truth, estimate, factor, brain)
    row["seam"] = metrics.tile_seam_score(truth, estimate, borders_hf, brain)
    return row


def evaluate_subject(subject, enhance: Enhance, sim_config: ml_collections.ConfigDict,
                     settings: Sequence[str], seed: int, *, borders: Borders | None = None,
                     metric_set: str = "ours", figure_dir: str | os.PathLike | None = None) -> list[dict]:
    """One row per (setting, method): the subject's metrics in the brain (and its figure)."""
    factor = int(sim_config.factor)
    rows = []
    for setting in settings:
        sim, name = setting_config(setting, sim_config), getattr(setting, "name", setting)
        lf = np.asarray(simulators.simulate_volume(
            setting_key(seed, name, subject.subject_id), subject.image, subject.tissue,
            setting_parameters(sim), sim, tissue_means=subject.tissue_means), np.float32)
        n_hf = lf.shape[-1] * factor
        truth = simulators.hf_object(subject.image, subject.tissue, sim.lf_brain_threshold)
        truth = np.asarray(truth[..., :n_hf], np.float32)
        brain = np.asarray(simulators.tissue_sum(subject.tissue[..., :n_hf, :])) >= max(
            sim.lf_brain_threshold, 1e-6)                       # the object's support
        borders_hf = list(borders(lf.shape)) if borders is not None else []
        estimate = estimates(lf, factor, enhance)
        for method, volume in estimate.items():
            rows.append({"subject": subject.subject_id, "setting": name, "method": method,
                         **volume_metrics(truth, volume, brain, factor, borders_hf, metric_set)})
        if figure_dir is not None and name == FIGURE_SETTING:
            from iqt import figures
            figures.save_enhancement_figure(
                Path(figure_dir) / f"{subject.subject_id}_{name}.png", lf, estimate["IQT"], factor,
                subject.voxel_sizes_mm, subject.affine, cubic=estimate["cubic"], truth=truth,
                title=f"{subject.subject_id}, setting '{name}'")
    return rows


def evaluate(subjects: Iterable, enhance: Enhance, sim_config: ml_collections.ConfigDict,
             settings: Sequence[str] = DEFAULT_SETTINGS, seed: int = 0, *, borders: Borders | None = None,
             metric_set: str = "ours", figure_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """The long table: one row per subject × setting × method, the metric set's columns and ARTEFACTS.

    borders: where IQT's tiles meet (every method is scored there); without it
    the seam score is NaN. figure_dir: where each subject's figure goes.
    """
    settings, metric_set = check_settings(settings), check_metric_set(metric_set)
    rows = [row for subject in subjects
            for row in evaluate_subject(subject, enhance, sim_config, settings, seed, borders=borders,
                                        metric_set=metric_set, figure_dir=figure_dir)]
    if not rows:
        raise UserError("no held-out subject to evaluate: the split is empty")
    columns = [m for m in METRICS if m in METRIC_SETS[metric_set] or m in ARTEFACTS]
    return pd.DataFrame(rows, columns=["subject", "setting", "method", *columns])


# --- a training run -------------------------------------------------------------------------

def evaluate_run(workdir: str | os.PathLike, *, split: str = "test",
                 settings: Sequence[str] = DEFAULT_SETTINGS, out_dir: str | os.PathLike | None = None,
                 checkpoint: str = "best", batch_size: int = 1, tile_lf=DEFAULT_TILE_LF,
                 metric_set: str = "ours", progress: bool = True) -> tuple[pd.DataFrame, dict[str, Path]]:
    """`launch.evaluate`: the run's network on its held-out split; returns (table, written files).

    `split` is 'test', 'validation' or 'train' (the config's names for them) or a
    split name of the dataset; the report and one figure per subject
    (<subject>_mean.png) go to `out_dir` (default WORKDIR/evaluation).
    """
    from iqt.data import splits
    from iqt.inference import enhance_lf, load_predictor

    settings, tile_lf = check_settings(settings), check_tile_size(tile_lf)
    metric_set = check_metric_set(metric_set)
    predictor, config = load_predictor(workdir, checkpoint)
    names = {"test": config.data.test_split, "validation": config.data.validation_split,
             "train": config.data.train_split}
    subjects = splits.load_split_subjects(config.data, names.get(split, split))
    out_dir = Path(workdir) / "evaluation" if out_dir is None else Path(out_dir)

    def enhance(lf: np.ndarray) -> np.ndarray:
        return enhance_lf(lf, predictor, batch_size=batch_size, tile_lf=tile_lf, progress=progress)

    def borders(lf_shape: tuple[int, int, int]) -> list[int]:
        plan = predictor.tile_plan(lf_shape, tile_lf)
        return [predictor.factor * b for b in plan.slice_borders_lf()]

    table = evaluate(subjects, enhance, config.sim, settings, seed=int(config.seed), borders=borders,
                     metric_set=metric_set, figure_dir=out_dir)
    return table, write_report(table, out_dir)
