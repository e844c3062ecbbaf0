"""bfloat16 compute with float32 master parameters: the whole training step (simulator
included) follows the float32 run closely over a few steps, and 'auto' picks float32 on the CPU.

Tolerance. bfloat16 keeps 8 mantissa bits (relative rounding 2^-9 ≈ 2e-3 per
operation); BatchNorm statistics, the loss, the gradients' accumulation into
float32 parameters and Adam stay float32. On the tiny network without the residual
(so the network alone predicts from the first step), the losses of the first
steps agree to 1e-2 relative, later ones (after Adam updates that normalise each
gradient coordinate by its own RMS) to 2e-2 (seen: 3.3e-3 for the first, at most 3.8e-3).
"""
import jax
import jax.numpy as jnp
import numpy as np

import simulators
from benchmarks.first_step import load_config, random_batch
from iqt import train_step as ts
from iqt.models import create_model, resolve_compute_dtype
from tests.conftest import slow

STEPS = 4
RTOL_FIRST, RTOL = 1e-2, 2e-2


def losses_for(dtype: str) -> list[float]:
    config = load_config("demo:tiny", 4)
    config.model.compute_dtype = dtype
    config.model.residual = "none"                   # the network alone makes the prediction from step 0
    spec = simulators.SimulatorSpec.from_config(config.sim)
    model = create_model(config.model, config.sim.factor)
    optimizer = ts.make_optimizer(config.train)
    x, y, z = config.data.patch_size_hf
    state = ts.init_train_state(jax.random.key(0), model, optimizer, (1, x, y, z // config.sim.factor))
    batch = jax.tree.map(jnp.asarray, random_batch(config, 4, spec.margin))
    step, _ = ts.make_steps(model, optimizer, config.sim, seed=0, spec=spec)
    losses = []
    for _ in range(STEPS):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves((state.params, state.opt_state))
               if jnp.issubdtype(leaf.dtype, jnp.floating))
    return losses


@slow   # two trainings (about 30 s); the bf16 layers are checked against float32 in tests/models
def test_bfloat16_steps_follow_the_float32_steps():
    f32, bf16 = losses_for("float32"), losses_for("bfloat16")
    assert f32 != bf16                               # the dtype did change the arithmetic
    np.testing.assert_allclose(bf16[0], f32[0], rtol=RTOL_FIRST)
    np.testing.assert_allclose(bf16, f32, rtol=RTOL)


def test_auto_is_float32_on_the_cpu_and_leaves_explicit_choices_alone():
    assert jax.default_backend() == "cpu"
    assert resolve_compute_dtype("auto") == "float32"
    assert resolve_compute_dtype("bfloat16") == "bfloat16"
