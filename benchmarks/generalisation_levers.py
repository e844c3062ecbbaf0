"""What makes the demo generalise: each lever trained and measured on the generalisation benchmark.

    PYTHONPATH=. .venv/bin/python benchmarks/generalisation_levers.py --levers baseline,physics --seeds 0,1,2 \\
        --root runs/levers --out benchmarks/results/generalisation_levers.json

Every (lever, seed) trains `launch/configs/demo.py` with the lever's overrides
into ROOT/<lever>/seed<k> (a finished or interrupted run resumes), then runs
`launch.evaluate --suite generalisation` on it. The JSON holds, per lever and
seed, IQT's gain over cubic splines in every (brain, case) of the benchmark and
the training's wall time; per lever and (brain, case), the range over seeds. The
seed is the unit: n is the number of seeds, and no test pools cases or brains.
One (lever, seed) takes about 10-15 minutes on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import command_line, emit  # noqa: E402

# The training simulator's SNR pair scaled by 0.6 with twice its spread: the same mean contrast
# (the pair's ratio), noise from the published 0.36 T level down to about a third of it.
_NOISIER_SNR = ("--config.sim.snr.mean=(38.7,32.48)",
                "--config.sim.snr.covariance=((113.0,103.0),(103.0,106.4))")
LEVERS = {
    "baseline": (),
    # BatchNorm statistics left as training's small patches made them (the demo before it calibrated them)
    "no_bn_calibration": ("--config.train.bn_calibration_patch_hf=()",),
    "deterministic": ("--config.sim.deterministic=true",),
    "physics": ("--config.sim.slice_profile=rect_gaussian",
                "--config.sim.parameters.slice_edge_fwhm_mm.distribution=uniform",
                "--config.sim.parameters.slice_edge_fwhm_mm.low=0.5",
                "--config.sim.parameters.slice_edge_fwhm_mm.high=3.0",
                "--config.sim.parameters.slice_thickness_fraction.low=0.6",
                "--config.sim.parameters.slice_thickness_fraction.high=1.0",
                "--config.sim.noise=rician", *_NOISIER_SNR,
                *(f"--config.sim.parameters.bias_{a}.{k}={v}" for a in "xyz"
                  for k, v in (("distribution", "uniform"), ("low", -0.15), ("high", 0.15))),
                "--config.sim.parameters.gamma.distribution=uniform",
                "--config.sim.parameters.gamma.low=0.8", "--config.sim.parameters.gamma.high=1.25"),
    "spatial": ("--config.data.spatial_augment.enabled=true",),
    "resize_conv": ("--config.model.upsample=resize_conv",),
    # The same voxels per run in patches twice as wide along x (the template's 32-voxel validation
    # slab bounds y): more context, half the batch.
    "wide_patch": ("--config.data.patch_size_hf=(48,24,48)", "--config.train.batch_size=4"),
}


def lever_overrides(spec: str) -> tuple[str, ...]:
    """A lever's overrides; 'a+b' combines levers."""
    return tuple(flag for name in spec.split("+") for flag in LEVERS[name])


def inference_suffix(adapt: int = 0, tta: str = "none") -> str:
    """How a lever's network was run, as a name suffix: '' (plain), '+adapt<N>', '+tta_<mode>' or both."""
    return (f"+adapt{adapt}" if adapt else "") + (f"+tta_{tta}" if tta != "none" else "")


def report_dir(tile: str | None, adapt: int = 0, tta: str = "none") -> str:
    """The benchmark's folder inside a run: `generalisation`, with `_adapt<N>` (adapted to each scan for
    N steps), `_tta_<mode>` (test-time augmentation) and `_tile<X>` (at tiles X,Y,Z) as they apply."""
    suffix = inference_suffix(adapt, tta).replace("+", "_")
    return "generalisation" + suffix + ("" if tile is None else f"_tile{tile.split(',')[0]}")


