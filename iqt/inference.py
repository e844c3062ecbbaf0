"""Whole-volume enhancement: a low-field volume in, its IQT estimate out.

The ANISO U-Net is fully convolutional, so a volume is enhanced in large
overlapping tiles (`iqt.tiling`) rather than 32×32×4 patches, cut and
predicted a batch at a time (never all at once) and blended into the HF grid.

Inside the library the slice axis is the last one (`iqt.orientation` moves a
volume's axes there and back, so that the storage order and flips of the input
do not change the enhanced anatomy). The output geometry is the slice
convention's (`iqt.data.nifti.hf_affine_from_lf`).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from iqt import figures
from iqt.data.nifti import check_same_grid, find_slice_axis, hf_affine_from_lf, load_volume, save_volume
from iqt.data.normalization import brain_mask, lf_scale
from iqt.errors import UserError
from iqt.interpolation import interpolate_slices
from iqt.orientation import Reorientation
from iqt.tiling import (DEFAULT_MARGIN_LF, DEFAULT_TILE_LF, TilePlan, check_tile_size, grow_tile,
                        iter_tile_batches, iter_tiles, plan_tiles)

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

    The network is fully convolutional and was trained on patches several LF
    slices thick with a zero background, so it enhances tiles of any size alike
    (measured on the demo: tiles of 4, 8 and 16 LF slices within 0.2 dB PSNR;
    `tests/training/test_tile_invariance.py`); the tiles' edges, where it lacked
    context, are discarded and blended (`iqt.tiling`).
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


def _restore_variables(workdir, checkpoint: str, config, model) -> dict:
    """The Flax variables {'params', 'batch_stats'} of a run's checkpointed `TrainState`."""
    import jax

    from iqt import checkpointing
    from iqt.models import input_multiple
    from iqt.train_step import create_train_state, make_optimizer

    shape = (1, *input_multiple(config.model, int(config.sim.factor)))
    abstract = jax.eval_shape(lambda k: create_train_state(k, model, make_optimizer(config.train), shape),
                              jax.random.key(0))
    state, _ = checkpointing.restore_state(workdir, abstract, checkpoint)
    return {"params": state.params, "batch_stats": state.batch_stats}


def load_predictor(workdir: str | os.PathLike, checkpoint: str = "best") -> tuple[Predictor, object]:
    """The network of a training run: (Predictor, resolved config); checkpoint best|latest|STEP."""
    from iqt import checkpointing, config_io
    from iqt.models import create_model, input_multiple

    if not Path(workdir).is_dir():
        raise UserError(f"work directory {workdir} does not exist")
    config = config_io.load_config(workdir)
    checkpointing.resolve_checkpoint(workdir, str(checkpoint))   # a clear error before anything heavy
    factor = int(config.sim.factor)
    model = create_model(config.model, factor)
    variables = _restore_variables(workdir, str(checkpoint), config, model)
    return Predictor(make_predict_fn(model, variables), factor, input_multiple(config.model, factor)), config


# --- NIfTI in, NIfTI out --------------------------------------------------------------------

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def figure_path(output: str | os.PathLike) -> Path:
    """OUT.nii.gz → OUT.png: where the LF-vs-IQT figure of an output goes."""
    output = Path(output)
    stem = next(output.name[:-len(s)] for s in NIFTI_SUFFIXES if output.name.endswith(s))
    return output.with_name(stem + ".png")


def _check_output(input_path: Path, output_path: Path) -> None:
    if not output_path.name.endswith(NIFTI_SUFFIXES):
        raise UserError(f"output {output_path} must end in .nii or .nii.gz")
    if output_path.resolve() == input_path.resolve():
        raise UserError(f"output {output_path} is the input itself; choose another name")


def enhance_lf(lf: np.ndarray, predictor: "Predictor", mask: np.ndarray | None = None, *,
               name: str = "the low-field input", **enhance_options) -> np.ndarray:
    """A low-field volume (x, y, z_lf), slice axis last, in its own units → (x, y, z_lf · r).

    The one intensity rule of training, evaluation and inference: the brain
    (`mask`, default: voxels > 0 of a skull-stripped input) is divided by its
    mean (`lf_scale`), the background is zeroed as in training, and the
    network's output is multiplied back. Outputs are magnitudes: negatives are
    clipped to 0. The background is the input outside the mask upsampled by
    cubic splines, never invented (0 for a skull-stripped input). Inside the
    brain (the mask over each LF slice's r HF slices) the output is the
    network's; in the LF slices next to the brain along the slices, where the
    brain's edge lies somewhere inside a thick slice and the network was
    trained to place it, the network's part and the background add up.
    """
    lf = np.asarray(lf, np.float32)
    mask = brain_mask(lf) if mask is None else np.asarray(mask, bool)
    scale = np.float32(lf_scale(lf, mask, name=name))
    brain = np.where(mask, lf, np.float32(0.0)) / scale
    hf = predictor.enhance(brain, **enhance_options)
    np.maximum(hf, 0.0, out=hf)
    hf *= scale
    if mask.all():
        return hf
    reach = ndimage.binary_dilation(mask, np.ones((1, 1, 3), bool))   # ± one LF slice
    brain, reach = (np.repeat(m, predictor.factor, axis=-1) for m in (mask, reach))
    background = np.where(mask, np.float32(0.0), lf)
    background = np.maximum(interpolate_slices(background, predictor.factor, 3), 0.0)
    return np.where(brain, hf, np.where(reach, hf + background, background))


