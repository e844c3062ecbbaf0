"""The sweep of `benchmarks/train_step.py --batches ... --compute-dtypes ... [--whole-step] [--peer torch]`.

For every batch and compute dtype: the model-only training step (random LF/HF
pairs, as `train_step.py` times it) and, with `--whole-step`, the whole jitted
step of a training config (`--config`, default hcp_t1w_x8) with the simulator
inside (`iqt.train_step.train_step` on a random HF batch). Each setting reports
init, compile and first-call seconds, the time to the first step (their sum),
the median step, patches/s and TFLOP/s (analytic: 3 × the forward convolutions'
FLOPs; the simulator's are not counted). The JSON is rewritten after every
setting, so a run stopped by a timeout keeps what it measured.

`--peer torch` runs the PyTorch peer (`torch_aniso_unet_gpu.py` from --peer_dir:
channels_last_3d, cudnn.benchmark, fp32 with TF32 as torch ships, bf16 autocast)
in its own process before the JAX side, on the same GPU, at the same batches; its
time to the first step is the first call of its `run()` with one step (model
build, cuDNN autotuning, one training step and one inference batch). It needs a
CUDA GPU for both JAX and torch, and refuses in one line otherwise.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path

from benchmarks.common import timed
from iqt.cli import fail

TORCH_PEER_SCRIPT = "torch_aniso_unet_gpu.py"
TORCH_DTYPES = {"float32": "fp32", "bfloat16": "bf16"}

# Runs the peer's run() once with one step (time to the first step), then as its own main does.
_TORCH_WRAPPER = """
import json, sys, time
peer_dir, batches, dtypes, warmup, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
sys.path.insert(0, peer_dir)
import torch
import torch_aniso_unet_gpu as peer
torch.backends.cudnn.benchmark = True
for b in map(int, batches.split(",")):
    for d in dtypes.split(","):
        t = time.perf_counter(); peer.run(b, d, False, 0, 1); first = time.perf_counter() - t
        out = peer.run(b, d, False, warmup, steps); out["time_to_first_step_s"] = first
        print(json.dumps(out), flush=True)
