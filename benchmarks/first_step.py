"""Time to the first training step: where it goes (init, trace, lower, compile, run), cold and warm.

    python benchmarks/first_step.py                       # hcp_t1w_x8, batch 2, cold then warm
    python benchmarks/first_step.py --config demo:tiny --batch 2 --out first_step.json

Builds the run's pieces as `iqt.train` does (the config's model, Adam, the
simulator's spec) and times, with `jax.stages` (`jit(f).trace(...).lower().compile()`):
  - `init`: the train state, initialised as `iqt.train` does it;
  - `model_step`: forward, MSE, backward and Adam on a given LF/HF pair (no simulator);
  - `whole_step`: `iqt.train_step.train_step`, simulator included, on a random HF batch.
For each: trace, lower and compile seconds (and the compile's CPU seconds, steadier
on a shared machine), the first call's seconds, and the size of the lowered
StableHLO (characters and lines). `--parts whole_step` times what a training run
does before its first step; the phase's `process_wall_s` is then its time to the
first step, interpreter start and imports included. `--phases cold,warm` runs each
phase in a fresh Python process that shares one new persistent compilation cache
(`iqt.compile_cache`): cold fills it, warm reads it; the JSON holds JAX's own count
of persistent-cache hits per phase. Every figure is wall time on this machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import emit  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="hcp_t1w_x8", help="a shipped config name or FILE.py[:VARIANT]")
    p.add_argument("--batch", type=int, default=2, help="global batch (the compile barely depends on it)")
    p.add_argument("--phases", default="cold,warm", help="fresh processes sharing one new cache; "
                                                          "'here': one phase in this process, no cache set")
    p.add_argument("--parts", default="init,model_step,whole_step")
    p.add_argument("--prng_impl", default=None, help="jax_default_prng_impl for the run (default: JAX's)")
    p.add_argument("--out", default=None, help="also write the JSON here")
    return p.parse_args(argv)


def load_config(name: str, batch: int):
    """A shipped config by name (or FILE.py[:VARIANT]) with `train.batch_size = batch`."""
    import importlib.util

    from iqt.cli import resolve_config_file

    path, _, variant = resolve_config_file(name, ROOT / "launch" / "configs").partition(":")
    spec = importlib.util.spec_from_file_location("bench_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(variant) if variant else module.get_config()
    config.train.batch_size = batch
    return config


def _stages(fn, *args) -> tuple[dict, object]:
    """Trace, lower and compile `fn` (jitted) on `args`: seconds each, StableHLO size; the executable."""
    out = {}
    t = time.perf_counter()
    traced = fn.trace(*args)
    out["trace_s"] = time.perf_counter() - t
    t = time.perf_counter()
    lowered = traced.lower()
    out["lower_s"] = time.perf_counter() - t
    text = lowered.as_text()
    out["stablehlo_chars"], out["stablehlo_lines"] = len(text), text.count("\n")
    t, cpu = time.perf_counter(), time.process_time()
    compiled = lowered.compile()
    out["compile_s"] = time.perf_counter() - t
    out["compile_cpu_s"] = time.process_time() - cpu   # this process's CPU time: steadier under load
    return out, compiled


def _first_call(compiled, *args) -> tuple[float, object]:
    import jax

    t = time.perf_counter()
    result = jax.block_until_ready(compiled(*args))
    return time.perf_counter() - t, result


def random_batch(config, batch: int, margin: int) -> dict:
    """A batch shaped as the pipeline's (docs/architecture.md), random values."""
    import numpy as np

    rng = np.random.default_rng(0)
    x, y, z = config.data.patch_size_hf
    tissue = rng.dirichlet(np.ones(4), (batch, x, y, z + 2 * margin))[..., :3].astype(np.float32)
    return {"hf": rng.uniform(0, 1, (batch, x, y, z + 2 * margin)).astype(np.float32), "tissue": tissue,
            "tissue_means": np.tile(np.float32([0.6, 0.9, 0.2]), (batch, 1)),
            "brain_means": np.tile(np.float32([0.3, 0.4, 0.05]), (batch, 1)),
            "subject": np.arange(batch, dtype=np.int32)}


