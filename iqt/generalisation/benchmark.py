"""The generalisation benchmark: a trained network on brains and acquisitions it has never seen.

For every evaluation brain (`iqt.generalisation.brains`) and acquisition case
(`iqt.generalisation.cases`), the LF scan is made by the benchmark's own forward
model (`iqt.generalisation.acquisition`, independent of the training simulator),
enhanced by IQT exactly as `launch.infer` enhances a skull-stripped file
(`iqt.inference.enhance_lf`, the LF brain as mask), upsampled by nearest, linear
and cubic-spline interpolation along the slices, and every estimate is scored
against the HF truth inside the brain (`iqt.generalisation.scores`). The noise
and bias of a case are seeded by the (brain, case) pair, so every network is
tested on the very same scans.
"""
from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from iqt import evaluation
from iqt.generalisation import acquisition, scores
from iqt.generalisation.brains import Brain
from iqt.generalisation.figure import save_case_figure

Enhance = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(LF volume (x, y, z_lf) in its own units, its brain mask) → IQT's HF estimate (x, y, z_lf · r)."""


@dataclasses.dataclass(frozen=True)
class Scan:
    """One simulated acquisition of a brain and what it is compared with."""

    lf: np.ndarray          # (x, y, n_lf), the scanner's units
    lf_brain: np.ndarray    # (x, y, n_lf) bool
    truth: np.ndarray       # (x, y, n_lf · r), on the brain-mean scale
    brain: np.ndarray       # (x, y, n_lf · r) bool


def case_seed(brain_name: str, case_name: str) -> int:
    """The noise and bias seed of one (brain, case), the same for every network."""
    return zlib.crc32(f"{brain_name}/{case_name}".encode()) & 0x7FFFFFFF


def acquire_scan(brain: Brain, case: acquisition.Acquisition, factor: int) -> Scan:
    """The LF scan of `brain` under `case` at ×`factor`, and its truth cut to the same slices."""
    lf, lf_brain = acquisition.acquire(brain.image, brain.brain, case, factor, brain.voxel_mm,
                                       seed=case_seed(brain.name, case.name))
    n_hf = lf.shape[-1] * factor
    truth, mask = brain.image[..., :n_hf], brain.brain[..., :n_hf]
    return Scan(lf, lf_brain, scores.brain_scaled(truth, mask), mask)


def estimates(scan: Scan, factor: int, enhance: Enhance) -> dict[str, np.ndarray]:
    """Every method's estimate of the scan on the LF brain-mean scale, by method name."""
    lf_mean = float(scan.lf[scan.lf_brain].mean())
    volumes = evaluation.estimates(scan.lf, factor, lambda lf: enhance(lf, scan.lf_brain))
    return {name: np.asarray(volume, np.float64) / lf_mean for name, volume in volumes.items()}


def run_case(brain: Brain, case: acquisition.Acquisition, factor: int, enhance: Enhance,
             periods: Sequence[int], figure_dir: str | Path | None = None) -> list[dict]:
    """One row per method: the scores of `case` on `brain` (and its figure in `figure_dir`)."""
    scan = acquire_scan(brain, case, factor)
    volumes = estimates(scan, factor, enhance)
    rows = [{"brain": brain.name, "case": case.name, "method": method,
             **scores.estimate_scores(scan.truth, volume, scan.brain, factor, periods)}
            for method, volume in volumes.items()]
    if figure_dir is not None:
        save_case_figure(Path(figure_dir) / f"{brain.name}_{case.name}.png", scan, volumes, factor,
                         brain.voxel_mm, title=f"{brain.name}, {case.name}: {case.description}")
    return rows


def run(brains: Iterable[Brain], cases: Sequence[acquisition.Acquisition], factor: int, enhance: Enhance,
        periods: Sequence[int], figure_dir: str | Path | None = None,
        progress: Callable[[str], None] = lambda line: None) -> pd.DataFrame:
    """The long table: one row per brain × case × method with every score of `scores.estimate_scores`."""
    rows = []
    for brain in brains:
        for case in cases:
            case_rows = {row["method"]: row for row in run_case(brain, case, factor, enhance, periods,
                                                                  figure_dir)}
            rows += case_rows.values()
            progress(f"{brain.name} {case.name}: IQT {case_rows['IQT']['psnr_fit']:.2f} dB, cubic "
                     f"{case_rows['cubic']['psnr_fit']:.2f} dB (PSNR after the intensity fit)")
    return pd.DataFrame(rows)