def run_one(lever: str, seed: int, root: Path, python: str, tile: str | None = None, adapt: int = 0,
            tta: str = "none", brains: str | None = None) -> dict:
    """Trains (or resumes) and benchmarks one (lever, seed) (at `tile`, X,Y,Z LF voxels, if given;
    adapted to each scan for `adapt` steps; with test-time augmentation `tta`; on `brains`, default
    all); returns its record, its lever named with `inference_suffix`."""
    workdir = root / lever / f"seed{seed}"
    report = workdir / report_dir(tile, adapt, tta) / "generalisation.json"
    timing = workdir / "train_seconds.json"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    if not timing.exists():
        start = time.perf_counter()
        subprocess.run([python, "-m", "launch.train", "--config", "launch/configs/demo.py", "--workdir",
                        str(workdir), f"--config.seed={seed}", "--config.train.progress_bar=false",
                        *lever_overrides(lever)], check=True, env=env)
        timing.write_text(json.dumps({"train_seconds": time.perf_counter() - start}))
    if not report.exists():
        options = ["--out", str(report.parent), *(["--tile", tile] if tile else []),
                   *(["--adapt", str(adapt)] if adapt else []), *(["--tta", tta] if tta != "none" else []),
                   *(["--brains", brains] if brains else [])]
        subprocess.run([python, "-m", "launch.evaluate", "--suite", "generalisation", "--workdir", str(workdir),
                        *options], check=True, env=env, stdout=subprocess.DEVNULL)
    record = json.loads(report.read_text())
    gains = {f"{r['brain']}/{r['case']}": {k: r[k] for k in ("gain_psnr_fit", "gain_ssim", "gain_psnr",
                                                             "texture_ratio", "periodic_ratio", "goals_met")}
             for r in record["comparison"]}
    return {"lever": lever + inference_suffix(adapt, tta), "base_lever": lever, "seed": seed,
            "tile": tile or "default", "adapt_steps": adapt, "tta": tta, "overrides": list(lever_overrides(lever)),
            "gains": gains,
            "all_goals_met": record["all_goals_met"], **json.loads(timing.read_text())}


def ranges(runs: list[dict]) -> dict:
    """Per lever and (brain, case): min and max over seeds of each gain, and n (seeds)."""
    out = {}
    for lever in dict.fromkeys(r["lever"] for r in runs):
        mine = [r for r in runs if r["lever"] == lever]
        out[lever] = {case: {"n_seeds": len(mine), **{
            key: [min(r["gains"][case][key] for r in mine), max(r["gains"][case][key] for r in mine)]
            for key in ("gain_psnr_fit", "gain_ssim", "gain_psnr", "texture_ratio", "periodic_ratio")}}
            for case in mine[0]["gains"]}
    return out


def summary(runs: list[dict]) -> dict:
    """Per lever and brain, the range over seeds of: the worst case's and the mean case's PSNR gain after
    the fit, the worst SSIM gain, the largest texture and periodic ratios (a seed's number summarises
    that seed's cases; the range is over seeds, the unit)."""
    out = {}
    for lever in dict.fromkeys(r["lever"] for r in runs):
        mine = [r for r in runs if r["lever"] == lever]
        for brain in dict.fromkeys(c.split("/")[0] for c in mine[0]["gains"]):
            per_seed = []
            for r in mine:
                g = [v for c, v in r["gains"].items() if c.startswith(brain + "/")]
                per_seed.append({"worst_gain_psnr_fit": min(v["gain_psnr_fit"] for v in g),
                                 "mean_gain_psnr_fit": sum(v["gain_psnr_fit"] for v in g) / len(g),
                                 "worst_gain_ssim": min(v["gain_ssim"] for v in g),
                                 "worst_gain_psnr": min(v["gain_psnr"] for v in g),
                                 "max_texture_ratio": max(v["texture_ratio"] for v in g),
                                 "max_periodic_ratio": max(v["periodic_ratio"] for v in g)})
            out.setdefault(lever, {})[brain] = {"n_seeds": len(mine), **{
                k: [min(p[k] for p in per_seed), max(p[k] for p in per_seed)] for k in per_seed[0]}}
    return out


