"""`train_and_evaluate(config, workdir)`: the stochastic IQT training loop.

Each step: the host pipeline yields HF patches with tissue maps; inside one
jitted step every sample draws its own low-field simulator parameters, the
simulator makes its LF input, the ANISO U-Net predicts the HF patch, and Adam
minimises the MSE (see `iqt.train_step`). The loop around it validates,
checkpoints, logs, draws figures, and survives preemption (`iqt.run_guard`).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

import simulators
from iqt import bn_calibration, checkpointing, config_io, figures, io_utils, metrics, parallel
from iqt.config_check import check_run_config
from iqt.data import datasets, pipeline
from iqt.errors import UserError
from iqt.metric_writers import MetricWriter, drawn_simulator_parameters, read_jsonl
from iqt.models import create_model
from iqt.progress import Progress
from iqt.run_guard import StopRequest, workdir_lock
from iqt.train_step import (DEFAULT_PRNG_IMPL, EVAL_DRAWS, SUBJECT_DRAWS, TrainState, init_train_state,
                            learning_rate_schedule, make_optimizer, make_steps, root_key, simulate_pairs)


def train_config(**overrides) -> ml_collections.ConfigDict:
    """Optimisation and bookkeeping, with the published defaults (docs/method.md §4)."""
    c = ml_collections.ConfigDict()
    c.batch_size = 32                 # global batch, split over every device of every host
    c.num_steps = 100_000
    c.learning_rate = 1e-3            # Adam
    c.lr_schedule = "inverse_time"    # 'inverse_time' (published) | 'cosine' (warm-up, then to 0)
    c.lr_decay_rate = 1e-6            # inverse_time: lr / (1 + decay · step)
    c.warmup_steps = 0                # cosine: linear warm-up steps
    c.augment = False                 # random flips along x, y, the slices (and x-y transposes)
    c.log_every = 50
    c.eval_every = 1000
    c.num_eval_patches = 64
    c.checkpoint_every = 1000
    c.keep_checkpoints = 3
    c.max_nonfinite_skips = 0         # 0: stop at the first non-finite loss or gradient
    c.progress_bar = True
    c.prng_impl = "threefry2x32"      # 'threefry2x32' | 'rbg' | 'unsafe_rbg' (iqt.train_step.PRNG_IMPLS)
    c.bn_calibration_patch_hf = ()    # (X, Y, Z) HF voxels, Z like data.patch_size_hf's: at each validation,
                                      # BatchNorm's statistics re-measured on patches this large, for
                                      # whole-volume inference (iqt.bn_calibration); () = off (published)
    c.bn_calibration_patches = 16     # patches of the calibration set (rounded up to whole batches)
    c.update(overrides)
    return c


class TrainingDiverged(RuntimeError):
    """A non-finite loss or gradient, more often than `train.max_nonfinite_skips` allows."""


@dataclasses.dataclass
class EvalSet:
    """A fixed, seeded set of simulated validation pairs: the LF inputs sharded like a
    batch, the HF targets gathered on the host (every process holds all of them)."""
    lf: jax.Array        # (N, X, Y, Z/r)
    first_lf: np.ndarray  # (X, Y, Z/r): the first LF input, for the figure
    target: np.ndarray   # (N, X, Y, Z)


@dataclasses.dataclass
class _Run:
    """Everything the training loop works with, but the train state."""
    config: ml_collections.ConfigDict
    workdir: Path
    mesh: jax.sharding.Mesh
    data: pipeline.PatchIterator
    train_step: Callable   # (state, batch) → (state, metrics)
    predict: Callable      # (state, LF batch) → HF batch
    eval_set: EvalSet
    checkpointer: checkpointing.Checkpointer
    writer: MetricWriter
    stop: StopRequest
    calibrate: Callable    # state → state with BatchNorm statistics for whole volumes (or unchanged)


def lf_batch_shape(config: ml_collections.ConfigDict, batch_size: int) -> tuple[int, int, int, int]:
    x, y, z = config.data.patch_size_hf
    factor = config.sim.factor
    if z % factor:
        raise UserError(f"data.patch_size_hf z={z} must be a multiple of sim.factor={factor}")
    return batch_size, x, y, z // factor


# Fields a resumed run may change: how long to train (unless the learning-rate schedule
# depends on it, as the cosine one does) and how to show progress.
RESUMABLE_FIELDS = ("num_steps", "progress_bar")


def _prng_impl(config: ml_collections.ConfigDict) -> str:
    """`train.prng_impl`; runs saved before the field existed used threefry."""
    return config.train.get("prng_impl", DEFAULT_PRNG_IMPL)


def _comparable(config: ml_collections.ConfigDict) -> str:
    config = ml_collections.ConfigDict(config.to_dict())
    config.train.prng_impl = _prng_impl(config)
    config.train.bn_calibration_patch_hf = tuple(config.train.get("bn_calibration_patch_hf", ()))
    config.train.bn_calibration_patches = config.train.get("bn_calibration_patches", 16)
    for name in RESUMABLE_FIELDS:
        if name != "num_steps" or config.train.lr_schedule != "cosine":
            config.train[name] = None
    return config_io.to_json(config)


def prepare_workdir(config: ml_collections.ConfigDict, workdir: Path) -> None:
    """Saves the resolved config; on resume, refuses one that differs in more than
    `train.num_steps` (fixed too with a cosine schedule) or `train.progress_bar` from the saved one."""
    path = workdir / config_io.CONFIG_NAME
    if (path.exists() and checkpointing.has_checkpoints(workdir)   # a run that never saved binds nothing
            and _comparable(config_io.load_config(workdir)) != _comparable(config)):
        raise UserError(f"{workdir} holds a run with a different config; resume with the same "
                        f"config (see {path}) or choose a new --workdir")
    if jax.process_index() == 0:
        config_io.save_config(config, workdir)


def make_eval_set(config, mesh, spec: simulators.SimulatorSpec) -> EvalSet:
    """Simulates the validation patches once, with a key of their own."""
    batch = pipeline.make_eval_batch(config.data, split="validation", num_patches=config.train.num_eval_patches,
                                     slice_margin=spec.margin, seed=config.seed, sim_config=config.sim)
    batch = parallel.to_global({k: parallel.process_share(v) for k, v in batch.items()}, mesh)
    root = root_key(config.seed, _prng_impl(config))
    key, subject_key = jax.random.fold_in(root, EVAL_DRAWS), jax.random.fold_in(root, SUBJECT_DRAWS)
    lf, target, _ = jax.jit(lambda b, k, s: simulate_pairs(k, b, config.sim, s, spec))(batch, key, subject_key)
    return EvalSet(lf=lf, first_lf=_gather(lf)[0], target=_gather(target))


def _gather(array: jax.Array) -> np.ndarray:
    """A batch-sharded array, whole, on the host (a collective: every process calls it)."""
    return np.asarray(multihost_utils.process_allgather(array, tiled=True))


def evaluate(state: TrainState, eval_set: EvalSet, predict) -> tuple[dict[str, float], np.ndarray]:
    """Validation loss, PSNR and SSIM (inside the brain, docs/method.md §6), and the predictions."""
    prediction, target = _gather(predict(state, eval_set.lf)), eval_set.target
    return {"loss": float(np.mean((prediction - target) ** 2)),
            "psnr": float(np.mean([metrics.psnr(t, p) for t, p in zip(target, prediction)])),
            "ssim": float(np.mean([metrics.ssim(t, p) for t, p in zip(target, prediction)]))}, prediction


def save_figures(workdir: Path, step: int, eval_set: EvalSet, prediction: np.ndarray, factor: int) -> None:
    """LF | IQT | HF for the first validation patch, and the loss curves (process 0 only)."""
    if jax.process_index() != 0:
        return
    figdir = workdir / "figures"
    figures.save_comparison(figdir / "validation_patch.png", {
        f"LF input (×{factor} slices)": (eval_set.first_lf, float(factor)), "IQT": (prediction[0], 1.0),
        "HF truth": (eval_set.target[0], 1.0)}, title=f"validation patch at step {step}")
    figures.save_loss_curves(figdir / "loss_curves.png", read_jsonl(workdir / "metrics.jsonl"))


def _calibration(config, model, mesh, spec: simulators.SimulatorSpec) -> Callable:
    """`iqt.bn_calibration`'s calibrate(state) when `train.bn_calibration_patch_hf` is set, else the identity."""
    if not tuple(config.train.get("bn_calibration_patch_hf", ())):
        return lambda state: state
    lf = bn_calibration.calibration_lf(config, mesh, spec, _prng_impl(config))
    return bn_calibration.make_calibrate(model, lf, config.train.batch_size)