"""

_TORCH_CHECK = "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)"


def check_torch_peer(args) -> None:
    """Refuses (one line, exit 2) unless the peer script, torch and a CUDA GPU for JAX and torch are there."""
    import jax

    if not args.peer_dir:
        fail("--peer torch needs --peer_dir (or IQT_PEER_DIR): the folder of the peer scripts")
    script = Path(args.peer_dir) / TORCH_PEER_SCRIPT
    if not script.is_file():
        fail(f"{script} not found; set up the peer as benchmarks/README.md says")
    if jax.default_backend() != "gpu":
        fail(f"--peer torch compares on one CUDA GPU, but JAX's backend here is {jax.default_backend()}; "
             "run it on a GPU machine, or drop --peer for the JAX side alone")
    probe = subprocess.run([args.peer_python or "python", "-c", _TORCH_CHECK], capture_output=True, text=True)
    if probe.returncode != 0:
        fail(f"the PyTorch peer needs torch with a CUDA device ({args.peer_python}: "
             f"{'no CUDA device' if probe.returncode == 3 else probe.stderr.strip().splitlines()[-1:]})")


def run_torch_peer(args, batches: list[int], dtypes: list[str]) -> list[dict]:
    """The peer's JSON lines, one per (batch, dtype), each with its time to the first step."""
    cmd = [args.peer_python, "-c", _TORCH_WRAPPER, str(Path(args.peer_dir).resolve()),
           ",".join(map(str, batches)), ",".join(TORCH_DTYPES[d] for d in dtypes), str(args.warmup),
           str(args.steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        fail(f"the PyTorch peer failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def measure_whole_step(args, batch: int, dtype: str) -> dict:
    """The whole jitted training step of `args.config` (simulator included) at `batch`, `dtype`."""
    import jax
    import jax.numpy as jnp

    import simulators
    from benchmarks.first_step import load_config, random_batch
    from iqt import train_step as ts
    from iqt.models import create_model
    from iqt.models.flops import conv_macs_per_sample

    config = load_config(args.config, batch)
    config.model.compute_dtype, config.model.conv_impl = dtype, args.conv_impl
    spec = simulators.SimulatorSpec.from_config(config.sim)
    model = create_model(config.model, config.sim.factor)
    optimizer = ts.make_optimizer(config.train)
    x, y, z = config.data.patch_size_hf
    lf_patch = (x, y, z // config.sim.factor)
    start = time.perf_counter()
    state = ts.init_train_state(jax.random.key(0), model, optimizer, (1, *lf_patch))
    data = jax.tree.map(jnp.asarray, random_batch(config, batch, spec.margin))
    jax.block_until_ready(state)
    init_s = time.perf_counter() - start
    step = jax.jit(lambda s, b: ts.train_step(s, b, model=model, optimizer=optimizer, sim_config=config.sim,
                                              root_key=jax.random.key(0), spec=spec), donate_argnums=0)
    start = time.perf_counter()
    compiled = step.lower(state, data).compile()
    compile_s = time.perf_counter() - start
    holder = {"state": state}

    def one():
        holder["state"], metrics = compiled(holder["state"], data)
        holder["loss"] = float(metrics["loss"])

    first = timed(one, 0, 1)[0]
    times = timed(one, max(args.warmup - 1, 0), args.steps)
    step_s = statistics.median(times)
    flops = 6 * conv_macs_per_sample(model, lf_patch) * batch
    return {"part": "whole_step", "config": args.config, "batch": batch, "compute_dtype": dtype,
            "init_s": init_s, "compile_s": compile_s, "first_step_s": first,
            "time_to_first_step_s": init_s + compile_s + first, "step_ms_median": step_s * 1e3,
            "patches_per_s": batch / step_s, "tflops": flops / step_s / 1e12, "final_loss": holder["loss"]}


def measure_model_step(args, batch: int, dtype: str) -> dict:
    """`train_step.measure_jax` at `batch`, `dtype`, in the sweep's units."""
    import argparse

    from benchmarks.train_step import measure_jax

    one = argparse.Namespace(**{**vars(args), "batch": batch, "compute_dtype": dtype, "skip_infer": True})
    train = measure_jax(one)["train"]
    return {"part": "model_step", "batch": batch, "compute_dtype": dtype, "init_s": train["init_s"],
            "compile_s": train["compile_s"], "first_step_s": train["first_step_s"],
            "time_to_first_step_s": train["init_s"] + train["compile_s"] + train["first_step_s"],
            "step_ms_median": train["step_ms_median"], "patches_per_s": train["patches_per_s"],
            "tflops": train["achieved_gflops"] / 1e3, "final_loss": train["final_loss"]}


GOAL_SETTINGS = ((32, "float32"), (256, "bfloat16"))   # issue #16's goals: measured first


def sweep(args, report: dict, write) -> dict:
    """The peer first (quick, and before JAX holds the GPU's memory), then every (batch, dtype, part),
    the goals' settings first; `write(report)` after each."""
    batches = [int(b) for b in args.batches.split(",")]
    dtypes = args.compute_dtypes.split(",")
    if args.peer == "torch":
        report["peer_torch"] = run_torch_peer(args, batches, dtypes)
        write(report)
    parts = [measure_model_step] + ([measure_whole_step] if args.whole_step else [])
    settings = sorted(((b, d) for b in batches for d in dtypes), key=lambda bd: bd not in GOAL_SETTINGS)
    report["jax_sweep"] = []
    for batch, dtype in settings:
        for part in parts:
            report["jax_sweep"].append(part(args, batch, dtype))
            if args.peer == "torch":
                report["ratios_jax_over_torch_patches_per_s"] = _ratios(report["jax_sweep"], report["peer_torch"])
            write(report)
    return report


def _ratios(jax_rows: list[dict], torch_rows: list[dict]) -> list[dict]:
    """JAX patches/s over the peer's training patches/s, per JAX row, at the same batch and dtype,
    and over the peer's best at that batch (> 1: JAX faster)."""
    out = []
    for row in jax_rows:
        peer = [p for p in torch_rows if p["batch"] == row["batch"]]
        same = [p for p in peer if p["dtype"] == TORCH_DTYPES[row["compute_dtype"]]]
        if peer:
            out.append({"part": row["part"], "batch": row["batch"], "compute_dtype": row["compute_dtype"],
                        "over_same_dtype": row["patches_per_s"] / same[0]["train_patches_per_s"] if same else None,
                        "over_peer_best": row["patches_per_s"] / max(p["train_patches_per_s"] for p in peer)})
    return out
