"""Probe (exploratory): variants of `iqt.adaptation` on a few benchmark cases of one run.

    PYTHONPATH=. .venv/bin/python benchmarks/adapt_probe.py --workdir runs/levers_bncal/baseline/seed0 \\
        --out runs/probes/adapt --cases rect_gap --min_fraction 0.5 --adapt_seed 1
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import command_line, emit  # noqa: E402
from iqt import adaptation, config_io  # noqa: E402
from iqt.generalisation import benchmark, cases, report  # noqa: E402
from iqt.generalisation.run import load_brains, upsampling_periods  # noqa: E402
from iqt.inference import load_predictor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--cases", default="rect_gap")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=adaptation.LEARNING_RATE)
    parser.add_argument("--adapt_seed", type=int, default=0)
    parser.add_argument("--min_fraction", type=float, default=None)
    parser.add_argument("--no_restore", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    config = config_io.load_config(args.workdir)
    if args.min_fraction is not None:
        adaptation.MIN_BRAIN_FRACTION = args.min_fraction
    network = adaptation.Network.from_run(args.workdir, "best", config)
    predictor, _ = load_predictor(args.workdir)
    if args.no_restore:
        adaptation.intensity_fit = lambda adapted, reference: (1.0, 0.0)
    factor = int(config.sim.factor)
    table = benchmark.run(load_brains(["colin27"], float(config.sim.hf_voxel_mm), None),
                          cases.select_cases(args.cases.split(",")), factor,
                          lambda lf, mask: adaptation.enhance_adapted(
                              lf, predictor, network, args.steps, mask=mask, learning_rate=args.lr,
                              seed=args.adapt_seed, progress=False, report=print),
                          upsampling_periods(config.model, factor), figure_dir=args.out, progress=print)
    report.write_report(table, args.out, {"source": args.workdir, "probe": vars(args)})
    emit({"command": command_line(sys.argv), "results": report.comparison(table).to_dict(orient="records")},
         args.json or str(Path(args.out) / "probe.json"))


if __name__ == "__main__":
    main()
