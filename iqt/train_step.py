"""One step of stochastic IQT training, as a pure function.

    HF patch (with slice margin) ──simulator(θ ~ p(θ))──► LF patch
    LF patch ──ANISO U-Net──► predicted HF patch;  loss = MSE(prediction, HF)

Every sample of the batch draws its own simulator parameters θ and noise from
the key `fold_in(root_key, step)`, so a step's randomness depends only on the
root seed and the step number, not on the number of devices or on restarts
(with `sim.draw_mode='per_subject'`, θ comes from the sample's subject instead).

Intensities. The LF input and the target are both divided by the LF volume's
mean brain intensity (`iqt.data.normalization.lf_scale`), the one statistic
inference can measure on a real low-field scan; in training it is known before
any noise from the subject's statistics and θ (`simulators.lf_brain_mean`).
The network thus maps an LF image of brain mean 1 to the HF object on the same
scale, and inference multiplies its output back.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

import simulators


@flax.struct.dataclass
class TrainState:
    step: jax.Array          # int32 scalar: steps taken (skipped ones included)
    params: Any
    batch_stats: Any
    opt_state: Any
    skipped: jax.Array       # int32 scalar: updates refused for a non-finite loss/gradient


def inverse_time_decay(learning_rate: float, decay_rate: float) -> optax.Schedule:
    """lr(t) = learning_rate / (1 + decay_rate · t), as published (Keras `decay`)."""
    return lambda t: learning_rate / (1.0 + decay_rate * t)


LR_SCHEDULES = ("inverse_time", "cosine")


def learning_rate_schedule(train_config: ml_collections.ConfigDict) -> optax.Schedule:
    """`train.lr_schedule`: 'inverse_time' (published: lr / (1 + lr_decay_rate · t)) or
    'cosine' (linear warm-up over `warmup_steps`, then a cosine decay to 0 at `num_steps`)."""
    kind = train_config.lr_schedule
    if kind == "inverse_time":
        return inverse_time_decay(train_config.learning_rate, train_config.lr_decay_rate)
    if kind == "cosine":
        warmup = int(train_config.warmup_steps)
        return optax.warmup_cosine_decay_schedule(0.0, train_config.learning_rate, warmup,
                                                  max(int(train_config.num_steps), warmup + 1))
    raise ValueError(f"train.lr_schedule={kind!r} is not one of {LR_SCHEDULES}")


def make_optimizer(train_config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Adam with the configured learning-rate schedule (published: inverse-time decay,
    docs/method.md §4)."""
    return optax.adam(learning_rate_schedule(train_config))


def create_train_state(key: jax.Array, model: nn.Module, optimizer: optax.GradientTransformation,
                       lf_shape: tuple[int, ...]) -> TrainState:
    """Initialises parameters for LF inputs of shape (batch, x, y, z_lf)."""
    variables = model.init(key, jnp.zeros((*lf_shape, 1), jnp.float32), train=False)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get("batch_stats", {}), opt_state=optimizer.init(params),
                      skipped=jnp.zeros((), jnp.int32))


def init_train_state(key: jax.Array, model: nn.Module, optimizer: optax.GradientTransformation,
                     lf_shape: tuple[int, ...], out_shardings=None) -> TrainState:
    """`create_train_state`, jitted (placed by `out_shardings`, e.g. replicated over a mesh)."""
    init = jax.jit(lambda k: create_train_state(k, model, optimizer, lf_shape), out_shardings=out_shardings)
    return init(key)


# The random-bit generators a run may use (`train.prng_impl`). 'threefry2x32' (JAX's default) is
# counter-based and, partitionable, gives every sample the same numbers however the batch is
# sharded; 'rbg' and 'unsafe_rbg' use the accelerator's own generator (XLA RngBitGenerator),
# cheaper on GPUs and TPUs.
PRNG_IMPLS = ("threefry2x32", "rbg", "unsafe_rbg")
DEFAULT_PRNG_IMPL = "threefry2x32"


def root_key(seed: int, prng_impl: str = DEFAULT_PRNG_IMPL) -> jax.Array:
    """The run's root key: every key of a run (θ, noise, flips, validation) is folded from it."""
    return jax.random.key(seed, impl=prng_impl)


EVAL_DRAWS = 2**31 - 1      # the streams of a run's root key: the validation set's draws, …
SUBJECT_DRAWS = 2**31 - 2   # … the per-subject draws (folded into the run's root key), …
AUGMENT_DRAWS = 2**31 - 3   # … and the flips (folded into the step's key)


def _theta_keys(key: jax.Array, subject_key: jax.Array, batch: dict, draw_mode: str) -> jax.Array:
    """One key per sample: split from the step's key, or the subject's own key."""
    if draw_mode == "per_subject":
        return jax.vmap(lambda s: jax.random.fold_in(subject_key, s))(batch["subject"])
    return jax.random.split(key, batch["hf"].shape[0])


def simulate_pairs(key: jax.Array, batch: dict, sim_config: ml_collections.ConfigDict,
                   subject_key: jax.Array, spec: Optional[simulators.SimulatorSpec] = None
                   ) -> tuple[jax.Array, jax.Array, dict]:
    """Draws θ per sample and simulates LF; returns (lf, hf_target, θ), both on the LF's scale.

    batch["hf"]: (B, X, Y, Z + 2m) → lf (B, X, Y, Z / r), hf_target (B, X, Y, Z);
    `subject_key` seeds the per-subject draws (unused with per-sample draws);
    `spec`: the run's `SimulatorSpec` of `sim_config` (built here if not given).
    """
    spec = simulators.SimulatorSpec.of(sim_config if spec is None else spec)
    key_theta, key_noise = jax.random.split(key)
    hf, tissue = batch["hf"], batch["tissue"]
    keys = _theta_keys(key_theta, subject_key, batch, sim_config.draw_mode)
    theta = simulators.sample_parameters_from_keys(keys, sim_config, validated=True)
    lf = simulators.simulate_batch(key_noise, hf, tissue, batch["tissue_means"], theta, spec)
    target = simulators.hf_object(hf, tissue, spec.lf_brain_threshold)[..., spec.margin:hf.shape[-1] - spec.margin]
    scale = jax.vmap(lambda b, t, th: simulators.lf_brain_mean(b, t, th, spec))(
        batch["brain_means"], batch["tissue_means"], theta)
    return lf / scale[:, None, None, None], target / scale[:, None, None, None], theta


