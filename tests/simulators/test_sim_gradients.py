"""jax.grad through the simulator against central finite differences."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simulators
from tests.simulators.helpers import plain_config, set_fixed, smooth_tissue, smooth_volume

CASES = {
    # name: (config fields, parameters fixed away from their neutral value, θ to differentiate)
    "reference_gaussian": (
        dict(contrast="snr_gm_fixed", noise="gaussian"),
        dict(inplane_fwhm_mm=1.0, gamma=0.9),
        ("slice_thickness_mm", "inplane_fwhm_mm", "gamma", "snr_wm", "snr_gm")),
    "scaling_rect_rician": (
        dict(contrast="tissue_scaling", noise="rician", slice_profile="rect_gaussian"),
        dict(contrast_gm=1.2, contrast_wm=0.9, contrast_csf=1.1, bias_z=0.1),
        ("slice_thickness_mm", "slice_edge_fwhm_mm", "contrast_gm", "contrast_wm",
         "contrast_csf", "snr_wm", "bias_z")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_gradients_match_central_finite_differences(case):
    fields, fixed, names = CASES[case]
    config = set_fixed(plain_config(8, **fields), **fixed)
    m = simulators.required_margin(config)
    shape = (2, 8, 8, 16 + 2 * m)
    hf = 0.5 + 0.4 * smooth_volume(shape, seed=3)
    tissue = smooth_tissue(shape, seed=4)
    means = np.tile(np.float32([0.5, 0.7, 0.3]), (2, 1))
    params = simulators.mean_parameters(config, 2)
    weights = jnp.asarray(np.random.default_rng(5).standard_normal((2, 8, 8, 2)), jnp.float32)
    key = jax.random.key(6)                            # the same noise draw at every θ

    def scalar(theta):
        p = {**params, **{n: jnp.full((2,), t) for n, t in zip(names, theta)}}
        return jnp.sum(weights * simulators.simulate_batch(key, hf, tissue, means, p, config))

    theta = np.asarray([params[n][0] for n in names], np.float32)
    steps = np.diag(0.02 * np.maximum(np.abs(theta), 1.0))
    thetas = jnp.asarray(np.concatenate([theta[None], theta + steps, theta - steps]))
    values, grads = jax.jit(jax.vmap(jax.value_and_grad(scalar)))(thetas)
    k = len(names)
    finite_differences = (values[1:k + 1] - values[k + 1:]) / (2 * np.diag(steps))
    for name, g, fd in zip(names, np.asarray(grads[0]), np.asarray(finite_differences)):
        assert np.isfinite(g), name
        assert abs(g) > 1e-3, name                     # θ does move the output
        assert g == pytest.approx(fd, rel=5e-3, abs=1e-4), name