def load_reference(path: str | os.PathLike, lf_volume, slice_axis: int, factor: int) -> np.ndarray:
    """The HF truth for the figure, checked to lie on the output's grid (input axes, ×r slices).

    A truth with up to r − 1 more slices (the HF volume the LF was simulated
    from, whose last Z mod r slices start no LF slice) is cut to the output's.
    """
    reference = load_volume(path, name="HF reference")
    shape = list(lf_volume.data.shape)
    shape[slice_axis] *= factor
    expected = hf_affine_from_lf(lf_volume.affine, factor, slice_axis=slice_axis)
    extra = reference.data.shape[slice_axis] - shape[slice_axis] if reference.data.ndim == 3 else -1
    same_plane = all(a == b for k, (a, b) in enumerate(zip(reference.data.shape, shape)) if k != slice_axis)
    if not (same_plane and 0 <= extra < factor) or not np.allclose(reference.affine, expected, atol=1e-3):
        raise UserError(f"--reference {path} is not on the output's grid: shape {reference.data.shape} "
                        f"(expected {tuple(shape)}) or affine differs from the enhanced volume's")
    return np.take(reference.data, range(shape[slice_axis]), axis=slice_axis)


def save_figure(path: Path, name: str, lf: np.ndarray, hf: np.ndarray, factor: int, lf_affine: np.ndarray,
                truth: np.ndarray | None = None) -> None:
    """OUT.png: LF | IQT, or LF | cubic | IQT | truth with the truth (library arrays, slice axis last)."""
    from iqt.data.nifti import voxel_sizes_from_affine

    hf_mm = np.asarray(voxel_sizes_from_affine(lf_affine)) / [1.0, 1.0, factor]
    cubic = None if truth is None else interpolate_slices(lf, factor, order=3)
    figures.save_enhancement_figure(path, lf, hf, factor, hf_mm, lf_affine, cubic=cubic, truth=truth,
                                    title=f"{name}: LF vs IQT" + (" vs HF truth" if truth is not None else ""))


