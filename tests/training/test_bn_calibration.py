"""BatchNorm calibration (iqt.bn_calibration): after calibrating on a batch, inference normalises it
as training does; several batches give the mean of their statistics; parameters never change."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iqt.bn_calibration import make_calibrate
from iqt.models import create_model, default_config, input_multiple
from iqt.train_step import TrainState

FACTOR = 4


def _state(style: str = "aniso_unet"):
    config = default_config()
    config.name, config.base_features, config.levels, config.bn_momentum = style, 4, 2, 0.9
    model = create_model(config, FACTOR)
    multiple = input_multiple(config, FACTOR)
    lf = jax.random.uniform(jax.random.key(1), (8, 4 * multiple[0], 4 * multiple[1], 2 * multiple[2]))
    variables = jax.jit(lambda k, x: model.init(k, x[..., None], train=False))(jax.random.key(0), lf[:1])
    state = TrainState(step=jnp.int32(0), params=variables["params"], batch_stats=variables.get("batch_stats", {}),
                       opt_state=None, skipped=jnp.int32(0))
    return model, state, lf


@pytest.fixture(scope="module")
def net():
    return _state()


def test_inference_after_calibrating_on_a_batch_equals_training_mode_on_that_batch(net):
    model, state, lf = net
    calibrated = make_calibrate(model, lf[:4], batch_size=4)(state)
    infer = jax.jit(lambda v, x: model.apply(v, x[..., None]))
    training, _ = jax.jit(lambda v, x: model.apply(v, x[..., None], train=True, mutable=["batch_stats"]))(
        {"params": state.params, "batch_stats": state.batch_stats}, lf[:4])
    before = infer({"params": state.params, "batch_stats": state.batch_stats}, lf[:4])
    after = infer({"params": calibrated.params, "batch_stats": calibrated.batch_stats}, lf[:4])
    np.testing.assert_allclose(after, training, rtol=1e-4, atol=1e-5)
    assert np.abs(np.asarray(before) - np.asarray(training)).max() > 100 * np.abs(np.asarray(after - training)).max()


def test_several_batches_give_the_mean_of_their_statistics_and_leave_the_parameters(net):
    model, state, lf = net
    both = make_calibrate(model, lf, batch_size=4)(state)
    halves = [make_calibrate(model, lf[i:i + 4], batch_size=4)(state).batch_stats for i in (0, 4)]
    expected = jax.tree_util.tree_map(lambda a, b: (a + b) / 2, *halves)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), both.batch_stats,
                           expected)
    jax.tree_util.tree_map(np.testing.assert_array_equal, both.params, state.params)


def test_a_network_without_batchnorm_is_left_as_it_is():
    model, state, lf = _state("sr_unet")
    assert make_calibrate(model, lf, batch_size=4)(state) is state
