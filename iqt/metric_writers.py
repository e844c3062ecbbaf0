"""Training metrics to TensorBoard event files (no TensorFlow) and JSON lines.

`WORKDIR/tensorboard/` (view with `tensorboard --logdir WORKDIR/tensorboard`) holds the
train and validation scalars, the validation figure at every evaluation, the resolved
config as text and its scalar fields as hyperparameters (the HParams tab).
`WORKDIR/metrics.jsonl` holds one JSON object per logged step:
{"step": 100, "split": "train", "loss": ..., ...}. When a run resumes from a
checkpoint at step k, lines after step k (written by the interrupted run and
lost with it) are dropped, so the log always matches the model's history.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Mapping

import matplotlib.image
import ml_collections
from tensorboardX import SummaryWriter
from tensorboardX.summary import hparams

from iqt import config_io
from iqt.io_utils import atomic_write_text
from simulators import distributions
from simulators.parameters import SCALAR_PARAMETERS, SNR_PARAMETERS

JSONL_NAME = "metrics.jsonl"
HPARAM_METRICS = ("validation/loss", "validation/psnr", "validation/ssim")


def drawn_simulator_parameters(sim: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The simulator parameters that vary from sample to sample (a fixed one is not worth a curve)."""
    if sim.deterministic:
        return ()
    drawn = [name for name in SCALAR_PARAMETERS
             if len(set(distributions.scalar_support(sim.parameters[name]))) > 1]
    if sim.snr.distribution != "fixed":
        drawn += SNR_PARAMETERS
    if "slice_thickness_fraction" in drawn:
        drawn += ["slice_thickness_mm", "slice_gap_mm"]  # derived from the fraction
    return tuple(drawn)


def hyperparameters(config: ml_collections.ConfigDict) -> dict[str, bool | int | float | str]:
    """The config's leaves by dotted name; lists and None as text (what HParams can show)."""
    flat = {}

    def visit(prefix: str, node) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, Mapping):
                visit(name + ".", value)
            else:
                flat[name] = value if isinstance(value, (bool, int, float, str)) else json.dumps(value)

    visit("", json.loads(config_io.to_json(config)))
    return flat


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """All records of a metrics file; a torn last line (from a kill) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class MetricWriter:
    """Writes scalars for process 0 only; a no-op on the other processes."""

    def __init__(self, workdir: str | os.PathLike, *, resume_step: int, enabled: bool = True):
        self.enabled = enabled
        if not enabled:
            return
        workdir = Path(workdir)
        self.jsonl = workdir / JSONL_NAME
        kept = [r for r in read_jsonl(self.jsonl) if r.get("step", 0) <= resume_step]
        atomic_write_text(self.jsonl, "".join(json.dumps(r) + "\n" for r in kept))
        self.tensorboard = SummaryWriter(str(workdir / "tensorboard"), purge_step=resume_step + 1)

    def write(self, step: int, split: str, scalars: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in scalars.items()}
        with self.jsonl.open("a") as f:
            f.write(json.dumps({"step": int(step), "split": split,
                                **{k: (v if math.isfinite(v) else None) for k, v in clean.items()}}) + "\n")
        for name, value in clean.items():
            self.tensorboard.add_scalar(f"{split}/{name}", value, step)

    def write_config(self, step: int, config: ml_collections.ConfigDict) -> None:
        """The resolved config as text, and its leaves as the run's hyperparameters."""
        if not self.enabled:
            return
        self.tensorboard.add_text("config", "```\n" + config_io.to_json(config) + "\n```", step)
        experiment, session_start, _ = hparams(hyperparameters(config), dict.fromkeys(HPARAM_METRICS, 0.0))
        self.tensorboard.file_writer.add_summary(experiment, step)
        self.tensorboard.file_writer.add_summary(session_start, step)

    def write_image(self, step: int, tag: str, png: str | os.PathLike) -> None:
        """A PNG file (e.g. a figure just saved) as an image."""
        if not self.enabled:
            return
        image = matplotlib.image.imread(str(png))[..., :3]  # (H, W, RGB) floats in [0, 1]
        self.tensorboard.add_image(tag, image, step, dataformats="HWC")

    def close(self) -> None:
        if self.enabled:
            self.tensorboard.close()
