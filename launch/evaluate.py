"""Evaluate a trained run: IQT against interpolation, on the run's own simulator or on unseen brains and physics.

    python -m launch.evaluate --workdir RUN [--split test] [--settings mean,snr_low] [--metrics both] [--out DIR]
    python -m launch.evaluate --suite generalisation --workdir RUN [--colin27 PATH] [--cases a,b] [--out DIR]
    python -m launch.evaluate --suite generalisation --workdir RUN --adapt 300 --out DIR   # adapted per scan

`--suite generalisation` (iqt.generalisation; docs/generalisation.md) scans an
unseen real brain (Colin27) and the template's test slab with acquisitions the
training simulator does not produce, and writes generalisation.csv, .md, .json
and a figure per brain and case to RUN/generalisation by default.

The default suite, `simulator`:
Writes evaluation.csv, evaluation.md, evaluation.png and one figure per test
subject, <subject>_mean.png (LF | cubic | IQT | HF truth in three planes), to
RUN/evaluation by default, and prints the markdown table: per test setting and
method, n (test volumes) and the mean ± SD over them (the mean alone when n = 1)
of PSNR, SSIM and RMSE in the brain mask ('ours', 'reference' = the published
definitions, or both side by side), of slice-periodic (the share of the error's
power along the slices at the LF slice frequency and its harmonics; white noise
scores about (r - 1) / (n_slices - 1)), of periodic RMSE (the RMS of that periodic
part of the error, in the units of RMSE) and of seam (adjacent-slice differences at
IQT's tile borders against elsewhere, relative to the truth's; 1 = no visible
seam; interpolation is scored at the same borders as a control).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from absl import flags

from iqt import cli, io_utils
from iqt.errors import UserError
from iqt.evaluation import DEFAULT_SETTINGS, SETTINGS
from iqt.generalisation.cases import CASES
from iqt.generalisation.run import BRAINS, evaluate_run
from iqt.tiling import DEFAULT_TILE_LF

SUITES = ("simulator", "generalisation")

_SUITE = flags.DEFINE_enum("suite", "simulator", SUITES,
                           "simulator: the run's own simulator on its held-out split; generalisation: an unseen "
                           "brain (Colin27) and acquisitions the training simulator does not produce.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Training work directory (config.json and checkpoints); with "
                               "--suite generalisation also an exported .onnx file.")
_COLIN27 = flags.DEFINE_string("colin27", None, "generalisation: Colin27's ch2better.nii.gz (default: Debian's "
                               "mricron-data, installed or fetched with apt-get download).")
_CASES = flags.DEFINE_list("cases", ",".join(CASES), "generalisation: acquisition cases "
                           f"({', '.join(CASES)}).")
_BRAINS = flags.DEFINE_list("brains", ",".join(BRAINS), "generalisation: evaluation brains "
                            f"({', '.join(BRAINS)}; the template slab only for 1 mm runs).")
_BACKEND = flags.DEFINE_string("backend", "auto", "generalisation: what runs the network (auto, jax, openvino, "
                               "onnxruntime), as in launch.infer; float32 throughout.")
_ADAPT = flags.DEFINE_integer("adapt", 0, "generalisation: fine-tune the network on each scan for this many "
                              "steps before enhancing it, as launch.infer --adapt does (0: off; a work "
                              "directory only).", lower_bound=0)
_TTA = flags.DEFINE_enum("tta", "none", ["none", "flips"], "generalisation: test-time augmentation, as in "
                         "launch.infer --tta.")
_SPLIT = flags.DEFINE_string("split", "test", "Held-out split: test, validation, or a dataset split name.")
_SETTINGS = flags.DEFINE_list("settings", ",".join(DEFAULT_SETTINGS),
                              f"Test settings of the simulator ({', '.join(SETTINGS)}).")
_OUT = flags.DEFINE_string("out", None, "Folder for the report (default WORKDIR/evaluation, or "
                           "WORKDIR/generalisation).")
_TILE = flags.DEFINE_list("tile", ",".join(map(str, DEFAULT_TILE_LF)), "Largest tile X,Y,Z in LF voxels "
                         "(slices last), as in launch.infer; the seam score is measured at its borders.")
_METRICS = flags.DEFINE_enum("metrics", "ours", ["ours", "reference", "both"],
                             "Image-metric definitions: ours (mask = the brain of the tissue maps; SSIM "
                             "on the estimate as it is, data range of the whole truth), reference (the "
                             "published code's: mask = truth != 0, both volumes masked before SSIM, data "
                             "range of the truth in the mask), or both side by side.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "best, latest or a step number.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 1, "Tiles per network call.", lower_bound=1)
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar per volume.")
flags.mark_flag_as_required("workdir")


def generalisation() -> None:
    """`--suite generalisation`: the benchmark of iqt.generalisation, its table printed."""
    source = Path(_WORKDIR.value)
    if not source.exists():
        raise UserError(f"work directory or network file {source} does not exist")
    home = source.parent if source.is_file() else source    # an .onnx file's folder, or the run
    out = home / "generalisation" if _OUT.value is None else Path(_OUT.value)
    io_utils.check_output_folder(out, "--out")
    _, paths = evaluate_run(source, out_dir=out, case_names=_CASES.value, brain_names=_BRAINS.value,
                                colin27=_COLIN27.value, checkpoint=_CHECKPOINT.value, backend=_BACKEND.value,
                                tile_lf=_TILE.value, adapt_steps=_ADAPT.value, tta=_TTA.value,
                                progress=lambda line: print(line, flush=True))
    print(paths["markdown"].read_text(), end="", flush=True)
    print("wrote " + ", ".join(str(p) for p in paths.values()), flush=True)


def main(argv: Sequence[str]) -> None:
    del argv
    if _SUITE.value == "generalisation":
        return generalisation()
    if _ADAPT.value or _TTA.value != "none":
        raise UserError("--adapt and --tta apply to --suite generalisation (and to launch.infer)")
    out = Path(_WORKDIR.value) / "evaluation" if _OUT.value is None else Path(_OUT.value)
    if not Path(_WORKDIR.value).is_dir():
        raise UserError(f"work directory {_WORKDIR.value} does not exist")
    io_utils.check_output_folder(out, "--out")   # before the model loads and the volumes are enhanced
    from iqt.evaluation import evaluate_run
    from iqt.evaluation_report import markdown_table
    table, paths = evaluate_run(_WORKDIR.value, split=_SPLIT.value, settings=_SETTINGS.value,
                                out_dir=_OUT.value, checkpoint=_CHECKPOINT.value,
                                batch_size=_BATCH_SIZE.value, tile_lf=_TILE.value, metric_set=_METRICS.value,
                                progress=_PROGRESS.value)
    print(markdown_table(table), end="", flush=True)
    print("wrote " + ", ".join(str(p) for p in paths.values()), flush=True)


if __name__ == "__main__":
    cli.run(main)
