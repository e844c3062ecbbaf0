"""Enhance low-field scans with a trained run: NIfTI in, NIfTI (and a PNG) out.

    python -m launch.infer --workdir RUN --input LF.nii.gz --output OUT.nii.gz
    python -m launch.infer --workdir RUN --input DIR_OR_FILE [--input ...] --output OUT_DIR
    python -m launch.infer --model MODEL.onnx --input LF.nii.gz --output OUT.nii.gz   # launch.export's file

--backend auto (the default) runs JAX on an accelerator and, on a CPU, the
fastest of the installed runtimes (JAX, OpenVINO, onnxruntime; not JAX for a
.onnx file), timed once on the machine and remembered (iqt.export.backend_choice).
--precision auto (the default) computes in bfloat16 where OpenVINO does so natively,
else in float32.

The output has r times as many slices, the input's orientation, header codes
and intensity units; OUT.png beside it shows LF and IQT in three planes, or,
with --reference HF.nii.gz (the HF truth on the output's grid), LF, cubic-spline
interpolation along the slices, IQT and the truth, in the truth's intensity window.
--output_dicom DIR also writes it as a DICOM series for PACS, derived from the source
series (--dicom_source FOLDER, or the one launch.prepare's report beside the input names).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from absl import flags

from iqt import cli, io_utils
from iqt.data import nifti
from iqt.export.backends import BACKENDS, PRECISIONS
from iqt.prepare.pipeline import SEQUENCES
from iqt.tiling import DEFAULT_TILE_LF

_WORKDIR = flags.DEFINE_string("workdir", None, "Training work directory (config.json and checkpoints).")
_MODEL = flags.DEFINE_string("model", None, "An exported network (python -m launch.export), instead of "
                             "--workdir (which also accepts a .onnx file).")
_BACKEND = flags.DEFINE_enum("backend", "auto", list(BACKENDS),
                             "Runtime of the network: auto = JAX on an accelerator, else the fastest installed "
                             "CPU runtime, timed once per machine and network on a probe tile and remembered "
                             "($IQT_CPU_BACKEND=NAME skips the timing); openvino and onnxruntime need "
                             "pip install 'stochastic-iqt[cpu]'.")
_THREADS = flags.DEFINE_integer("threads", None, "CPU threads of openvino/onnxruntime (default: all cores).",
                                lower_bound=1)
_PRECISION = flags.DEFINE_enum("precision", "auto", list(PRECISIONS),
                               "Arithmetic of the network: auto = bfloat16 where OpenVINO computes it natively "
                               "(AMX or AVX512_BF16: 3.2-3.9x faster, within 0.3% RMS of float32, "
                               "benchmarks/README.md), else float32; float32 agrees with JAX to 1e-5; "
                               "bfloat16 runs with OpenVINO only.")
_FACTOR = flags.DEFINE_integer("factor", None, "The upsampling factor expected: refuse a network of another.",
                               lower_bound=2)
_INPUT = flags.DEFINE_multi_string("input", None,
                                   "Low-field NIfTI file or folder of them; repeat for several.")
_OUTPUT = flags.DEFINE_string("output", None, "Output .nii/.nii.gz file (one input) or folder (several).")
_SLICE_AXIS = flags.DEFINE_integer("slice_axis", None, "Array axis (0, 1 or 2) the slices are stacked "
                                   "along; detected from the voxel sizes when not given.",
                                   lower_bound=0, upper_bound=2)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 1, "Tiles per network call.", lower_bound=1)
_MASK = flags.DEFINE_string("mask", None, "Brain mask on the input's grid (non-zero = brain); "
                            "default: the voxels above 0 of a skull-stripped input.")
_TILE = flags.DEFINE_list("tile", ",".join(map(str, DEFAULT_TILE_LF)), "Largest tile X,Y,Z in LF voxels "
                         "(slices last). Memory grows with the tile; smaller tiles overlap more (see "
                         "benchmarks/inference.py); the output does not depend on it.")
_REFERENCE = flags.DEFINE_string("reference", None, "Optional HF truth on the output's grid (one --input): "
                                 "OUT.png then shows LF | cubic | IQT | truth.")
_OUTPUT_DICOM = flags.DEFINE_string("output_dicom", None, "Also write the output as a new DICOM series in this "
                                     "(new or empty) folder, derived from the source series (for PACS).")
_DICOM_SOURCE = flags.DEFINE_string("dicom_source", None, "The source DICOM series' folder for --output_dicom "
                                    "(default: the series launch.prepare's report beside the input names).")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "best, latest or a step number.")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar.")
_ALLOW = flags.DEFINE_boolean("allow_spacing_mismatch", False, "Warn, instead of refusing, when the voxel "
                              "sizes are more than 15% away from the run's training voxels and slice spacing.")
_PREPARE = flags.DEFINE_boolean("prepare", False, "Run launch.prepare's steps (N4, brain extraction, "
                                "cross-talk for T1w, in-plane resampling) first, in memory; their JSON "
                                "goes beside the output as OUT_prepare.json.")
_SEQUENCE = flags.DEFINE_enum("sequence", "T1w", list(SEQUENCES), "The input's contrast (for --prepare and "
                              "--adapt).")
_TTA = flags.DEFINE_enum("tta", "none", ["none", "flips"], "Test-time augmentation: flips = every tile predicted "
                         "under the 8 flips along x, y and the slices that training used, flipped back and "
                         "averaged (8x the network's work; iqt.tta).")
_ADAPT = flags.DEFINE_integer("adapt", 0, "Fine-tune the network on each scan for this many steps before "
                              "enhancing it (iqt.adaptation, after SMORE: the scan's own in-plane detail "
                              "teaches the slice axis); 0: off. Needs --workdir. The demo: 300 steps, about "
                              "2-4.5 minutes per scan on 2 CPU cores.", lower_bound=0)
flags.mark_flags_as_required(["input", "output"])


def main(argv: Sequence[str]) -> None:
    del argv
    source = _network_source()
    _check_output(_OUTPUT.value, _INPUT.value or [])
    from iqt.infer_files import enhance_files, figure_path
    outputs = enhance_files(_INPUT.value, _OUTPUT.value, source, checkpoint=_CHECKPOINT.value,
                            slice_axis=_SLICE_AXIS.value, mask_path=_MASK.value,
                            batch_size=_BATCH_SIZE.value, tile_lf=_TILE.value, progress=_PROGRESS.value,
                            reference_path=_REFERENCE.value,
                            allow_spacing_mismatch=_ALLOW.value, prepare=_PREPARE.value,
                            sequence=_SEQUENCE.value, backend=_BACKEND.value, threads=_THREADS.value,
                            precision=_PRECISION.value, factor=_FACTOR.value, output_dicom=_OUTPUT_DICOM.value,
                            dicom_source=_DICOM_SOURCE.value, adapt_steps=_ADAPT.value,
                            tta=_TTA.value)
    for path in outputs:
        print(f"wrote {path} and {figure_path(path)}", flush=True)
    if _OUTPUT_DICOM.value:
        print(f"wrote the DICOM series {_OUTPUT_DICOM.value}", flush=True)


def _network_source() -> str:
    """--workdir RUN (or a .onnx) or --model MODEL.onnx: exactly one."""
    from iqt.errors import UserError
    if (_WORKDIR.value is None) == (_MODEL.value is None):
        raise UserError("give the network with exactly one of --workdir RUN and --model MODEL.onnx")
    return _WORKDIR.value or _MODEL.value


def _check_output(output: str, inputs: list[str]) -> None:
    """Before the model loads: the output file (one input) or folder (several) can be written."""
    several = len(inputs) > 1 or any(Path(i).is_dir() for i in inputs)
    if several or Path(output).is_dir():
        io_utils.check_output_folder(output, "--output")
    else:
        nifti.check_nifti_output(output, "--output", {"--input": inputs[0] if inputs else None,
                                                      "--mask": _MASK.value})


if __name__ == "__main__":
    cli.run(main)
