"""`launch.evaluate --suite generalisation`: a training run (or an exported network) on the benchmark.

    python -m launch.evaluate --suite generalisation --workdir RUN [--colin27 PATH] [--cases a,b] [--out DIR]
    python -m launch.evaluate --suite generalisation --workdir RUN --adapt 300   # adapted to each scan

Writes generalisation.csv, .md, .json and one figure per brain and case,
<brain>_<case>.png, to `out_dir` (default RUN/generalisation).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from iqt import config_io
from iqt.errors import UserError
from iqt.export import backends
from iqt.export.run_export import open_predictor
from iqt.generalisation import benchmark, brains, cases, report
from iqt.inference import enhance_lf
from iqt.models import level_schedule
from iqt.tiling import DEFAULT_TILE_LF, check_tile_size
from iqt.tta import augmented, flip_sets

BRAINS = ("colin27", "template_test")
TEMPLATE_VOXEL_MM = 1.0   # the template slab is an in-distribution reference only for 1 mm runs


def upsampling_periods(model_config, factor: int) -> list[int]:
    """The HF periods (voxels) of the decoder's up-sampling: the cumulative in-plane pooling factors."""
    plan = level_schedule(int(factor), int(model_config.levels), int(model_config.base_features))
    return [int(p) for p in np.cumprod([level.down for level in plan[:-1]])]


def load_brains(names: Sequence[str], hf_voxel_mm: float, colin27: str | os.PathLike | None) -> list[brains.Brain]:
    """The named evaluation brains on the run's voxel size."""
    unknown = [n for n in names if n not in BRAINS]
    if unknown or not names:
        raise UserError(f"unknown brain(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(BRAINS)}")
    out = []
    for name in names:
        if name == "colin27":
            out.append(brains.colin27(brains.find_colin27(colin27), hf_voxel_mm))
        elif abs(hf_voxel_mm - TEMPLATE_VOXEL_MM) < 1e-6:
            out.append(brains.template_test_slab())
    return out


def evaluate_run(source: str | os.PathLike, *, out_dir: str | os.PathLike, case_names: Sequence[str] | None = None,
                 brain_names: Sequence[str] = BRAINS, colin27: str | os.PathLike | None = None,
                 checkpoint: str = "best", backend: str = "auto", precision: str = "float32",
                 tile_lf=None, adapt_steps: int = 0, tta: str = "none",
                 progress: Callable[[str], None] = print) -> tuple[pd.DataFrame, dict[str, Path]]:
    """The benchmark of a work directory or `.onnx` file; returns (long table, written files).

    `adapt_steps` > 0: IQT is the network fine-tuned on each scan for that many steps
    (`iqt.adaptation`; a work directory only). `tta`: test-time augmentation (`iqt.tta`)."""
    selected = cases.select_cases(case_names)
    tile_lf = check_tile_size(tile_lf or DEFAULT_TILE_LF)
    if adapt_steps:
        from iqt import adaptation   # JAX, optax and scikit-learn load only for --adapt
        adapt_steps = adaptation.check_steps(adapt_steps, source)
    flip_sets(tta)   # an unknown mode fails before the network loads
    predictor, used_backend, used_precision = open_predictor(source, checkpoint, backend, precision=precision)
    predictor = augmented(predictor, tta)
    config = _config_of(source)
    network = adaptation.Network.from_run(source, checkpoint, config) if adapt_steps else None
    factor, hf_voxel_mm = int(config.sim.factor), float(config.sim.hf_voxel_mm)
    loaded = load_brains(list(brain_names), hf_voxel_mm, colin27)
    Path(out_dir).mkdir(parents=True, exist_ok=True)

    def enhance(lf: np.ndarray, lf_brain: np.ndarray) -> np.ndarray:
        if network is not None:
            return adaptation.enhance_adapted(lf, predictor, network, adapt_steps, mask=lf_brain, tile_lf=tile_lf,
                                              tta=tta, progress=False, report=progress)
        return enhance_lf(lf, predictor, lf_brain, tile_lf=tile_lf, progress=False)

    start = time.perf_counter()
    table = benchmark.run(loaded, selected, factor, enhance, upsampling_periods(config.model, factor),
                          figure_dir=out_dir, progress=progress)
    about = {"source": str(source), "checkpoint": checkpoint, "backend": used_backend,
             "precision": used_precision, "factor": factor, "hf_voxel_mm": hf_voxel_mm,
             "slice_spacing_mm": factor * hf_voxel_mm, "adapt_steps": adapt_steps, "tta": tta,
             "brains": [b.name for b in loaded],
             "cases": {c.name: c.description for c in selected}, "seconds": time.perf_counter() - start}
    return table, report.write_report(table, out_dir, about)


def _config_of(source: str | os.PathLike):
    if backends.is_onnx_file(source):
        return backends.config_of(backends.read_metadata(source), source)
    return config_io.load_config(source)
