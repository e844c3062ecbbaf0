"""Export a trained network for CPU runtimes: one self-contained ONNX file.

    python -m launch.export --workdir RUN [--checkpoint best|latest|STEP] --format onnx --output MODEL.onnx \
        [--overwrite]

The file holds the network in inference mode (BatchNorm folded into the
convolutions; batch, tile size and slice count dynamic) and, as metadata, the
run's config, factor, input multiple, intensity rule and training voxel sizes,
so that `python -m launch.infer --model MODEL.onnx ...` needs nothing else.
Needs the `cpu` extra (pip install 'stochastic-iqt[cpu]').
"""
from __future__ import annotations

import os
from typing import Sequence

from absl import flags

from iqt import cli, io_utils

_WORKDIR = flags.DEFINE_string("workdir", None, "Training work directory (config.json and checkpoints).")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "best, latest or a step number.")
_FORMAT = flags.DEFINE_enum("format", "onnx", ["onnx"], "Export format.")
_OUTPUT = flags.DEFINE_string("output", None, "The .onnx file to write.")
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Replace an existing --output file.")
flags.mark_flags_as_required(["workdir", "output"])


def main(argv: Sequence[str]) -> None:
    del argv
    from iqt.errors import UserError
    from iqt.export import backends

    if not _OUTPUT.value.endswith(".onnx"):
        raise UserError(f"--output must end in .onnx, got {_OUTPUT.value}")
    io_utils.check_output_file(_OUTPUT.value, "--output")
    io_utils.check_not_inputs({"--output": _OUTPUT.value}, [])
    if os.path.lexists(_OUTPUT.value) and not _OVERWRITE.value:
        raise UserError(f"--output {_OUTPUT.value} exists; pass --overwrite to replace it")
    backends.runtime("onnx")
    from iqt.export.run_export import export_onnx
    path = export_onnx(_WORKDIR.value, _OUTPUT.value, _CHECKPOINT.value)
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    cli.run(main)
