"""Test-time augmentation (TTA): a tile's prediction averaged over the flips the network trained with.

Training showed the network each patch flipped along x, y and the slices at
random (`iqt.train_step.augment`), so every flip of a scan is an input it knows.
TTA predicts the tile under each of those flips, flips every prediction back and
averages them: the network's errors that are not symmetric under the flips
(among them a checkerboard of its up-sampling) partly cancel. It costs one network
call per flip: 8 for `flips`.

A flip along the slices is exact on the slice convention: LF slice j covers HF
slices r·j … r·j + r − 1, so reversing the Z LF slices reverses the r·Z HF slices.
"""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from iqt.errors import UserError
from iqt.inference import Predictor

TTA_MODES = ("none", "flips")


def flip_sets(mode: str) -> list[tuple[int, ...]]:
    """The batch axes (1 = x, 2 = y, 3 = slices) flipped by each augmentation of `mode`, identity first."""
    if mode == "none":
        return [()]
    if mode == "flips":
        return [axes for n in range(4) for axes in itertools.combinations((1, 2, 3), n)]
    raise UserError(f"--tta must be one of {', '.join(TTA_MODES)}, got {mode!r}")


def with_tta(predict_fn, mode: str):
    """`predict_fn` ((B, X, Y, Z_lf) → (B, X, Y, Z_lf · r)) averaged over `mode`'s flips."""
    axes_sets = flip_sets(mode)
    if len(axes_sets) == 1:
        return predict_fn

    def predict(lf: np.ndarray) -> np.ndarray:
        total = None
        for axes in axes_sets:
            out = np.flip(np.asarray(predict_fn(np.ascontiguousarray(np.flip(lf, axes))), np.float32), axes)
            total = out.copy() if total is None else total + out
        return total / np.float32(len(axes_sets))

    return predict


def augmented(predictor: Predictor, mode: str) -> Predictor:
    """`predictor` predicting every tile under `mode`'s test-time augmentation."""
    return dataclasses.replace(predictor, predict_fn=with_tta(predictor.predict_fn, mode))
