"""Probe: a trained run's BatchNorm statistics re-measured on large simulated training patches,
then the generalisation benchmark at the default tiles, before and after (no retraining).

    PYTHONPATH=. .venv/bin/python benchmarks/bn_calibration_probe.py --workdir runs/levers/baseline/seed1 \\
        --out runs/probes/bn_seed1 --cases rect_gap,sinc_snr20,clinic

The calibration is `iqt.bn_calibration`'s (what training now does at each validation), on
`--patches` patches of `--patch_hf` HF voxels from the run's training split. It tells whether a
network's texture on an unseen brain comes from statistics measured on small patches. About 3
minutes on 2 CPU cores for three cases; JSON on stdout (or --json).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import jax.numpy as jnp  # noqa: E402

import simulators  # noqa: E402
from benchmarks.common import command_line, emit  # noqa: E402
from iqt import bn_calibration, config_io, parallel  # noqa: E402
from iqt.generalisation import benchmark, cases, report  # noqa: E402
from iqt.generalisation.run import load_brains, upsampling_periods  # noqa: E402
from iqt.inference import Predictor, enhance_lf, make_predict_fn, restore_variables  # noqa: E402
from iqt.models import create_model, input_multiple  # noqa: E402
from iqt.train_step import TrainState  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--cases", default="rect_gap,sinc_snr20,clinic")
    parser.add_argument("--patch_hf", default="96,96,48")
    parser.add_argument("--patches", type=int, default=16)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    run, out = Path(args.workdir), Path(args.out)
    config = config_io.load_config(run)
    config.train.bn_calibration_patch_hf = tuple(int(n) for n in args.patch_hf.split(","))
    config.train.bn_calibration_patches = args.patches
    factor = int(config.sim.factor)
    model = create_model(config.model, factor)
    variables = restore_variables(run, "best", config, model)
    spec = simulators.SimulatorSpec.from_config(config.sim)
    lf = bn_calibration.calibration_lf(config, parallel.make_mesh(), spec, config.train.get("prng_impl",
                                                                                        "threefry2x32"))
    state = TrainState(jnp.int32(0), variables["params"], variables["batch_stats"], None, jnp.int32(0))
    calibrated = bn_calibration.make_calibrate(model, lf, int(config.train.batch_size))(state)
    results = {}
    for name, stats in (("original", state.batch_stats), ("calibrated", calibrated.batch_stats)):
        predictor = Predictor(make_predict_fn(model, {"params": state.params, "batch_stats": stats}), factor,
                              input_multiple(config.model, factor))
        table = benchmark.run(load_brains(["colin27"], float(config.sim.hf_voxel_mm), None),
                              cases.select_cases(args.cases.split(",")), factor,
                              lambda x, brain: enhance_lf(x, predictor, brain, progress=False),
                              upsampling_periods(config.model, factor), figure_dir=out / name,
                              progress=lambda line: None)
        report.write_report(table, out / name, {"source": str(run), "batchnorm": name})
        results[name] = report.comparison(table).to_dict(orient="records")
        print((out / name / "generalisation.md").read_text(), flush=True)
    emit({"command": command_line(sys.argv), "results": results}, args.json)


if __name__ == "__main__":
    main()
