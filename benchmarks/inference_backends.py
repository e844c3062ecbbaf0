"""Whole-volume inference on the CPU with each backend (OpenVINO, onnxruntime, JAX), in one run.

    PYTHONPATH=. .venv/bin/python benchmarks/inference_backends.py \
        --out benchmarks/results/inference_backends_cpu.json

The published ×8 ANISO U-Net (16 base filters, 5 levels; random weights, as in
`benchmarks/inference.py`, whose helpers it uses) enhances one random
512 × 512 × 28 LF volume through `Predictor.enhance`, tiled and blended as
`launch.infer` does, once per backend, each in its own child process (so the
peak resident memory is that backend's alone); `openvino@bfloat16` is OpenVINO asked
for bfloat16 arithmetic (`launch.infer --precision bfloat16`, float32 on CPUs without
native bfloat16). Reported per backend: the tile,
seconds (the graph's compilation for the tile's shape apart), HF voxels per
second kept (the overlap waste charged to us) and computed, the overlap waste
(computed / kept), peak memory, threads. Then the default: what
`launch.infer --backend auto --precision auto` picks, timed afresh on the probe
tile (`iqt.export.backend_choice`), beside the fastest of the same candidates
on the whole scan; and the single scan's wall time of the default on 1 and on 2
cores (`taskset` and the runtime's thread count). The CPU model and its vector
extensions (AVX2, AVX-512, AVX512_BF16, AMX) and the load average are recorded. The Keras
peer runs only where TensorFlow and its script are at hand (`--peer_dir`,
`--keras_python`; see benchmarks/README.md), else it is skipped with a note.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import command_line, emit  # noqa: E402
from benchmarks.inference import add_network_and_peer_arguments, keras_peer, peak_rss_gb, random_variables  # noqa: E402
from iqt.export.backend_choice import cpu_description  # noqa: E402

BACKEND_TILES = {"openvino": "272x272x32", "onnxruntime": "272x272x32", "jax": "272x272x32"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="512x512x28", help="LF volume (x, y, slices)")
    add_network_and_peer_arguments(p)
    p.add_argument("--backends", default="openvino,onnxruntime,jax,openvino@bfloat16",
                   help="BACKEND[@PRECISION],...: bfloat16 runs only with openvino")
    p.add_argument("--tiles", default="", help="backend=XxYxZ,... (default: each backend's own)")
    p.add_argument("--scaling", action=argparse.BooleanOptionalAction, default=True,
                   help="also time the default backend on 1 and 2 cores")
    p.add_argument("--one", default="", help=argparse.SUPPRESS)       # child: backend to measure
    p.add_argument("--tile", default="272x272x32", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    p.add_argument("--out", default="")
    return p.parse_args(argv)


def _shape(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in text.lower().split("x"))


def build_predictor(args: argparse.Namespace, folder: Path):
    """(Predictor, backend versions) of the published net with random weights, run by `args.one`."""
    import jax
    import numpy as np

    from iqt.inference import Predictor, make_predict_fn
    from iqt.models import create_model, default_config, input_multiple

    config = default_config()
    config.base_features, config.levels = args.base_features, args.levels
    model = create_model(config, args.factor)
    multiple = input_multiple(config, args.factor)
    variables = random_variables(jax.eval_shape(
        lambda x: model.init(jax.random.key(0), x, train=False), np.zeros((1, *multiple, 1), np.float32)))
    if args.one == "jax":
        return Predictor(make_predict_fn(model, variables), args.factor, multiple), {"jax": jax.__version__}
    from iqt.export import backends
    from iqt.export.onnx_graph import build_model

    path = folder / "model.onnx"
    path.write_bytes(build_model(jax.device_get(variables), config, args.factor).SerializeToString())
    module = backends.runtime(args.one)
    predict_fn = backends.RUNTIMES[args.one](path, args.threads or None, args.precision)
    return Predictor(predict_fn, args.factor, multiple), {args.one: module.__version__}


def measure_one(args: argparse.Namespace) -> dict:
    """Runs in a child process: one backend, one volume, one pass after compiling."""
    import numpy as np

    from iqt.tiling import DEFAULT_MARGIN_LF

    shape, tile = _shape(args.shape), _shape(args.tile)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        predictor, versions = build_predictor(args, Path(folder))
        build_s = time.perf_counter() - start
        plan = predictor.tile_plan(shape, tile, DEFAULT_MARGIN_LF)
        tile_shape = tuple(a.size for a in plan.axes)
        start = time.perf_counter()
        predictor.predict_fn(np.zeros((1, *tile_shape), np.float32))   # compiles for the tile's shape
        compile_s = time.perf_counter() - start
        lf = np.random.default_rng(0).random(shape, dtype=np.float32)
        start = time.perf_counter()
        hf = predictor.enhance(lf, tile_lf=tile, progress=False)
        seconds = time.perf_counter() - start
    assert hf.shape == (*shape[:2], shape[2] * args.factor) and np.isfinite(hf).all()
    computed = plan.num_tiles * int(np.prod(tile_shape)) * args.factor
    kept = int(np.prod(hf.shape))
    return {"backend": args.one, "precision": args.precision, "versions": versions, "threads": args.threads or "runtime default (all cores)",
            "affinity": sorted(os.sched_getaffinity(0)), "lf_shape": list(shape), "tile_lf": list(tile_shape),
            "num_tiles": plan.num_tiles, "build_s": round(build_s, 2), "compile_s": round(compile_s, 2),
            "seconds": round(seconds, 2), "hf_voxels_kept_per_s": round(kept / seconds),
            "hf_voxels_computed_per_s": round(computed / seconds), "overlap_waste": round(computed / kept, 3),
            "peak_rss_gb": round(peak_rss_gb(), 3)}


def auto_choice(args: argparse.Namespace) -> dict:
    """What `launch.infer`'s defaults (`--backend auto --precision auto`) pick for this network on this
    CPU: `iqt.export.backend_choice` timing every installed runtime afresh (a new cache file)."""
    from iqt.export import backend_choice, backends

    names = backends.candidates("auto")
    precisions = {name: backends.check_precision("auto", name) for name in names}
    with tempfile.TemporaryDirectory() as folder, mock.patch.dict(   # a cache of this call alone
            os.environ, {backend_choice.CACHE_ENV: str(Path(folder) / "choice.json")}):
        choice, _ = backend_choice.fastest(names, lambda name: build_predictor(
            argparse.Namespace(**{**vars(args), "one": name, "precision": precisions[name]}), Path(folder))[0],
            {"benchmark": "inference_backends"})
        timed = json.loads(backend_choice.cache_path().read_text()).popitem()[1]
    return {"backend": choice, "precision": precisions[choice], "candidates": precisions, **timed}


def _is(run: dict, spec: str) -> bool:
    return f"{run['backend']}@{run['precision']}" == spec


def run_child(args: argparse.Namespace, spec: str, tile: str, cores: list[int] | None = None,
              threads: int = 0) -> dict:
    """Measures `spec` ('BACKEND' or 'BACKEND@PRECISION') in a child process."""
    backend, _, precision = spec.partition("@")
    command = [sys.executable, __file__, "--one", backend, "--precision", precision or "float32",
               "--tile", tile, "--threads", str(threads),
               "--shape", args.shape, "--factor", str(args.factor), "--base_features", str(args.base_features),
               "--levels", str(args.levels)]
    if cores is not None and shutil.which("taskset"):
        command = ["taskset", "-c", ",".join(map(str, cores)), *command]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if threads:   # JAX's XLA:CPU has no thread flag: the affinity limits it
        env["OMP_NUM_THREADS"] = str(threads)
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if result.returncode != 0:
        return {"backend": backend, "precision": precision or "float32",
                "error": result.stderr.strip().splitlines()[-1:] or [f"exit {result.returncode}"]}
    return json.loads(result.stdout[result.stdout.index("{"):])


def main() -> None:
    args = parse_args()
    if args.one:
        print(json.dumps(measure_one(args)))
        return
    tiles = {**BACKEND_TILES, **dict(t.split("=") for t in args.tiles.split(",") if t)}
    load_before = os.getloadavg()
    runs = [run_child(args, b, tiles[b.partition("@")[0]]) for b in args.backends.split(",")]
    auto = auto_choice(args)
    default = f"{auto['backend']}@{auto['precision']}"
    if not any(_is(r, default) for r in runs):
        runs.append(run_child(args, default, tiles[auto["backend"]]))
    scaling = {}
    if args.scaling:
        one = run_child(args, default, tiles[auto["backend"]], cores=[0], threads=1)
        two = run_child(args, default, tiles[auto["backend"]], cores=[0, 1], threads=2)
        scaling = {"backend": default, "one_core": one, "two_cores": two}
        if "seconds" in one and "seconds" in two:
            scaling["speed_up_2_vs_1"] = round(one["seconds"] / two["seconds"], 2)
    keras = keras_peer(args) if not args.skip_keras else {"skipped": "--skip_keras"}
    if "skipped" in keras:
        keras["note"] = "no TensorFlow on this machine: the peer's figures are in benchmarks/README.md"
    kept = {f"{r['backend']}@{r['precision']}": r["hf_voxels_kept_per_s"] for r in runs if "seconds" in r}
    as_auto = {k: v for k, v in kept.items() if k in {f"{n}@{p}" for n, p in auto["candidates"].items()}}
    auto["fastest_on_the_whole_scan"] = max(as_auto, key=as_auto.get) if as_auto else None
    for r in runs:
        if "seconds" in r and "hf_voxels_computed_per_s" in keras:
            r["kept_vs_keras_computed"] = round(r["hf_voxels_kept_per_s"] / keras["hf_voxels_computed_per_s"], 2)
    result = {"benchmark": "inference_backends",
              "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": command_line(sys.argv, args.peer_dir), "cpu": cpu_description(),
              "default_cpu_backend": default, "auto": auto,
              "factor": args.factor, "base_features": args.base_features, "levels": args.levels,
              "load_average_1_5_15_before": [round(x, 2) for x in load_before],
              "load_average_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
              "runs": runs, "scaling_1_to_2_cores": scaling, "keras": keras}
    if default in kept and "jax@float32" in kept:
        result["default_vs_jax_kept"] = round(kept[default] / kept["jax@float32"], 2)
    if "hf_voxels_computed_per_s" in keras and default in kept:
        result["default_kept_vs_keras_computed"] = round(kept[default] / keras["hf_voxels_computed_per_s"], 2)
    emit(result, args.out)


if __name__ == "__main__":
    main()