def _stop_everywhere(stop: StopRequest) -> bool:
    """Whether any process was asked to stop (all processes must agree)."""
    if jax.process_count() == 1:
        return bool(stop)
    return bool(np.any(multihost_utils.process_allgather(np.int32(bool(stop)))))


def _check_finite(step_metrics: dict, state: TrainState, step: int, max_skips: int) -> None:
    if bool(step_metrics["finite"]):
        return
    theta = {k: np.asarray(v).round(4).tolist() for k, v in step_metrics["theta"].items()}
    if int(state.skipped) > max_skips:
        raise TrainingDiverged(
            f"non-finite loss or gradient at step {step} (update not applied; the last checkpoint "
            f"is intact); simulator parameters of that batch: {theta}")
    logging.warning("step %d: non-finite loss or gradient, update skipped (%d of %d allowed)",
                    step, int(state.skipped), max_skips)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict[str, float]:
    """Trains (or resumes) the run in `workdir`; returns the last validation metrics."""
    check_run_config(config, "--config")   # every section, before the work directory is touched
    datasets.check_source(config.data)      # and an HCP/LEMON download folder that is there
    workdir = io_utils.make_output_folder(workdir, "--workdir")
    with workdir_lock(workdir, jax.process_index()), StopRequest() as stop:
        return _train(config, workdir, stop)


