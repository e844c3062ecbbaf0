"""NIfTI in, NIfTI out: `launch.infer`'s files around `iqt.inference.enhance_lf`.

Reads each low-field file, checks it (and its mask) before the model loads,
moves its axes into the library's order (`iqt.orientation`), enhances it and
writes the HF estimate with the input's orientation, header codes and units,
the slice convention's affine, and a figure beside it.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from iqt import figures
from iqt.data.nifti import (MASK_SUFFIX, NIFTI_SUFFIXES, Volume, check_same_grid, find_slice_axis,
                            hf_affine_from_lf, load_volume, nifti_stem, save_volume, voxel_sizes_from_affine)
from iqt.errors import UserError
from iqt.inference import Predictor, enhance_lf
from iqt.dicom_output import DicomTarget, plan_dicom_output, write_dicom_series
from iqt.io_utils import atomic_paths, check_not_inputs, staged_folder
from iqt.interpolation import interpolate_slices
from iqt.orientation import Reorientation
from iqt.tiling import DEFAULT_TILE_LF, check_tile_size
from iqt.tta import augmented, flip_sets

if TYPE_CHECKING:
    from iqt.adaptation import ScanAdaptation


def figure_path(output: str | os.PathLike) -> Path:
    """OUT.nii.gz → OUT.png: where the LF-vs-IQT figure of an output goes."""
    output = Path(output)
    return output.with_name(nifti_stem(output) + ".png")


def _check_output(input_path: Path, output_path: Path) -> None:
    if not output_path.name.endswith(NIFTI_SUFFIXES):
        raise UserError(f"output {output_path} must end in .nii or .nii.gz")
    check_not_inputs({"output": output_path, "output figure": figure_path(output_path)}, [input_path])


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

    hf_mm = np.asarray(voxel_sizes_from_affine(lf_affine)) / [1.0, 1.0, factor]
    cubic = None if truth is None else interpolate_slices(lf, factor, order=3)
    figures.save_enhancement_figure(path, lf, hf, factor, hf_mm, lf_affine, cubic=cubic, truth=truth,
                                    title=f"{name}: LF vs IQT" + (" vs HF truth" if truth is not None else ""))


def enhance_file(input_path: str | os.PathLike, output_path: str | os.PathLike, predictor: Predictor, *,
                 slice_axis: int | None = None, mask_path: str | os.PathLike | None = None,
                 batch_size: int = 1, tile_lf=DEFAULT_TILE_LF, progress: bool = True,
                 figure: bool = True, reference_path: str | os.PathLike | None = None,
                 prepared=None, dicom: DicomTarget | None = None, adapt: "ScanAdaptation | None" = None) -> Path:
    """Enhances one LF NIfTI file; writes the HF estimate (and OUT.png); returns the output path.

    Intensities and background: `enhance_lf` (the brain is the voxels > 0, or
    the `mask_path` mask). Geometry: the slice axis is found from the voxel
    sizes (or given); the output has r times as many slices, the input's
    orientation and header codes, and the affine of the slice convention.
    `reference_path`: the HF truth on the output's grid, shown in the figure.
    `prepared`: an `iqt.prepare.pipeline.Prepared` scan of `input_path` to enhance instead.
    `dicom`: also write the output as a DICOM series derived from its source (`iqt.dicom_output`).
    `adapt`: enhance with the network fine-tuned on this scan (`iqt.adaptation`).
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
    enhance = adapt.enhance if adapt else enhance_lf
    hf = enhance(lf, predictor, None if mask is None else reorientation.apply(mask),
                 name=str(input_path), batch_size=batch_size, tile_lf=tile_lf, progress=progress)
    r = predictor.factor
    outputs = [output_path, figure_path(output_path)] if figure else [output_path]
    hf_volume = Volume(reorientation.invert(hf), hf_affine_from_lf(volume.affine, r, slice_axis=axis),
                       volume.header)
    with atomic_paths(outputs) as temporary, \
            staged_folder(dicom.folder) if dicom else contextlib.nullcontext() as dicom_folder:
        save_volume(temporary[0], hf_volume.data, hf_volume.affine, header=hf_volume.header)
        if dicom:   # every output of the input appears together, or none
            write_dicom_series(hf_volume, axis, dicom_folder, dicom.source, dicom.description(r),
                               dicom.series_number())
        if figure:
            save_figure(temporary[1], input_path.name, lf, hf, r,
                        reorientation.affine(volume.affine, volume.data.shape), truth)
    return output_path


def _is_scan(path: Path) -> bool:
    """A NIfTI file that is not a side file of `launch.prepare` (a brain mask, `SCAN_brainmask.nii.gz`)."""
    stem = nifti_stem(path)
    return path.is_file() and stem is not None and not stem.endswith(MASK_SUFFIX)


def _nifti_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if _is_scan(p))
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


