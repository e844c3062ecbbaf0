"""Evaluate a trained run on simulated low-field data: IQT against interpolation.

    python -m launch.evaluate --workdir RUN [--split test] [--settings mean,snr_low] [--out DIR]

Writes evaluation.csv, evaluation.md and evaluation.png (default RUN/evaluation)
and prints the markdown table (mean ± SD over subjects of PSNR, SSIM, RMSE in
the brain mask, per test setting and method).
"""
from __future__ import annotations

from typing import Sequence

from absl import flags

from pathlib import Path

from iqt import cli, io_utils
from iqt.errors import UserError

_WORKDIR = flags.DEFINE_string("workdir", None, "Training work directory (config.json and checkpoints).")
_SPLIT = flags.DEFINE_string("split", "test", "Held-out split: test, validation, or a dataset split name.")
_SETTINGS = flags.DEFINE_list("settings", "mean,snr_low,snr_high,thick_slices",
                              "Test settings of the simulator (mean, snr_low, snr_high, thin_slices, "
                              "thick_slices).")
_OUT = flags.DEFINE_string("out", None, "Folder for the report (default WORKDIR/evaluation).")
_TILE = flags.DEFINE_list("tile", "272,272,32", "Largest tile X,Y,Z in LF voxels (slices last; a trained "
                         "run's tiles take its training patches' slice count). Memory grows with the "
                         "tile; smaller tiles overlap more (see benchmarks/inference.py).")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "best, latest or a step number.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 1, "Tiles per network call.", lower_bound=1)
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar per volume.")
flags.mark_flag_as_required("workdir")


def main(argv: Sequence[str]) -> None:
    del argv
    out = Path(_WORKDIR.value) / "evaluation" if _OUT.value is None else Path(_OUT.value)
    if not Path(_WORKDIR.value).is_dir():
        raise UserError(f"work directory {_WORKDIR.value} does not exist")
    io_utils.check_output_folder(out, "--out")   # before the model loads and the volumes are enhanced
    from iqt.evaluation import evaluate_run, markdown_table
    table, paths = evaluate_run(_WORKDIR.value, split=_SPLIT.value, settings=_SETTINGS.value,
                                out_dir=_OUT.value, checkpoint=_CHECKPOINT.value,
                                batch_size=_BATCH_SIZE.value, tile_lf=_TILE.value, progress=_PROGRESS.value)
    print(markdown_table(table), end="", flush=True)
    print("wrote " + ", ".join(str(p) for p in paths.values()), flush=True)


if __name__ == "__main__":
    cli.run(main)
