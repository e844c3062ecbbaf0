"""The demo's image quality and wall time, in one JSON: IQT against interpolation, artefacts, tiles.

    PYTHONPATH=. .venv/bin/python benchmarks/demo_quality.py --out benchmarks/results/demo_quality.json
    PYTHONPATH=. .venv/bin/python benchmarks/demo_quality.py --workdir runs/demo --out ...   # no re-run

Without --workdir, runs the README's first command (`bash scripts/demo.sh`) into a
fresh work directory and times it (wall and CPU seconds of the whole command,
set-up included). Then, from the run's `evaluation/evaluation.csv`: the mean of
every metric per test setting and method, IQT's margin over cubic-spline
interpolation and the goals of the demo (IQT ≥ cubic + 1 dB PSNR, higher SSIM,
lower RMSE, less slice-periodic error, in every setting). Last, tile invariance:
the test slab's 'mean' setting enhanced with tiles of 4, 8 and 16 LF slices and
1 slice of margin (PSNR spread, seam score at their hand-overs, overlap waste;
a tile is grown to what the network's input multiple allows, and the size used
is reported).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import emit  # noqa: E402

GOALS = {"psnr_margin_db": 1.0, "max_wall_s": 720.0, "seam_vs_truth": 1.2, "tile_psnr_spread_db": 0.3}


def run_demo(workdir: Path) -> dict:
    """`bash scripts/demo.sh` into `workdir`: wall seconds and the children's CPU seconds."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    result = subprocess.run(["bash", "scripts/demo.sh"], cwd=ROOT, env={**os.environ, "WORKDIR": str(workdir)},
                            capture_output=True, text=True)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"error: the demo failed: {result.stderr.strip().splitlines()[-1:]}")
    return {"wall_s": round(wall, 1), "cpu_s": round(after.ru_utime + after.ru_stime
                                                     - before.ru_utime - before.ru_stime, 1)}


def quality_table(workdir: Path) -> dict:
    """Mean of each metric per setting and method, IQT's margins over cubic, and the goals met."""
    import pandas as pd

    table = pd.read_csv(workdir / "evaluation" / "evaluation.csv")
    metrics = [c for c in table.columns if c not in ("subject", "setting", "method")]
    means = table.groupby(["setting", "method"], sort=False)[metrics].mean()
    out = {"n_subjects": int(table["subject"].nunique()), "settings": {}}
    for setting in dict.fromkeys(table["setting"]):
        rows = {m: {k: round(float(v), 5) for k, v in means.loc[(setting, m)].items() if v == v}
                for m in dict.fromkeys(table["method"])}
        iqt, cubic = rows["IQT"], rows["cubic"]
        goals = {"psnr_plus_1db": iqt["psnr"] - cubic["psnr"] >= GOALS["psnr_margin_db"],
                 "ssim_higher": iqt["ssim"] > cubic["ssim"], "rmse_lower": iqt["rmse"] < cubic["rmse"],
                 "periodic_rmse_lower": iqt["periodic_rmse"] < cubic["periodic_rmse"]}
        out["settings"][setting] = {"methods": rows, "iqt_minus_cubic_psnr_db": round(iqt["psnr"] - cubic["psnr"], 3),
                                    "goals_met": goals}
    out["all_goals_met"] = all(all(s["goals_met"].values()) for s in out["settings"].values())
    return out


def tile_invariance(workdir: Path) -> dict:
    """The test slab ('mean' setting) enhanced with tiles of 4, 8 and 16 LF slices."""
    import numpy as np

    import simulators
    from iqt import evaluation, inference, metrics
    from iqt.data import splits
    from iqt.tiling import DEFAULT_MARGIN_LF, DEFAULT_TILE_LF

    predictor, config = inference.load_predictor(workdir, "best")
    subject = splits.load_split_subjects(config.data, config.data.test_split)[0]
    sim = evaluation.setting_config("mean", config.sim)
    lf = np.asarray(simulators.simulate_volume(
        evaluation.setting_key(int(config.seed), "mean", subject.subject_id), subject.image, subject.tissue,
        evaluation.setting_parameters(sim), sim, tissue_means=subject.tissue_means))
    truth = simulators.hf_object(subject.image, subject.tissue, sim.lf_brain_threshold)
    truth = np.asarray(truth[..., :lf.shape[-1] * predictor.factor])
    runs, margin = {}, (*DEFAULT_MARGIN_LF[:2], 1)   # 1 LF slice of margin: thin tiles stay possible
    for slices in (4, 8, 16):
        tile = (*DEFAULT_TILE_LF[:2], slices)
        hf = inference.enhance_lf(lf, predictor, tile_lf=tile, margin_lf=margin, progress=False)
        plan = predictor.tile_plan(lf.shape, tile, margin)
        borders = [predictor.factor * b for b in plan.slice_borders_lf()]
        runs[slices] = {"psnr": round(float(metrics.psnr(truth, hf)), 3),
                        "ssim": round(float(metrics.ssim(truth, hf)), 4),
                        "seam_vs_truth": round(float(metrics.tile_seam_score(truth, hf, borders)), 3),
                        "tile_slices_used": plan.axes[2].size, "margin_lf": list(margin),
                        "overlap_waste": round(plan.overlap_waste, 3)}
    spread = max(r["psnr"] for r in runs.values()) - min(r["psnr"] for r in runs.values())
    return {"tiles_lf_slices": runs, "psnr_spread_db": round(spread, 3),
            "goals_met": {"psnr_spread": spread < GOALS["tile_psnr_spread_db"],
                          "seams": all(r["seam_vs_truth"] <= GOALS["seam_vs_truth"] for r in runs.values())}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", default="", help="an existing demo run (default: run the demo afresh)")
    p.add_argument("--out", default="")
    args = p.parse_args()
    result = {"benchmark": "demo_quality", "machine": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "date_utc": datetime.datetime.now(datetime.timezone.utc)
              .isoformat(timespec="seconds"), "command": " ".join(sys.argv), "goals": GOALS}
    if args.workdir:
        workdir = Path(args.workdir)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="iqt_demo_"))
        result["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
        result["demo"] = run_demo(workdir)
        result["demo"]["within_goal"] = result["demo"]["wall_s"] <= GOALS["max_wall_s"]
    result["workdir"] = str(workdir)
    result["quality"] = quality_table(workdir)
    result["tile_invariance"] = tile_invariance(workdir)
    emit(result, args.out)


if __name__ == "__main__":
    main()
