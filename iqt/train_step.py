"""One step of stochastic IQT training, as a pure function.

    HF patch (with slice margin) ──simulator(θ ~ p(θ))──► LF patch
    LF patch ──ANISO U-Net──► predicted HF patch;  loss = MSE(prediction, HF)

Every sample of the batch draws its own simulator parameters θ and noise from
the key `fold_in(root_key, step)`, so a step's randomness depends only on the
root seed and the step number, not on the number of devices or on restarts.
"""
from __future__ import annotations

from typing import Any, Callable

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


def make_optimizer(train_config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Adam with inverse-time learning-rate decay (docs/method.md §4)."""
    return optax.adam(inverse_time_decay(train_config.learning_rate, train_config.lr_decay_rate))


def create_train_state(key: jax.Array, model: nn.Module, optimizer: optax.GradientTransformation,
                       lf_shape: tuple[int, ...]) -> TrainState:
    """Initialises parameters for LF inputs of shape (batch, x, y, z_lf)."""
    variables = model.init(key, jnp.zeros((*lf_shape, 1), jnp.float32), train=False)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get("batch_stats", {}), opt_state=optimizer.init(params),
                      skipped=jnp.zeros((), jnp.int32))


def simulate_pairs(key: jax.Array, batch: dict, sim_config: ml_collections.ConfigDict
                   ) -> tuple[jax.Array, jax.Array, dict]:
    """Draws θ per sample and simulates LF; returns (lf, hf_target, θ).

    batch["hf"]: (B, X, Y, Z + 2m) → lf (B, X, Y, Z / r), hf_target (B, X, Y, Z).
    """
    key_params, key_noise = jax.random.split(key)
    hf = batch["hf"]
    margin = simulators.required_margin(sim_config)
    theta = simulators.sample_parameters(key_params, sim_config, hf.shape[0])
    lf = simulators.simulate_batch(key_noise, hf, batch["tissue"], batch["tissue_means"], theta, sim_config)
    target = hf[..., margin:hf.shape[-1] - margin]
    return lf, target, theta


def _all_finite(tree: Any) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def train_step(state: TrainState, batch: dict, *, model: nn.Module, optimizer: optax.GradientTransformation,
               sim_config: ml_collections.ConfigDict, root_key: jax.Array) -> tuple[TrainState, dict]:
    """Simulate → predict → MSE → Adam; an update with a non-finite loss or gradient is not applied."""
    lf, target, theta = simulate_pairs(jax.random.fold_in(root_key, state.step), batch, sim_config)

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
    metrics = {"loss": loss, "grad_norm": optax.global_norm(grads), "finite": finite, "theta": theta}
    return new_state, metrics


def predict(state: TrainState, lf: jax.Array, *, model: nn.Module) -> jax.Array:
    """Evaluation-mode prediction: lf (B, X, Y, Z/r) → HF (B, X, Y, Z), float32."""
    out = model.apply({"params": state.params, "batch_stats": state.batch_stats}, lf[..., None], train=False)
    return out[..., 0].astype(jnp.float32)


def make_steps(model: nn.Module, optimizer: optax.GradientTransformation,
               sim_config: ml_collections.ConfigDict, seed: int) -> tuple[Callable, Callable]:
    """The jitted (train_step, predict) of a run; `state` is donated to the train step."""
    root_key = jax.random.key(seed)
    step = jax.jit(lambda s, b: train_step(s, b, model=model, optimizer=optimizer,
                                           sim_config=sim_config, root_key=root_key), donate_argnums=0)
    return step, jax.jit(lambda s, lf: predict(s, lf, model=model))
