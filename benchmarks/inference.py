"""Whole-volume inference speed and memory, beside the Keras peer's, in one run.

    PYTHONPATH=. .venv/bin/python benchmarks/inference.py --out benchmarks/results/inference_cpu.json

For each LF volume shape (default 256×256×28 and 512×512×28, ×8 along the
slices), a child process builds the ANISO U-Net (16 base filters, 5 levels,
random weights: speed does not depend on them), enhances a random volume
through `Predictor.enhance`, tiled as `launch.infer` tiles (the largest tile
--tile, the default margins, raised-cosine blending), and reports the seconds (compiling apart, then the median of the
passes), HF voxels per second (kept, and computed including overlaps and
padding), the overlap waste (computed / kept) and the peak resident memory of
the process. The Keras peer (`keras_aniso_unet.py` in --peer_dir, in its own
virtual environment) reports its inference patches per second on 32×32×4 → 32³
patches, before and after the JAX runs (the machine is shared; their mean is
used). `vs_keras_computed` compares HF voxels computed per second;
`vs_keras_kept` counts only the voxels JAX keeps (its overlap waste charged to
it). One JSON object is printed (and written to --out).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import command_line, emit  # noqa: E402

PEER_DIR = os.environ.get("IQT_PEER_DIR", "")  # no default: benchmarks/README.md
PEER_SCRIPT = "keras_aniso_unet.py"
PATCH_HF_VOXELS = 32 ** 3


def add_network_and_peer_arguments(p: argparse.ArgumentParser) -> None:
    """The published network's size and the Keras peer's options (`keras_peer`), shared by the
    inference benchmarks."""
    p.add_argument("--factor", type=int, default=8)
    p.add_argument("--base_features", type=int, default=16)
    p.add_argument("--levels", type=int, default=5)
    p.add_argument("--peer_dir", default=PEER_DIR,
                   help=f"folder holding the Keras peer's {PEER_SCRIPT} (default: $IQT_PEER_DIR; "
                        "benchmarks/README.md says how to set it up)")
    p.add_argument("--keras_python", default="/tmp/venv-tf/bin/python")
    p.add_argument("--keras_steps", type=int, default=5)
    p.add_argument("--skip_keras", action="store_true")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="256x256x28,512x512x28", help="LF shapes, comma-separated")
    add_network_and_peer_arguments(p)
    p.add_argument("--tile", default="272x272x32", help="largest LF tile (x, y, slices)")
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--repeats", type=int, default=1, help="timed passes per volume (after compiling)")
    p.add_argument("--one_shape", default="", help=argparse.SUPPRESS)  # child-process mode
    p.add_argument("--out", default="")
    return p.parse_args(argv)


def _shape(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in text.lower().split("x"))


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # Linux: KiB


def random_variables(abstract):
    """Random weights filled in NumPy (speed does not depend on them; compiling `init` is slow)."""
    import jax
    import numpy as np

    rng = np.random.default_rng(0)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if "batch_stats" in name:
            return (np.ones if "var" in name else np.zeros)(leaf.shape, leaf.dtype)
        return (0.05 * rng.standard_normal(leaf.shape)).astype(leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, abstract)


def measure_one_shape(args: argparse.Namespace) -> dict:
    """Runs in a child process, so that its peak memory is this volume's alone."""
    import jax
    import numpy as np

    from iqt.inference import Predictor, make_predict_fn
    from iqt.models import create_model, default_config
    from iqt.models.schedule import input_multiple
    from iqt.tiling import DEFAULT_MARGIN_LF

    shape = _shape(args.one_shape)
    model_config = default_config()
    model_config.base_features, model_config.levels = args.base_features, args.levels
    model = create_model(model_config, args.factor)
    multiple = input_multiple(args.factor, args.levels)
    variables = random_variables(jax.eval_shape(
        lambda x: model.init(jax.random.key(0), x, train=False), np.zeros((1, 32, 32, 4, 1), np.float32)))
    predictor = Predictor(make_predict_fn(model, variables), args.factor, multiple)
    margin = DEFAULT_MARGIN_LF
    plan = predictor.tile_plan(shape, _shape(args.tile), margin)   # as `launch.infer` tiles
    tile_shape = tuple(a.size for a in plan.axes)
    start = time.perf_counter()
    predictor.predict_fn(np.zeros((args.batch_size, *tile_shape), np.float32))  # compiles
    compile_s = time.perf_counter() - start
    lf = np.random.default_rng(0).random(shape, dtype=np.float32)
    times, hf = [], None
    for _ in range(args.repeats):
        hf = None  # free the previous output before the next pass
        start = time.perf_counter()
        hf = predictor.enhance(lf, batch_size=args.batch_size, tile_lf=_shape(args.tile), progress=False)
        times.append(time.perf_counter() - start)
    assert hf.shape == (*shape[:2], shape[2] * args.factor) and np.isfinite(hf).all()
    batches = -(-plan.num_tiles // args.batch_size) * args.batch_size
    computed = batches * int(np.prod(tile_shape)) * args.factor
    kept = int(np.prod(hf.shape))
    seconds = statistics.median(times)
    return {"lf_shape": list(shape), "hf_shape": list(hf.shape), "tile_lf": list(tile_shape),
            "margin_lf": list(margin),
            "num_tiles": plan.num_tiles, "batch_size": args.batch_size, "multiple": list(multiple),
            "compile_s": round(compile_s, 3), "seconds_median": round(seconds, 3),
            "seconds_all": [round(t, 3) for t in times],
            "hf_voxels_kept_per_s": kept / seconds, "hf_voxels_computed_per_s": computed / seconds,
            "overlap_waste": computed / kept, "peak_rss_gb": round(peak_rss_gb(), 3),
            "jax_backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()]}


def run_child(command: list[str], env: dict | None = None) -> dict:
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1:] or [f"exit {result.returncode}"]}
    return json.loads(result.stdout[result.stdout.index("{"):])


