"""Training progress for people: a live bar on a terminal, plain lines in a log file.

On a terminal, a tqdm bar. Written to a file or a pipe (a cluster job's log, `| tee`),
a bar is one ever-growing line of carriage returns, so the bar gives way to one line
every `log_every` steps (step, loss, steps/s, ETA) on standard output (standard error
keeps the bar, and errors: one `error:` line). Either way each validation prints one
line. Process 0 only.
"""
from __future__ import annotations

import datetime
import sys
from typing import Mapping, TextIO

from tqdm import tqdm


class Progress:
    """Reports steps `initial + 1 .. total`: a bar on `stream` (default standard error) when it
    is a terminal, else lines on `stream` (default standard output)."""

    def __init__(self, total: int, initial: int, *, enabled: bool = True, bar: bool = True,
                 stream: TextIO | None = None):
        self.total, self.enabled = total, enabled
        interactive = bar and (stream or sys.stderr).isatty()
        self.stream = stream or (sys.stderr if interactive else sys.stdout)
        self.bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True,
                        file=self.stream, disable=not (enabled and interactive))
        self.lines = enabled and not interactive

    def step(self, loss: float) -> None:
        """One step done (the bar moves; lines wait for `log`)."""
        if not self.bar.disable:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4g}")

    def log(self, step: int, loss: float, steps_per_s: float) -> None:
        """The line of a `log_every` step, when there is no bar."""
        if self.lines:
            eta = datetime.timedelta(seconds=round((self.total - step) / max(steps_per_s, 1e-9)))
            self._print(f"step {step}/{self.total}  loss {loss:.4g}  {steps_per_s:.3g} steps/s  ETA {eta}")

    def validation(self, step: int, metrics: Mapping[str, float]) -> None:
        """One line of validation metrics."""
        if self.enabled:
            values = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            self._print(f"step {step}/{self.total}  validation: {values}")

    def close(self) -> None:
        self.bar.close()

    def _print(self, line: str) -> None:
        if self.bar.disable:
            print(line, file=self.stream, flush=True)
        else:
            self.bar.write(line, file=self.stream)
