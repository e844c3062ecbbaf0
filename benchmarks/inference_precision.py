"""OpenVINO in bfloat16 against float32 on a trained run: speed, and what it does to the image.

    PYTHONPATH=. .venv/bin/python benchmarks/inference_precision.py --workdir runs/demo \
        --out benchmarks/results/inference_precision_cpu.json

The run's network (its `best` checkpoint, exported in memory as `launch.infer
--backend openvino` does) enhances the run's held-out split in every test setting of
`iqt.evaluation`, once per precision, through `iqt.evaluation.evaluate`: the same
simulated LF volumes, the same tiling. Reported per precision: the seconds spent in the
network (the first call, which compiles, apart), and IQT's PSNR and SSIM against the HF
truth per setting; between the two: the largest and the RMS difference of the enhanced
volumes, relative to the float32 volume's largest and RMS value. The CPU's model and its
bfloat16 support (AMX, AVX512_BF16) are recorded: without them OpenVINO computes float32.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import command_line, emit  # noqa: E402
from iqt.export.backend_choice import cpu_description  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True, help="a training run (config.json and checkpoints)")
    p.add_argument("--checkpoint", default="best")
    p.add_argument("--out", default="")
    return p.parse_args(argv)


def enhance_all(workdir: str, checkpoint: str, precision: str) -> tuple[dict, list[np.ndarray]]:
    """IQT's metrics per setting, the network's seconds, and every enhanced volume, in order."""
    from iqt import config_io, evaluation
    from iqt.data import splits
    from iqt.export.run_export import open_predictor
    from iqt.inference import enhance_lf

    config = config_io.load_config(workdir)
    predictor, _, _ = open_predictor(workdir, checkpoint, "openvino", precision=precision)
    subjects = splits.load_split_subjects(config.data, config.data.test_split)
    volumes, seconds = [], []

    def enhance(lf: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        volumes.append(enhance_lf(lf, predictor, progress=False))
        seconds.append(time.perf_counter() - start)
        return volumes[-1]

    table = evaluation.evaluate(subjects, enhance, config.sim, seed=int(config.seed))
    iqt = table[table["method"] == "IQT"].groupby("setting")[["psnr", "ssim"]].mean()
    return {"network_seconds_after_the_first_call": round(sum(seconds[1:]), 2),
            "first_call_s": round(seconds[0], 2), "volumes": len(volumes),
            "iqt": {s: {m: round(float(v), 4) for m, v in row.items()} for s, row in iqt.iterrows()}}, volumes


def main(argv=None) -> dict:
    args = parse_args(argv)
    runs, volumes = {}, {}
    for precision in ("float32", "bfloat16"):
        runs[precision], volumes[precision] = enhance_all(args.workdir, args.checkpoint, precision)
    f32, bf16 = (np.concatenate([v.ravel() for v in volumes[p]]) for p in ("float32", "bfloat16"))
    difference = bf16 - f32
    result = {"benchmark": "inference_precision",
              "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": command_line(sys.argv), "cpu": cpu_description(),
              "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()], "runs": runs,
              "max_abs_difference_over_max": float(np.abs(difference).max() / np.abs(f32).max()),
              "rms_difference_over_rms": float(np.sqrt(np.mean(difference ** 2) / np.mean(f32 ** 2))),
              "speed_up": round(runs["float32"]["network_seconds_after_the_first_call"]
                                / runs["bfloat16"]["network_seconds_after_the_first_call"], 2)}
    return emit(result, args.out)


if __name__ == "__main__":
    main()