def keras_peer(args: argparse.Namespace) -> dict:
    script = Path(args.peer_dir) / PEER_SCRIPT if args.peer_dir else None
    if args.skip_keras:
        return {"skipped": "--skip_keras"}
    for needed, path in (("--keras_python", args.keras_python), ("--peer_dir", script)):
        if path is None or not Path(path).exists():
            return {"skipped": f"no {path or 'peer folder'} ({needed})"}
    out = run_child([args.keras_python, str(script), "--warmup", "2", "--steps", str(args.keras_steps)])
    if "inference" not in out:
        return out
    inference = out["inference"]
    return {"tensorflow": out.get("tensorflow"), "patches_per_s": inference["patches_per_s"],
            "batch_ms_median": inference["batch_ms_median"],
            "hf_voxels_computed_per_s": inference["patches_per_s"] * PATCH_HF_VOXELS}


def main() -> None:
    args = parse_args()
    if args.one_shape:
        print(json.dumps(measure_one_shape(args)))
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    forwarded = ["--factor", str(args.factor), "--base_features", str(args.base_features),
                 "--levels", str(args.levels), "--tile", args.tile, "--batch_size", str(args.batch_size),
                 "--repeats", str(args.repeats)]
    load_before = os.getloadavg()
    keras_before = keras_peer(args)   # the machine is shared: bracket the JAX runs
    jax_runs = [run_child([sys.executable, __file__, "--one_shape", s, *forwarded], env)
                for s in args.shapes.split(",")]
    keras = keras_peer(args)
    if "patches_per_s" in keras and "patches_per_s" in keras_before:
        keras["patches_per_s_runs"] = [keras_before["patches_per_s"], keras["patches_per_s"]]
        keras["patches_per_s"] = statistics.mean(keras["patches_per_s_runs"])
        keras["hf_voxels_computed_per_s"] = keras["patches_per_s"] * PATCH_HF_VOXELS
    for run in jax_runs:
        if "hf_voxels_computed_per_s" in run and "hf_voxels_computed_per_s" in keras:
            run["vs_keras_computed"] = run["hf_voxels_computed_per_s"] / keras["hf_voxels_computed_per_s"]
            run["vs_keras_kept"] = run["hf_voxels_kept_per_s"] / keras["hf_voxels_computed_per_s"]
    result = {"benchmark": "inference", "date_utc": datetime.datetime.now(datetime.timezone.utc)
              .isoformat(timespec="seconds"), "machine": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "command": command_line(sys.argv, args.peer_dir), "factor": args.factor,
              "load_average_1_5_15_before": [round(x, 2) for x in load_before],
              "load_average_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
              "base_features": args.base_features, "levels": args.levels, "jax": jax_runs, "keras": keras,
              "goals": {"vs_keras_computed": ">= 0.35", "overlap_waste": "< 1.3",
                        "peak_rss_gb_512": "< 4"}}
    emit(result, args.out)


if __name__ == "__main__":
    main()
