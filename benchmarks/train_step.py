"""Training-step and inference speed of the ANISO U-Net, against the Keras peer in the same run.

    python benchmarks/train_step.py                                  # ×8, 16 filters, batch 32, this backend
    python benchmarks/train_step.py --peer keras --out benchmarks/results/train_step_cpu.json
    python benchmarks/train_step.py --peer torch --peer_dir DIR --batches 32,256 \
        --compute-dtypes float32,bfloat16 --whole-step --out train_step_gpu.json   # on a GPU

Times one jitted training step (forward, MSE, backward, optax Adam lr 1e-3,
BatchNorm statistics updated) on random (B, 32, 32, 4, 1) → (B, 32, 32, 32, 1)
batches: initialisation, compile time, the median of --steps steps after
--warmup, patches/s, FLOPs per step (analytic: 3 × the forward convolutions'
2·MACs, read off the layer shapes by `iqt.models.flops`; XLA's own cost analysis
of the compiled step beside it), achieved GFLOP/s and peak resident memory; then
evaluation-mode inference patches/s at the same batch.

--peer keras then runs keras_aniso_unet.py from --peer_dir (TF/Keras with
oneDNN, in its own virtualenv, see benchmarks/README.md) after the JAX
measurement, never at the same time, and reports JAX / Keras ratios. The peer
builds the network without the decoder's first bottleneck block (6.09 M
parameters, 3.19 GFLOP forward per patch, against 9.69 M and 3.25 here), so
the GFLOP/s ratio is the like-for-like figure; `--variant peer` builds that
same network in JAX. On a shared machine the figures are noisy: compare
ratios from one run; the load average is recorded before and after.

--batches / --compute-dtypes (comma lists), --whole-step and --peer torch run
the sweep of `benchmarks/step_sweep.py` instead: the model-only and the whole
step (simulator included) at every batch and dtype, and the PyTorch peer on the
same GPU (refused in one line where there is none).

JSON on stdout (and in --out, written atomically; a sweep's after every setting).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import command_line, emit, timed  # noqa: E402

from iqt.cli import fail  # noqa: E402

PEER_DIR = os.environ.get("IQT_PEER_DIR", "")  # no default: benchmarks/README.md
PEER_SCRIPT = "keras_aniso_unet.py"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--factor", type=int, default=8)
    p.add_argument("--lf-patch", default="32,32,4", help="LF input patch X,Y,Z_lf")
    p.add_argument("--base-features", type=int, default=16)
    p.add_argument("--levels", type=int, default=5)
    p.add_argument("--model", default="aniso_unet", choices=["aniso_unet", "sr_unet"])
    p.add_argument("--variant", default="reference", choices=["reference", "peer"],
                   help="peer: without the decoder's first bottleneck block, as the peers build it")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--conv-impl", default="auto", choices=["auto", "xla", "cpu_fast"])
    p.add_argument("--compute-dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--skip-infer", action="store_true")
    p.add_argument("--peer", default="none", choices=["none", "keras", "torch"])
    p.add_argument("--peer-python", default=None,
                   help="the peer's interpreter (default: /tmp/venv-tf/bin/python for keras, this one for torch)")
    p.add_argument("--peer_dir", default=PEER_DIR,
                   help=f"folder holding the peer scripts ({PEER_SCRIPT}, torch_aniso_unet_gpu.py; default: "
                        "$IQT_PEER_DIR; benchmarks/README.md says how to set it up)")
    p.add_argument("--batches", default=None, help="sweep: comma-separated batches, e.g. 32,256")
    p.add_argument("--compute-dtypes", default=None, help="sweep: e.g. float32,bfloat16")
    p.add_argument("--whole-step", action="store_true", help="sweep: also the whole step with the simulator")
    p.add_argument("--config", default="hcp_t1w_x8", help="sweep: the training config of the whole step")
    p.add_argument("--out", default=None, help="also write the JSON here")
    return p.parse_args(argv)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # Linux: KiB


def make_train_step(model, optimizer):
    """(params, batch_stats, opt_state), lf, hf → new state, loss: MSE + optax, jitted."""
    import jax
    import jax.numpy as jnp
    import optax

    def loss_fn(params, batch_stats, lf, hf):
        pred, updates = model.apply({"params": params, "batch_stats": batch_stats}, lf, train=True,
                                    mutable=["batch_stats"])
        return jnp.mean((pred - hf) ** 2), updates["batch_stats"]

    def step(state, lf, hf):
        params, batch_stats, opt_state = state
        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch_stats, lf, hf)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), batch_stats, opt_state), loss

    return jax.jit(step, donate_argnums=0)


def _cost_flops(compiled) -> float | None:
    try:
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        return float(cost["flops"])
    except Exception:  # cost analysis is best-effort and backend-dependent
        return None


def _temp_gib(compiled) -> float | None:
    try:
        return compiled.memory_analysis().temp_size_in_bytes / 2 ** 30
    except Exception:  # best-effort, backend-dependent
        return None


def measure_jax(args: argparse.Namespace) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from iqt.models import conv_impl, create_model, default_config
    from iqt.models.flops import conv_macs_per_sample

    config = default_config()
    config.name, config.base_features, config.levels = args.model, args.base_features, args.levels
    config.conv_impl, config.compute_dtype = args.conv_impl, args.compute_dtype
    config.decoder_bottleneck_core = args.variant == "reference"
    model = create_model(config, args.factor)
    lf_patch = tuple(int(n) for n in args.lf_patch.split(","))
    rng = np.random.default_rng(0)
    lf = jnp.asarray(rng.standard_normal((args.batch, *lf_patch, 1), dtype=np.float32))
    hf_patch = (*lf_patch[:2], lf_patch[2] * args.factor)
    hf = jnp.asarray(rng.standard_normal((args.batch, *hf_patch, 1), dtype=np.float32))

    start = time.perf_counter()
    variables = jax.jit(lambda k: model.init(k, lf[:1], train=False))(jax.random.key(0))
    optimizer = optax.adam(1e-3)
    state = (variables["params"], variables["batch_stats"], optimizer.init(variables["params"]))
    jax.block_until_ready(state)
    init_s = time.perf_counter() - start

    step = make_train_step(model, optimizer)
    start = time.perf_counter()
    compiled = step.lower(state, lf, hf).compile()
    compile_s = time.perf_counter() - start
    holder = {"state": state}

    def one_step():
        holder["state"], loss = compiled(holder["state"], lf, hf)
        holder["loss"] = float(loss)

    first = timed(one_step, 0, 1)[0]
    cpu_train: dict = {}
    times = timed(one_step, max(args.warmup - 1, 0), args.steps, cpu_train)
    step_s = statistics.median(times)
    macs = conv_macs_per_sample(model, lf_patch)
    train_flops = 6 * macs * args.batch
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables["params"]))
    n_stats = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables.get("batch_stats", {})))
    xla_flops = _cost_flops(compiled)
    result = {
        "model": {"name": args.model, "variant": args.variant, "factor": args.factor,
                  "base_features": args.base_features, "levels": args.levels,
                  "conv_impl": conv_impl.resolve_impl(args.conv_impl), "compute_dtype": args.compute_dtype,
                  "trainable_params": n_params, "batchnorm_statistics": n_stats},
        "batch": args.batch, "lf_patch": list(lf_patch), "hf_patch": list(hf_patch),
        "conv_macs_per_patch": macs,
        "fwd_gflop_per_patch": 2 * macs / 1e9,
        "train_gflop_per_step": train_flops / 1e9,
        # XLA counts a loop body once: it undercounts the scanned kernel gradients of cpu_fast
        "xla_cost_analysis_gflop_per_step": None if xla_flops is None else xla_flops / 1e9,
        "train": {"init_s": init_s, "compile_s": compile_s, "xla_temp_gib": _temp_gib(compiled),
                  "first_step_s": first,
                  "step_ms_median": step_s * 1e3, "step_ms_all": [round(t * 1e3, 1) for t in times],
                  "patches_per_s": args.batch / step_s, "achieved_gflops": train_flops / step_s / 1e9,
                  "final_loss": holder["loss"], **cpu_train},
    }
    if not args.skip_infer:
        params, batch_stats, _ = holder["state"]
        infer = jax.jit(lambda v, x: model.apply(v, x, train=False))
        infer_vars = {"params": params, "batch_stats": batch_stats}
        start = time.perf_counter()
        infer_c = infer.lower(infer_vars, lf).compile()
        infer_compile = time.perf_counter() - start
        cpu_infer: dict = {}
        times = timed(lambda: infer_c(infer_vars, lf).block_until_ready(), args.warmup, args.steps, cpu_infer)
        infer_s = statistics.median(times)
        result["inference"] = {"compile_s": infer_compile, "xla_temp_gib": _temp_gib(infer_c),
                               "batch_ms_median": infer_s * 1e3,
                               "batch_ms_all": [round(t * 1e3, 1) for t in times],
                               "patches_per_s": args.batch / infer_s,
                               "achieved_gflops": 2 * macs * args.batch / infer_s / 1e9, **cpu_infer}
    result["peak_rss_gib"] = peak_rss_gib()
    return result


# Runs the peer script as __main__ and reports its own peak RSS (VmHWM belongs to the
# post-exec address space; getrusage would charge the forked parent's pages to the child).
_PEAK_WRAPPER = (
    "import atexit, runpy, sys\n"
    "def peak():\n"
    "    hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
    "    print('PEAK_RSS_KIB', hwm.split()[1], file=sys.stderr)\n"
    "atexit.register(peak)\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n")


def check_keras_peer(args: argparse.Namespace) -> None:
    """Fails early (before the long JAX measurement) if the peer cannot run this comparison."""
    if (args.factor, args.base_features, args.levels, args.model, args.lf_patch) != (8, 16, 5, "aniso_unet",
                                                                                      "32,32,4"):
        fail("the Keras peer builds only the ×8, 16-filter, 5-level ANISO U-Net on (32, 32, 4) patches; "
             "drop --peer or the other options")
    if not args.peer_dir:
        fail("--peer keras needs --peer_dir (or IQT_PEER_DIR): the folder of the peer scripts")
    args.peer_script = str(Path(args.peer_dir) / PEER_SCRIPT)
    for path in (args.peer_python, args.peer_script):
        if not Path(path).exists():
            fail(f"{path} not found; set up the peer as benchmarks/README.md says")


def run_keras_peer(args: argparse.Namespace) -> dict:
    """Runs the Keras peer to completion in its own interpreter; its JSON plus its peak memory."""
    cmd = [args.peer_python, args.peer_script, "--batch", str(args.batch), "--warmup", str(args.warmup),
           "--steps", str(args.steps)] + (["--skip-infer"] if args.skip_infer else [])
    proc = subprocess.run([cmd[0], "-c", _PEAK_WRAPPER, *cmd[1:]], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        fail(f"the Keras peer failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    out = json.loads(proc.stdout)
    out["command"] = command_line(cmd, args.peer_dir)
    peaks = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KIB")]
    out["peak_rss_gib"] = int(peaks[-1]) / 2 ** 20 if peaks else None
    return out


def ratios(jax_result: dict, peer: dict) -> dict:
    """JAX / peer: step-time ratio (> 1: JAX slower) and achieved-GFLOP/s ratio (< 1: JAX slower)."""
    out = {"train_step_time_jax_over_peer": jax_result["train"]["step_ms_median"] / peer["train"]["step_ms_median"],
           "train_gflops_jax_over_peer": jax_result["train"]["achieved_gflops"] / peer["train"]["achieved_gflops"]}
    if jax_result.get("inference") and peer.get("inference"):
        out["inference_patches_per_s_jax_over_peer"] = (jax_result["inference"]["patches_per_s"]
                                                        / peer["inference"]["patches_per_s"])
    return out


def environment(peer_dir: str = "") -> dict:
    import jax

    from iqt.export.backend_choice import cpu_description

    cpu = cpu_description()["model"]
    return {"date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "python": platform.python_version(), "jax": jax.__version__, "backend": jax.default_backend(),
            "devices": [d.device_kind for d in jax.devices()], "cpu": cpu, "cpu_count": os.cpu_count(),
            "GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES"), "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
            "command": command_line([Path(sys.executable).name] + sys.argv, peer_dir)}


def _write(args: argparse.Namespace, report: dict) -> None:
    if args.out:
        from iqt.io_utils import atomic_write_text
        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.peer_python = args.peer_python or {"keras": "/tmp/venv-tf/bin/python"}.get(args.peer, sys.executable)
    if args.peer == "keras":
        check_keras_peer(args)
    report = {"benchmark": "train_step", "environment": environment(args.peer_dir),
              "load_average_before": list(os.getloadavg())}
    if args.peer == "torch" or args.batches or args.compute_dtypes or args.whole_step:
        from benchmarks import step_sweep
        if args.peer == "torch":
            step_sweep.check_torch_peer(args)
        args.batches = args.batches or str(args.batch)
        args.compute_dtypes = args.compute_dtypes or args.compute_dtype
        step_sweep.sweep(args, report, lambda r: _write(args, r))
        report["load_average_after"] = list(os.getloadavg())
        return emit(report, args.out)
    report["jax"] = measure_jax(args)
    if args.peer == "keras":
        report["peer_keras"] = run_keras_peer(args)
        report["ratios"] = ratios(report["jax"], report["peer_keras"])
    report["load_average_after"] = list(os.getloadavg())
    return emit(report, args.out)


if __name__ == "__main__":
    main()