def _seed_numbers(run: dict, brain: str) -> dict:
    gains = [v for c, v in run["gains"].items() if c.startswith(brain + "/")]
    return {"mean_gain_psnr_fit": sum(v["gain_psnr_fit"] for v in gains) / len(gains),
            "worst_gain_psnr_fit": min(v["gain_psnr_fit"] for v in gains)}


def paired(runs: list[dict], reference: str = "baseline") -> dict:
    """Per lever, brain and seed: the lever's per-seed number minus its reference's on the same seed
    (a lever adapted to each scan or run with test-time augmentation is compared with the same lever
    run plainly, any other with `reference`; the seed is the unit; n = the seeds both have)."""
    out = {}
    for run in runs:
        plain = run.get("base_lever", run["lever"])   # the lever trained, without how it was run
        base = plain if plain != run["lever"] else reference
        twin = next((r for r in runs if r["lever"] == base and r["seed"] == run["seed"]), None)
        if run["lever"] == base or twin is None:
            continue
        theirs_brains = {c.split("/")[0] for c in twin["gains"]}
        for brain in [b for b in dict.fromkeys(c.split("/")[0] for c in run["gains"]) if b in theirs_brains]:
            mine, theirs = _seed_numbers(run, brain), _seed_numbers(twin, brain)
            out.setdefault(run["lever"], {}).setdefault(brain, {})[str(run["seed"])] = {
                f"difference_{k}": mine[k] - theirs[k] for k in mine}
    return out


def markdown(summarised: dict) -> str:
    """The lever table: one row per lever and brain, each cell the range over seeds."""
    keys = ("worst_gain_psnr_fit", "mean_gain_psnr_fit", "worst_gain_ssim", "worst_gain_psnr",
            "max_texture_ratio", "max_periodic_ratio")
    lines = ["| lever | brain | seeds | " + " | ".join(keys) + " |", "| --- | --- | ---: |" + " ---: |" * len(keys)]
    for lever, brains in summarised.items():
        for brain, s in brains.items():
            cells = [f"{s[k][0]:+.3f}" if s[k][0] == s[k][1] else f"{s[k][0]:+.3f} … {s[k][1]:+.3f}" for k in keys]
            lines.append(f"| {lever} | {brain} | {s['n_seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levers", default="baseline,physics,spatial,resize_conv",
                        help=f"comma-separated; '+' combines ({', '.join(LEVERS)})")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--root", default="runs/levers")
    parser.add_argument("--out", default=None)
    parser.add_argument("--tile", default=None, help="enhance with tiles of at most X,Y,Z LF voxels "
                        "(default: launch.evaluate's); the report goes to generalisation_tile<X>")
    parser.add_argument("--adapt", default="0", help="comma-separated steps of adaptation to each scan "
                        "(launch.evaluate --adapt; 0: none); the report goes to generalisation_adapt<N>")
    parser.add_argument("--tta", default="none", help="comma-separated test-time augmentations (launch.evaluate "
                        "--tta: none, flips); the report goes to generalisation_tta_<mode>")
    parser.add_argument("--brains", default=None, help="launch.evaluate's --brains (default: all)")
    parser.add_argument("--existing_only", action="store_true",
                        help="collect the finished (lever, seed) runs only; train and evaluate nothing")
    args = parser.parse_args()
    levers, root = args.levers.split(","), Path(args.root)
    for lever in levers:
        lever_overrides(lever)   # an unknown name fails before anything trains
    jobs = [(lever, int(seed), int(adapt), tta) for adapt in args.adapt.split(",") for tta in args.tta.split(",")
            for lever in levers for seed in args.seeds.split(",")]
    if args.existing_only:
        jobs = [job for job in jobs if (root / job[0] / f"seed{job[1]}" / report_dir(args.tile, *job[2:])
                                        / "generalisation.json").exists()]
    runs = [run_one(lever, seed, root, sys.executable, args.tile, adapt, tta, args.brains)
            for lever, seed, adapt, tta in jobs]
    summarised = summary(runs)
    emit({"command": command_line(sys.argv), "summary": summarised, "paired_with_baseline": paired(runs),
          "runs": runs, "ranges": ranges(runs)}, args.out)
    print(markdown(summarised), flush=True)


if __name__ == "__main__":
    main()