def enhance_file(input_path: str | os.PathLike, output_path: str | os.PathLike, predictor: Predictor, *,
                 slice_axis: int | None = None, mask_path: str | os.PathLike | None = None,
                 batch_size: int = 1, tile_lf=DEFAULT_TILE_LF, progress: bool = True,
                 figure: bool = True, reference_path: str | os.PathLike | None = None,
                 prepared=None) -> Path:
    """Enhances one LF NIfTI file; writes the HF estimate (and OUT.png); returns the output path.

    Intensities and background: `enhance_lf` (the brain is the voxels > 0, or
    the `mask_path` mask). Geometry: the slice axis is found from the voxel
    sizes (or given); the output has r times as many slices, the input's
    orientation and header codes, and the affine of the slice convention.
    `reference_path`: the HF truth on the output's grid, shown in the figure.
    `prepared`: an `iqt.prepare.pipeline.Prepared` scan of `input_path` to enhance instead.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    _check_output(input_path, output_path)
    volume = prepared.volume if prepared else load_volume(input_path, name="low-field input")
    axis = find_slice_axis(volume.voxel_sizes_mm, slice_axis)
    mask = prepared.mask if prepared else None
    if mask_path is not None and not prepared:
        mask_volume = load_volume(mask_path, name="brain mask")
        check_same_grid(volume, {f"brain mask {mask_path}": mask_volume})
        mask = mask_volume.data > 0
    reorientation = Reorientation.from_affine(volume.affine, axis)
    truth = None if reference_path is None else reorientation.apply(
        load_reference(reference_path, volume, axis, predictor.factor))
    lf = reorientation.apply(volume.data)
    hf = enhance_lf(lf, predictor, None if mask is None else reorientation.apply(mask),
                    name=str(input_path), batch_size=batch_size, tile_lf=tile_lf, progress=progress)
    r = predictor.factor
    save_volume(output_path, reorientation.invert(hf), hf_affine_from_lf(volume.affine, r, slice_axis=axis),
                header=volume.header)
    if figure:
        save_figure(figure_path(output_path), input_path.name, lf, hf, r,
                    reorientation.affine(volume.affine, volume.data.shape), truth)
    return output_path


def _nifti_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(NIFTI_SUFFIXES))
    if not files:
        raise UserError(f"input folder {folder} holds no .nii or .nii.gz file (DICOM files? convert the "
                        f"series with python -m launch.prepare first)")
    return files


def plan_outputs(inputs: list[str], output: str) -> list[tuple[Path, Path]]:
    """(input, output) pairs: one file to OUTPUT, or several files / a folder into the folder OUTPUT."""
    if not inputs:
        raise UserError("no input given: pass --input LF.nii.gz (or several, or a folder)")
    several = len(inputs) > 1 or any(Path(i).is_dir() for i in inputs)
    files = [f for i in inputs for f in (_nifti_files(Path(i)) if Path(i).is_dir() else [Path(i)])]
    output = Path(output)
    if not several:
        target = output / files[0].name if output.is_dir() else output
        _check_output(files[0], target)
        return [(files[0], target)]
    if output.name.endswith(NIFTI_SUFFIXES) or output.is_file():
        raise UserError(f"with several inputs --output must be a folder, not {output}")
    pairs = [(f, output / f.name) for f in files]
    names = [o.name for _, o in pairs]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise UserError(f"several inputs are named {clash[0]}; their outputs would overwrite each other")
    for source, target in pairs:
        _check_output(source, target)
    return pairs


def check_input(path: Path, slice_axis: int | None, mask_path: str | os.PathLike | None = None, *,
                grid=None, allow_spacing_mismatch: bool = False, prepare: bool = False) -> list[str]:
    """Reads an input (and its mask) and finds its slice axis: every user error, before the model loads.

    Returns one-line warnings; `grid` (`iqt.prepare.spacing.TrainingGrid`) checks the voxel sizes.
    """
    from iqt.prepare.infer_hook import check_scan
    volume = load_volume(path, name="low-field input")
    axis = find_slice_axis(volume.voxel_sizes_mm, slice_axis)
    if mask_path is not None:
        check_same_grid(volume, {f"brain mask {mask_path}": load_volume(mask_path, name="brain mask")})
    return check_scan(volume, axis, grid, has_mask=mask_path is not None, prepared=prepare,
                      allow_spacing_mismatch=allow_spacing_mismatch, name=f"input {path}")


def for_each_input(pairs: list[tuple[Path, Path]], work: Callable[[Path, Path], Path]) -> list[Path]:
    """Runs `work(input, output)` on every pair; an input that fails does not stop the others.

    The inputs that failed with a `UserError` are reported together at the end,
    as one `UserError` (so the command exits 2 after writing every good output).
    """
    written, failed = [], []
    for source, target in pairs:
        try:
            written.append(work(source, target))
        except UserError as e:
            if len(pairs) == 1:
                raise
            failed.append(f"{source.name}: {e}")
    if failed:
        raise UserError(f"{len(failed)} of {len(pairs)} inputs failed (the other {len(written)} outputs "
                        f"were written): " + "; ".join(failed))
    return written


def enhance_files(inputs: list[str], output: str, workdir: str | os.PathLike, *, checkpoint: str = "best",
                  slice_axis: int | None = None, mask_path: str | None = None, batch_size: int = 1,
                  tile_lf=DEFAULT_TILE_LF, progress: bool = True, allow_spacing_mismatch: bool = False,
                  prepare: bool = False, sequence: str = "T1w",
                  reference_path: str | None = None) -> list[Path]:
    """`launch.infer`: checks every input, loads the run's network once, enhances each file.

    `prepare`: runs `launch.prepare`'s steps on each input first, in memory (`iqt.prepare.infer_hook`).
    """
    from iqt.prepare import infer_hook
    pairs = plan_outputs(inputs, output)
    if mask_path is not None and len(pairs) > 1:
        raise UserError("--mask applies to a single --input; enhance masked inputs one at a time")
    if reference_path is not None and len(pairs) > 1:
        raise UserError("--reference applies to a single --input; enhance inputs one at a time")
    if reference_path is not None:
        load_volume(reference_path, name="HF reference")   # a clear error before the model loads
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise UserError(f"--batch_size must be a positive integer, got {batch_size!r}")
    tile_lf = check_tile_size(tile_lf)
    grid = infer_hook.training_grid(workdir)
    warnings = [w for source, _ in pairs for w in check_input(
        source, slice_axis, mask_path, grid=grid, allow_spacing_mismatch=allow_spacing_mismatch, prepare=prepare)]
    predictor, _ = load_predictor(workdir, checkpoint)
    infer_hook.warn(warnings)
    return for_each_input(pairs, lambda source, target: enhance_file(
        source, target, predictor, slice_axis=slice_axis, mask_path=mask_path, batch_size=batch_size,
        tile_lf=tile_lf, progress=progress, reference_path=reference_path,
        prepared=infer_hook.prepare_for(source, target, mask_path, grid, slice_axis, sequence,
                                        allow_spacing_mismatch) if prepare else None))
