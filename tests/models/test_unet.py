"""Tiny networks run for real: implementations agree, BatchNorm modes, bfloat16, the SR U-Net.

Compiling is what costs here, so one jitted step per implementation is built
once (`Step`) and every test reuses it on same-shaped batches.
"""
from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iqt.models import create_model, default_config
from iqt.models.layers import batch_norm
from tests.conftest import slow   # the resize_conv variants: optional path, IQT_SLOW_TESTS=1

REPO = Path(__file__).resolve().parents[2]
# ×4 with 2 levels: skip s = 4, pool (2,2,1), bottleneck lifted ×2 to the HF grid; the
# 8×8×2 level uses the folded 2-D convolutions, the 4×4×2 bottleneck im2col (cpu_fast)
FACTOR, LEVELS, LF, HF, BATCH = 4, 2, (8, 8, 2), (8, 8, 8), 4


def tiny_config(**fields):
    config = default_config()
    config.base_features, config.levels = 4, LEVELS
    config.update(fields)
    return config


def lf_batch(seed=0, batch=BATCH):
    return jnp.asarray(np.random.default_rng(seed).standard_normal((batch, *LF, 1), dtype=np.float32))


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# a target with a non-zero mean: no gradient of the MSE is zero by symmetry at initialisation
TARGET = 0.5 + np.random.default_rng(1).standard_normal((BATCH, *HF, 1)).astype(np.float32)


def make_step(model):
    """variables, lf → MSE loss against TARGET, training output, new batch statistics,
    parameter gradients, evaluation output."""

    def loss(params, variables, lf):
        pred, updates = model.apply({**variables, "params": params}, lf, train=True, mutable=["batch_stats"])
        return jnp.mean((pred - TARGET) ** 2), (pred, updates["batch_stats"])

    def step(variables, lf):
        (value, (pred, stats)), grads = jax.value_and_grad(loss, has_aux=True)(variables["params"], variables, lf)
        return {"loss": value, "train": pred, "stats": stats, "grads": grads,
                "eval": model.apply(variables, lf, train=False)}

    return jax.jit(step)


@functools.cache
def tiny_variables(upsample: str = "transposed"):
    model = create_model(tiny_config(conv_impl="xla", upsample=upsample), FACTOR)
    return jax.jit(lambda k: model.init(k, lf_batch(), train=False))(jax.random.key(0))


@functools.cache
def step_for(impl: str, upsample: str = "transposed"):
    return make_step(create_model(tiny_config(conv_impl=impl, upsample=upsample), FACTOR))


@pytest.mark.parametrize("upsample", ["transposed", pytest.param("resize_conv", marks=slow)])
def test_cpu_fast_and_xla_networks_agree_in_values_gradients_and_statistics(upsample):
    variables = tiny_variables(upsample)
    fast, xla = (step_for(impl, upsample)(variables, lf_batch()) for impl in ("cpu_fast", "xla"))
    # float32; the formulations sum in different orders (~1e-7 per layer) and
    # BatchNorm renormalises: outputs agree to 1e-5, gradients to 1e-4 relative
    for key in ("train", "eval"):
        assert rel_err(fast[key], xla[key]) < 1e-5, key
    assert abs(float(fast["loss"]) - float(xla["loss"])) < 1e-5 * float(xla["loss"])
    for f, x in zip(jax.tree.leaves(fast["stats"]), jax.tree.leaves(xla["stats"])):
        assert rel_err(f, x) < 1e-5
    worst = max(rel_err(f, x) for f, x in zip(jax.tree.leaves(fast["grads"]), jax.tree.leaves(xla["grads"])))
    assert worst < 1e-4