def check_inputs(pairs: list[tuple[Path, Path]], check: Callable[[Path], list[str]]
                 ) -> tuple[list[tuple[Path, Path]], list[str], list[str]]:
    """(the pairs whose input passes `check`, their warnings, the others as 'name: reason').

    A single input's `UserError` is raised as it is; with several, the bad
    ones wait for `for_each_input` to report them after the good ones are done.
    """
    good, warnings, failed = [], [], []
    for source, target in pairs:
        try:
            warnings += check(source)
            good.append((source, target))
        except UserError as e:
            if len(pairs) == 1:
                raise
            failed.append(f"{source.name}: {e}")
    return good, warnings, failed


def for_each_input(pairs: list[tuple[Path, Path]], work: Callable[[Path, Path], object],
                   failed: Sequence[str] = ()) -> list:
    """Runs `work(input, output)` on every pair; an input that fails does not stop the others.

    The inputs that failed with a `UserError`, and those already `failed`
    ('name: reason'), are reported together at the end as one `UserError` (so the
    command exits 2 after writing every good output). Returns what `work` returned.
    """
    done, failed = [], list(failed)
    total = len(pairs) + len(failed)
    for source, target in pairs:
        try:
            done.append(work(source, target))
        except UserError as e:
            if total == 1:
                raise
            failed.append(f"{source.name}: {e}")
    if failed:
        raise UserError(f"{len(failed)} of {total} inputs failed (the other {len(done)} outputs "
                        f"were written): " + "; ".join(failed))
    return done


def enhance_files(inputs: list[str], output: str, workdir: str | os.PathLike, *, checkpoint: str = "best",
                  slice_axis: int | None = None, mask_path: str | None = None, batch_size: int = 1,
                  tile_lf=DEFAULT_TILE_LF, progress: bool = True, allow_spacing_mismatch: bool = False,
                  prepare: bool = False, sequence: str = "T1w", reference_path: str | None = None,
                  backend: str = "jax", threads: int | None = None, precision: str = "auto",
                  factor: int | None = None, output_dicom: str | None = None,
                  dicom_source: str | None = None, adapt_steps: int = 0, tta: str = "none") -> list[Path]:
    """`launch.infer`: checks every input, loads the network once, enhances each file.

    `workdir`: a training run or an exported `.onnx`; `backend`, `threads`, `precision`, `factor`:
    `iqt.export.run_export.open_predictor`. `prepare`: runs `launch.prepare`'s steps
    on each input first, in memory (`iqt.prepare.infer_hook`). `output_dicom`: a new folder for the
    output as a DICOM series derived from `dicom_source` (`iqt.dicom_output.plan_dicom_output`).
    `adapt_steps` > 0: each scan is enhanced by the network fine-tuned on it for that many steps
    (`iqt.adaptation`; a training run only). `tta`: test-time augmentation (`iqt.tta`).
    """
    from iqt.export.run_export import open_predictor, training_grid
    from iqt.prepare import infer_hook
    pairs = plan_outputs(inputs, output)
    if mask_path is not None and len(pairs) > 1:
        raise UserError("--mask applies to a single --input; enhance masked inputs one at a time")
    if reference_path is not None and len(pairs) > 1:
        raise UserError("--reference applies to a single --input; enhance inputs one at a time")
    if output_dicom is not None and len(pairs) > 1:
        raise UserError("--output_dicom applies to a single --input; enhance inputs one at a time")
    dicom = None if output_dicom is None else plan_dicom_output(output_dicom, pairs[0][0], dicom_source)
    if reference_path is not None:
        load_volume(reference_path, name="HF reference")   # a clear error before the model loads
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise UserError(f"--batch_size must be a positive integer, got {batch_size!r}")
    tile_lf = check_tile_size(tile_lf)
    flip_sets(tta)   # an unknown mode fails before the model loads
    if adapt_steps:
        from iqt import adaptation   # JAX, optax and scikit-learn load only for --adapt
        adapt_steps = adaptation.check_steps(adapt_steps, workdir)
    grid = training_grid(workdir)
    pairs, warnings, failed = check_inputs(pairs, lambda source: check_input(
        source, slice_axis, mask_path, grid=grid, allow_spacing_mismatch=allow_spacing_mismatch, prepare=prepare))
    if not pairs:
        for_each_input([], None, failed)   # every input failed its checks: the report, no network loaded
    predictor, backend, precision = open_predictor(workdir, checkpoint, backend, threads=threads,
                                                   precision=precision, factor=factor)
    predictor = augmented(predictor, tta)
    averaged = "" if tta == "none" else f", averaged over its {len(flip_sets(tta))} {tta}"
    print(f"network: {workdir}, run by {backend} in {precision}{averaged}", flush=True)
    adapt = (adaptation.ScanAdaptation(adaptation.Network.from_run(workdir, checkpoint), adapt_steps, sequence, tta)
             if adapt_steps else None)
    infer_hook.warn(warnings)
    return for_each_input(pairs, lambda source, target: enhance_file(
        source, target, predictor, slice_axis=slice_axis, mask_path=mask_path, batch_size=batch_size,
        tile_lf=tile_lf, progress=progress, reference_path=reference_path,
        prepared=infer_hook.prepare_for(source, target, mask_path, grid, slice_axis, sequence,
                                        allow_spacing_mismatch) if prepare else None, dicom=dicom,
        adapt=adapt), failed)
