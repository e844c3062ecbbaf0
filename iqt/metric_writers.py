"""Training metrics to TensorBoard event files (no TensorFlow) and JSON lines.

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

from tensorboardX import SummaryWriter

from iqt.io_utils import atomic_write_text

JSONL_NAME = "metrics.jsonl"


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

    def close(self) -> None:
        if self.enabled:
            self.tensorboard.close()