def measure(args: argparse.Namespace) -> dict:
    """Every part in this process; seconds since the process started at each part's end."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from iqt import compile_cache, train_step as ts
    from iqt.models import create_model
    import simulators

    if args.prng_impl:
        jax.config.update("jax_default_prng_impl", args.prng_impl)
    hits = compile_cache.HitCounter()
    config = load_config(args.config, args.batch)
    parts = args.parts.split(",")
    spec = simulators.SimulatorSpec.from_config(config.sim)
    model = create_model(config.model, config.sim.factor)
    optimizer = ts.make_optimizer(config.train)
    x, y, z = config.data.patch_size_hf
    lf_shape = (args.batch, x, y, z // config.sim.factor)
    result: dict = {"config": args.config, "batch": args.batch, "backend": jax.default_backend(),
                    "prng_impl": jax.config.jax_default_prng_impl, "compute_dtype": config.model.compute_dtype}
    t = time.perf_counter()
    state = ts.init_train_state(jax.random.key(config.seed), model, optimizer, (1, *lf_shape[1:]))
    jax.block_until_ready(state)
    result["init"] = {"total_s": time.perf_counter() - t}
    if "init" in parts:
        init = jax.jit(lambda k: ts.create_train_state(k, model, optimizer, (1, *lf_shape[1:])))
        result["init"].update(_stages(init, jax.random.key(config.seed))[0])

    if "model_step" in parts:
        rng = np.random.default_rng(0)
        lf = jnp.asarray(rng.standard_normal(lf_shape, np.float32))
        hf = jnp.asarray(rng.standard_normal((*lf_shape[:3], z), np.float32))
        step = jax.jit(lambda s, a, b: ts.update(s, a, b, model=model, optimizer=optimizer))
        stages, compiled = _stages(step, state, lf, hf)
        stages["first_call_s"], _ = _first_call(compiled, state, lf, hf)
        result["model_step"] = stages
    if "whole_step" in parts:
        batch = jax.tree.map(jnp.asarray, random_batch(config, args.batch, spec.margin))
        root_key = jax.random.key(config.seed)
        step = jax.jit(lambda s, b: ts.train_step(s, b, model=model, optimizer=optimizer, spec=spec,
                                                  sim_config=config.sim, root_key=root_key))
        stages, compiled = _stages(step, state, batch)
        stages["first_call_s"], (_, metrics) = _first_call(compiled, state, batch)
        stages["loss"] = float(metrics["loss"])
        result["whole_step"] = stages
    result["persistent_cache_hits"] = hits.count
    return result


def run_phases(args: argparse.Namespace, argv: list[str]) -> dict:
    """Each phase in a fresh process with one shared new cache folder; time to the first step end to end."""
    cache = tempfile.mkdtemp(prefix="iqt-first-step-cache-")
    report = {"benchmark": "first_step", "load_average_before": list(os.getloadavg()), "cache_dir": cache}
    for phase in args.phases.split(","):
        env = {**os.environ, "IQT_COMPILATION_CACHE": cache, "PYTHONPATH": str(ROOT)}
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, *argv, "--phases", "here"], env=env,
                              capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"error: phase {phase} failed: {proc.stderr.strip()[-800:]}")
        report[phase] = {"process_wall_s": wall, **json.loads(proc.stdout)}
    report["load_average_after"] = list(os.getloadavg())
    return report


def _without(argv: list[str], names: tuple[str, ...]) -> list[str]:
    """`argv` less the options `names` and their values (`--name v` or `--name=v`)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif not arg.startswith(tuple(f"{n}=" for n in names)):
            out.append(arg)
    return out


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.phases == "here":
        from iqt import compile_cache

        compile_cache.enable()   # the cache named by $IQT_COMPILATION_CACHE ('none': off)
        report = measure(args)
    else:
        report = run_phases(args, _without(argv, ("--phases", "--out")))
    return emit(report, args.out)


if __name__ == "__main__":
    main()