def augment(key: jax.Array, batch: dict) -> dict:
    """Random flips of each sample along x, y and the slices, and an x–y transpose when square.

    HF patches and tissue maps move together; a flip along the slices keeps the
    slice convention, since a patch of Z = k·r slices with equal margins is
    symmetric (LF centre r·j + (r − 1)/2 maps to the centre r·(k − 1 − j) + (r − 1)/2).
    The brain statistics are per subject and do not change.
    """
    hf, tissue = batch["hf"], batch["tissue"]
    square = hf.shape[1] == hf.shape[2]
    draws = jax.random.bernoulli(key, 0.5, (4, hf.shape[0]))

    def one(flips, h, t):
        for axis in range(3):
            h = jnp.where(flips[axis], jnp.flip(h, axis), h)
            t = jnp.where(flips[axis], jnp.flip(t, axis), t)
        if square:
            h = jnp.where(flips[3], jnp.swapaxes(h, 0, 1), h)
            t = jnp.where(flips[3], jnp.swapaxes(t, 0, 1), t)
        return h, t

    hf, tissue = jax.vmap(one, in_axes=(1, 0, 0))(draws, hf, tissue)
    return {**batch, "hf": hf, "tissue": tissue}


def _all_finite(tree: Any) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def update(state: TrainState, lf: jax.Array, target: jax.Array, *, model: nn.Module,
           optimizer: optax.GradientTransformation) -> tuple[TrainState, dict]:
    """Predict → MSE → Adam on one LF/HF pair (B, X, Y, Z/r), (B, X, Y, Z); an update with a
    non-finite loss or gradient is not applied."""
    def loss_fn(params):
        prediction, updates = model.apply({"params": params, "batch_stats": state.batch_stats},
                                          lf[..., None], train=True, mutable=["batch_stats"])
        return jnp.mean((prediction[..., 0].astype(jnp.float32) - target) ** 2), updates

    (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    finite = jnp.isfinite(loss) & _all_finite(grads)
    opt_updates, new_opt_state = optimizer.update(grads, state.opt_state, state.params)
    new_params = optax.apply_updates(state.params, opt_updates)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
    new_state = state.replace(
        step=state.step + 1,
        params=keep(new_params, state.params),
        batch_stats=keep(updates.get("batch_stats", {}), state.batch_stats),
        opt_state=keep(new_opt_state, state.opt_state),
        skipped=state.skipped + (~finite).astype(jnp.int32))
    return new_state, {"loss": loss, "grad_norm": optax.global_norm(grads), "finite": finite}


def train_step(state: TrainState, batch: dict, *, model: nn.Module, optimizer: optax.GradientTransformation,
               sim_config: ml_collections.ConfigDict, root_key: jax.Array,
               flips: bool = False, spec: Optional[simulators.SimulatorSpec] = None
               ) -> tuple[TrainState, dict]:
    """(Flip →) simulate → predict → MSE → Adam; an update with a non-finite loss or gradient is not applied.

    spec: the run's `SimulatorSpec` of `sim_config` (built here if not given)."""
    key = jax.random.fold_in(root_key, state.step)
    if flips:
        batch = augment(jax.random.fold_in(key, AUGMENT_DRAWS), batch)
    lf, target, theta = simulate_pairs(key, batch, sim_config, jax.random.fold_in(root_key, SUBJECT_DRAWS), spec)
    new_state, metrics = update(state, lf, target, model=model, optimizer=optimizer)
    return new_state, {**metrics, "theta": theta}


def predict(state: TrainState, lf: jax.Array, *, model: nn.Module) -> jax.Array:
    """Evaluation-mode prediction: lf (B, X, Y, Z/r) → HF (B, X, Y, Z), float32."""
    out = model.apply({"params": state.params, "batch_stats": state.batch_stats}, lf[..., None], train=False)
    return out[..., 0].astype(jnp.float32)


def make_steps(model: nn.Module, optimizer: optax.GradientTransformation,
               sim_config: ml_collections.ConfigDict, seed: int,
               flips: bool = False, spec: Optional[simulators.SimulatorSpec] = None,
               prng_impl: str = DEFAULT_PRNG_IMPL) -> tuple[Callable, Callable]:
    """The jitted (train_step, predict) of a run; `state` is donated to the train step.

    flips: augment every sample with random flips (`augment`); spec: the run's
    `SimulatorSpec` (built here if not given); prng_impl: one of `PRNG_IMPLS`. The seed's
    key is an argument of the jitted step, not a constant: every seed shares one compiled step."""
    spec = simulators.SimulatorSpec.of(sim_config if spec is None else spec)
    root = root_key(seed, prng_impl)
    step = jax.jit(lambda s, b, k: train_step(s, b, model=model, optimizer=optimizer, sim_config=sim_config,
                                              root_key=k, flips=flips, spec=spec), donate_argnums=0)
    return (lambda s, b: step(s, b, root)), jax.jit(lambda s, lf: predict(s, lf, model=model))
