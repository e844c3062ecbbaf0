"""Whole-volume enhancement: a low-field volume in, its IQT estimate out.

The ANISO U-Net is fully convolutional, so a volume is enhanced in large
overlapping tiles (`iqt.tiling`) rather than 32×32×4 patches, cut and
predicted a batch at a time (never all at once) and blended into the HF grid.

Inside the library the slice axis is the last one (`iqt.orientation` moves a
volume's axes there and back; `iqt.infer_files` reads and writes the NIfTI
files).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from iqt.data.normalization import brain_mask, lf_scale
from iqt.errors import UserError
from iqt.interrupts import raise_if_received
from iqt.interpolation import interpolate_slices
from iqt.tiling import (DEFAULT_MARGIN_LF, DEFAULT_TILE_LF, TilePlan, grow_tile, iter_tile_batches, iter_tiles,
                        plan_tiles)

PredictFn = Callable[[np.ndarray], np.ndarray]
"""(B, X, Y, Z_lf) normalised LF tiles → (B, X, Y, Z_lf · r) HF tiles, float32."""


# --- enhancement ----------------------------------------------------------------------------

def enhance_volume(lf: np.ndarray, predict_fn: PredictFn, factor: int, *, tile_lf=DEFAULT_TILE_LF,
                   margin_lf=DEFAULT_MARGIN_LF, multiple=(1, 1, 1), batch_size: int = 1,
                   progress: bool = True) -> np.ndarray:
    """Enhances a normalised LF volume (x, y, z_lf), slice axis last → (x, y, z_lf · factor) float32.

    Tiles are at most `tile_lf` voxels (x, y, slices), overlapping by at least
    2 · `margin_lf` where they meet. `multiple`: the
    network's input sizes must be multiples of it (its pooling); the volume is
    padded at the far end of each axis by mirroring.
    """
    lf = np.asarray(lf, dtype=np.float32)
    if lf.ndim != 3:
        raise ValueError(f"enhance_volume needs a 3-D volume, got shape {lf.shape}")
    plan = plan_tiles(lf.shape, tile_lf, margin_lf, multiple)
    padded = np.pad(lf, [(0, a.padded - a.length) for a in plan.axes], mode="symmetric")
    out = np.zeros((plan.axes[0].padded, plan.axes[1].padded, plan.axes[2].padded * factor), np.float32)
    batch_size = max(1, min(int(batch_size), plan.num_tiles))
    bar = tqdm(total=plan.num_tiles, unit="tile", desc="enhance", disable=not progress, leave=False)
    for batch, tiles in iter_tile_batches(padded, iter_tiles(plan, factor), batch_size):
        predicted = np.asarray(predict_fn(batch), dtype=np.float32)
        raise_if_received()   # a signal dropped inside the runtime's callbacks still stops here
        expected = (batch.shape[0], *batch.shape[1:3], batch.shape[3] * factor)
        if predicted.shape != expected:
            raise ValueError(f"predict_fn returned shape {predicted.shape}, expected {expected}")
        for tile, tile_out in zip(tiles, predicted):
            wx, wy, wz = tile.weights
            out[tile.hf_slices] += tile_out * wx[:, None, None] * wy[None, :, None] * wz[None, None, :]
        bar.update(len(tiles))
    bar.close()
    x, y, z = lf.shape
    return out[:x, :y, :z * factor]


# --- a trained network ----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Predictor:
    """A trained network ready to enhance: its tile predictor and the sizes its inputs must be multiples of.

    The network is fully convolutional, so it takes tiles of any size; the
    tiles' edges, where it lacked context, are discarded and blended
    (`iqt.tiling`). Its answer depends on the tile's in-plane size through
    BatchNorm's running statistics: measured on small training patches, they
    misnormalise the interior of large tiles (the demo's uncalibrated seed 1 on
    Colin27: −1.3 dB against cubic at the default tiles, +0.3 dB at 40 × 40),
    which is why training calibrates them on large patches (`iqt.bn_calibration`).
    Along the slices, tiles of 4, 8 and 16 LF slices agree within 0.04 dB
    (`benchmarks/demo_quality.py`).
    """

    predict_fn: PredictFn
    factor: int
    multiple: tuple[int, int, int] = (1, 1, 1)

    def tile_plan(self, lf_shape: tuple[int, int, int], tile_lf=DEFAULT_TILE_LF,
                  margin_lf=DEFAULT_MARGIN_LF) -> TilePlan:
        """The tiles `enhance` cuts a volume of `lf_shape` into (also for the evaluation's seam score)."""
        return plan_tiles(lf_shape, grow_tile(tile_lf, margin_lf, self.multiple), margin_lf, self.multiple)

    def enhance(self, lf: np.ndarray, *, batch_size: int = 1, tile_lf=DEFAULT_TILE_LF,
                margin_lf=DEFAULT_MARGIN_LF, progress: bool = True) -> np.ndarray:
        """`enhance_volume` with this network (normalised LF, slice axis last)."""
        return enhance_volume(lf, self.predict_fn, self.factor, margin_lf=margin_lf, multiple=self.multiple,
                              tile_lf=grow_tile(tile_lf, margin_lf, self.multiple), batch_size=batch_size,
                              progress=progress)


def make_predict_fn(model, variables) -> PredictFn:
    """A jitted evaluation-mode `PredictFn` of a Flax model and its variables."""
    import jax
    import jax.numpy as jnp

    apply = jax.jit(lambda v, lf: model.apply(v, lf[..., None], train=False)[..., 0].astype(jnp.float32))
    variables = jax.device_put(variables)   # once, not with every tile
    return lambda lf: np.asarray(apply(variables, jnp.asarray(lf)))


def restore_variables(workdir, checkpoint: str, config, model) -> dict:
    """The Flax variables {'params', 'batch_stats'} of a run's checkpoint, restored alone (no training state)."""
    import jax

    from iqt import checkpoint_reading
    from iqt.models import input_multiple

    lf = jax.ShapeDtypeStruct((1, *input_multiple(config.model, int(config.sim.factor)), 1), jax.numpy.float32)
    abstract = jax.eval_shape(lambda k, x: model.init(k, x, train=False), jax.random.key(0), lf)
    abstract = {k: abstract[k] for k in ("params", "batch_stats") if k in abstract}
    variables, _ = checkpoint_reading.restore_variables(workdir, abstract, checkpoint)
    return variables


def load_predictor(workdir: str | os.PathLike, checkpoint: str = "best") -> tuple[Predictor, object]:
    """The network of a training run: (Predictor, resolved config); checkpoint best|latest|STEP."""
    from iqt import checkpoint_reading, config_io
    from iqt.models import create_model, input_multiple

    if not Path(workdir).is_dir():
        raise UserError(f"work directory {workdir} does not exist")
    config = config_io.load_config(workdir)
    checkpoint_reading.resolve_checkpoint(workdir, str(checkpoint))   # a clear error before anything heavy
    factor = int(config.sim.factor)
    model = create_model(config.model, factor)
    variables = restore_variables(workdir, str(checkpoint), config, model)
    return Predictor(make_predict_fn(model, variables), factor, input_multiple(config.model, factor)), config


def enhance_lf(lf: np.ndarray, predictor: "Predictor", mask: np.ndarray | None = None, *,
               name: str = "the low-field input", **enhance_options) -> np.ndarray:
    """A low-field volume (x, y, z_lf), slice axis last, in its own units → (x, y, z_lf · r).

    The one intensity rule of training, evaluation and inference: the brain
    (`mask`, default: voxels > 0 of a skull-stripped input) is divided by its
    mean (`lf_scale`), the background is zeroed as in training, and the
    network's output is multiplied back (`network_output`). Outputs are
    magnitudes: negatives are clipped to 0. The background is the input outside
    the mask upsampled by cubic splines, never invented (`with_background`).
    """
    lf = np.asarray(lf, np.float32)
    mask = brain_mask(lf) if mask is None else np.asarray(mask, bool)
    hf, scale = network_output(lf, predictor, mask, name=name, **enhance_options)
    return with_background(np.maximum(hf, 0.0) * scale, lf, mask, predictor.factor)


def network_output(lf: np.ndarray, predictor: "Predictor", mask: np.ndarray, *, name: str = "the low-field input",
                   **enhance_options) -> tuple[np.ndarray, np.float32]:
    """(the network's HF estimate of the brain on the brain-mean scale (x, y, z_lf · r), that scale):
    the brain of `lf` divided by its mean (`lf_scale`), the background zeroed as in training."""
    scale = np.float32(lf_scale(lf, mask, name=name))
    return predictor.enhance(np.where(mask, lf, np.float32(0.0)) / scale, **enhance_options), scale


def with_background(hf: np.ndarray, lf: np.ndarray, mask: np.ndarray, factor: int) -> np.ndarray:
    """The network's estimate `hf` (x, y, z_lf · r) inside the brain, the input's background elsewhere.

    Inside the brain (the mask over each LF slice's r HF slices) the output is
    the network's; outside, the input's background upsampled by cubic splines
    (0 for a skull-stripped input); in the LF slices next to the brain along the
    slices, where the brain's edge lies somewhere inside a thick slice and the
    network was trained to place it, the network's part and the background add up.
    """
    if mask.all():
        return hf
    reach = ndimage.binary_dilation(mask, np.ones((1, 1, 3), bool))   # ± one LF slice
    brain, reach = (np.repeat(m, factor, axis=-1) for m in (mask, reach))
    background = np.where(mask, np.float32(0.0), lf)
    background = np.maximum(interpolate_slices(background, factor, 3), 0.0)
    return np.where(brain, hf, np.where(reach, hf + background, background))