def test_batchnorm_uses_batch_statistics_in_training_and_running_averages_in_evaluation():
    x = jnp.asarray(np.random.default_rng(2).normal(3.0, 2.0, (4, 2, 3, 2, 5)).astype(np.float32))
    bn_train, bn_eval = batch_norm(True, jnp.float32), batch_norm(False, jnp.float32)
    variables = bn_train.init(jax.random.key(0), x)
    y, updates = bn_train.apply(variables, x, mutable=["batch_stats"])
    xs = np.asarray(x, np.float64)
    mean, var = xs.mean(axis=(0, 1, 2, 3)), xs.var(axis=(0, 1, 2, 3))     # biased, per channel
    np.testing.assert_allclose(y, (xs - mean) / np.sqrt(var + 1e-3), rtol=1e-5, atol=1e-5)
    stats = updates["batch_stats"]                                           # Keras: momentum 0.99
    np.testing.assert_allclose(stats["mean"], 0.99 * 0.0 + 0.01 * mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(stats["var"], 0.99 * 1.0 + 0.01 * var, rtol=1e-5)
    y_eval = bn_eval.apply({**variables, "batch_stats": stats}, x)
    np.testing.assert_allclose(y_eval, (xs - stats["mean"]) / np.sqrt(stats["var"] + 1e-3), rtol=1e-5, atol=1e-5)


def test_training_mode_couples_the_batch_and_evaluation_mode_does_not():
    lf = lf_batch()
    other = lf.at[2:].set(lf_batch(seed=6)[2:] * 3.0)     # same first two samples, other companions
    step = step_for("cpu_fast")
    a, b = step(tiny_variables(), lf), step(tiny_variables(), other)
    np.testing.assert_allclose(a["eval"][:2], b["eval"][:2], rtol=1e-5, atol=1e-5)
    assert rel_err(a["train"][:2], b["train"][:2]) > 1e-2       # batch statistics differ


def test_bfloat16_compute_keeps_float32_parameters_and_stays_close():
    model = create_model(tiny_config(compute_dtype="bfloat16"), FACTOR)
    lf, variables = lf_batch(), tiny_variables()
    out = jax.jit(lambda v: model.apply(v, lf, train=False))(variables)
    assert out.dtype == jnp.float32
    err = rel_err(out, step_for("cpu_fast")(variables, lf)["eval"])
    assert 0 < err < 3e-2            # bfloat16 has an 8-bit mantissa (≈ 4e-3 per rounding)
    grads, stats = jax.eval_shape(
        lambda p: jax.grad(lambda p: jnp.mean(model.apply({**variables, "params": p}, lf, train=True,
                                                          mutable=["batch_stats"])[0] ** 2))(p),
        variables["params"]), jax.eval_shape(lambda: model.init(jax.random.key(0), lf, train=False))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves((grads, stats)))


def test_sr_unet_trains_without_batchnorm():
    model = create_model(tiny_config(name="sr_unet"), FACTOR)
    lf = lf_batch()
    variables = jax.jit(lambda k: model.init(k, lf, train=False))(jax.random.key(0))
    assert set(variables) == {"params"}
    out = jax.jit(lambda v: model.apply(v, lf, train=True))(variables)
    assert out.shape == (BATCH, *HF, 1) and bool(jnp.all(jnp.isfinite(out)))


SHARDED = textwrap.dedent("""
    import sys
    import jax, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from tests.models.test_unet import lf_batch, step_for, tiny_variables
    assert len(jax.devices()) == 4
    mesh = Mesh(np.array(jax.devices()), ("data",))
    lf = jax.device_put(lf_batch(), NamedSharding(mesh, P("data")))
    out = step_for("cpu_fast")(tiny_variables(), lf)
    assert len(out["train"].sharding.device_set) == 4
    leaves = jax.tree_util.tree_leaves_with_path(out)
    np.savez(sys.argv[1], **{jax.tree_util.keystr(p): np.asarray(x) for p, x in leaves})
""")


def test_batchnorm_statistics_and_gradients_span_the_global_batch_when_it_is_sharded(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", SHARDED, str(tmp_path / "sharded.npz")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sharded = np.load(tmp_path / "sharded.npz")
    single = step_for("cpu_fast")(tiny_variables(), lf_batch())       # one device, whole batch
    for path, value in jax.tree_util.tree_leaves_with_path(single):
        # per-device statistics would differ at the 1e-1 level; rounding alone at 1e-6
        assert rel_err(sharded[jax.tree_util.keystr(path)], value) < 1e-4, jax.tree_util.keystr(path)


@pytest.mark.parametrize("upsample", ["transposed", pytest.param("resize_conv", marks=slow)])
@pytest.mark.parametrize("name", ["aniso_unet", "sr_unet"])
def test_parameter_tree_is_the_same_for_both_implementations(name, upsample):
    models = [create_model(tiny_config(name=name, conv_impl=impl, upsample=upsample), FACTOR)
              for impl in ("xla", "cpu_fast")]
    trees = [jax.eval_shape(lambda: m.init(jax.random.key(0), jnp.zeros((1, *LF, 1)), train=False))  # noqa: B023
             for m in models]
    assert jax.tree.structure(trees[0]) == jax.tree.structure(trees[1])
    assert [x.shape for x in jax.tree.leaves(trees[0])] == [x.shape for x in jax.tree.leaves(trees[1])]