def _train(config: ml_collections.ConfigDict, workdir: Path, stop: StopRequest) -> dict[str, float]:
    prepare_workdir(config, workdir)
    mesh = parallel.make_mesh()
    parallel.check_global_batch(config.train.batch_size, mesh)
    spec = simulators.SimulatorSpec.from_config(config.sim)   # once per run, handed down
    model = create_model(config.model, config.sim.factor)
    optimizer = make_optimizer(config.train)
    state = init_train_state(jax.random.key(config.seed), model, optimizer, lf_batch_shape(config, 1),
                             out_shardings=parallel.replicated(mesh))
    data = pipeline.make_train_iterator(config.data, global_batch_size=config.train.batch_size,
                                        slice_margin=spec.margin, seed=config.seed, sim_config=config.sim,
                                        process_index=jax.process_index(), process_count=jax.process_count())
    checkpointer = checkpointing.Checkpointer(workdir, keep=config.train.keep_checkpoints)
    restored = checkpointer.restore_latest(checkpointing.abstract_like(state, parallel.replicated(mesh)))
    if restored is not None:
        state, data_state, start = restored
        data.set_state(data_state)
        logging.info("resumed from %s at step %d", workdir / checkpointing.LATEST_DIR, start)
    start = int(state.step)
    writer = MetricWriter(workdir, resume_step=start, enabled=jax.process_index() == 0)
    writer.write_config(start, config)
    train_step, predict = make_steps(model, optimizer, config.sim, config.seed,
                                     flips=config.train.augment, spec=spec, prng_impl=_prng_impl(config))
    run = _Run(config, workdir, mesh, data, train_step, predict, make_eval_set(config, mesh, spec),
               checkpointer, writer, stop, _calibration(config, model, mesh, spec))
    with checkpointing.writes_fail_loudly():   # also the figures' and metrics' writes
        try:
            return _loop(run, state, start)
        finally:
            checkpointer.close()
            writer.close()


def _loop(run: _Run, state: TrainState, start: int) -> dict[str, float]:
    """Steps `start + 1 .. num_steps`: log, validate, checkpoint, stop on request."""
    tc = run.config.train
    last_eval: dict[str, float] = {}
    progress = Progress(tc.num_steps, start, enabled=jax.process_index() == 0, bar=tc.progress_bar)
    learning_rate = learning_rate_schedule(tc)
    drawn = drawn_simulator_parameters(run.config.sim)
    t0, window, stopping, step = time.perf_counter(), 0, False, start
    for step in range(start + 1, tc.num_steps + 1):
        state, m = run.train_step(state, parallel.to_global(next(run.data), run.mesh))
        _check_finite(m, state, step, tc.max_nonfinite_skips)
        progress.step(float(m["loss"]))
        window += 1
        if step % tc.log_every == 0:
            rate = window / (time.perf_counter() - t0)
            run.writer.write(step, "train", {"loss": m["loss"], "grad_norm": m["grad_norm"], "steps_per_s": rate,
                                             "patches_per_s": rate * tc.batch_size,
                                             "learning_rate": learning_rate(step - 1),  # the step's update used it
                                             **{f"theta_{k}": jnp.mean(m["theta"][k]) for k in drawn}})
            progress.log(step, float(m["loss"]), rate)
            t0, window = time.perf_counter(), 0
        stopping = _stop_everywhere(run.stop)
        if step % tc.eval_every == 0 or step == tc.num_steps:
            last_eval, prediction = evaluate(state, run.eval_set, run.predict)   # training-sized patches
            state = run.calibrate(state)   # what is saved from here is calibrated for whole volumes
            run.writer.write(step, "validation", last_eval)
            progress.validation(step, last_eval)
            run.checkpointer.save_if_best(step, state, run.data.get_state(), last_eval["loss"])
            save_figures(run.workdir, step, run.eval_set, prediction, run.config.sim.factor)
            run.writer.write_image(step, "validation/patch", run.workdir / "figures" / "validation_patch.png")
        if step % tc.checkpoint_every == 0 or step == tc.num_steps or stopping:
            run.checkpointer.save(step, state, run.data.get_state())
        if stopping:
            break
    progress.close()
    run.checkpointer.wait()
    if stopping:
        print(f"stopped by {run.stop.signal_name} after step {step}; checkpoint saved. "
              f"Run the same command again to resume.", flush=True)
    return last_eval
