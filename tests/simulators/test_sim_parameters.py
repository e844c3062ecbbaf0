"""Per-sample parameter draws: moments against the config, independence, devices, config I/O."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

import simulators
from iqt.config_io import config_from_json, to_json
from simulators import distributions as dist
from simulators.config import PUBLISHED_SNR
from tests.simulators.helpers import draw, plain_config

ROOT = Path(__file__).resolve().parents[2]
N = 20_000


@pytest.mark.parametrize("sequence", ["T1w", "T2w", "FLAIR"])
def test_snr_pair_matches_the_published_bivariate_normal(sequence):
    params = draw(jax.random.key(0), simulators.default_config(sequence), N)
    draws = np.stack([params["snr_wm"], params["snr_gm"]], axis=1).astype(np.float64)
    mean, covariance = (np.asarray(a) for a in PUBLISHED_SNR[sequence])
    std = np.sqrt(np.diag(covariance))
    assert np.all(np.abs(draws.mean(0) - mean) < 4 * std / np.sqrt(N))
    np.testing.assert_allclose(np.cov(draws.T), covariance, rtol=0.05)


def test_t2w_sits_on_the_published_point():
    mean = simulators.mean_parameters(simulators.default_config("T2w"), 1)
    assert float(mean["snr_wm"][0]) == pytest.approx(35.20)
    assert float(mean["snr_gm"][0]) == pytest.approx(48.35)


def test_scalar_distributions_match_their_moments():
    config = plain_config(8)
    p = config.parameters
    p.slice_thickness_fraction = dist.uniform(0.5, 1.0)   # of the 5.6 mm spacing
    p.gamma = dist.normal(1.0, 0.1)
    p.contrast_wm = dist.normal(1.0, 0.5, low=0.8, high=1.2)
    p.inplane_fwhm_mm = dist.categorical((0.0, 0.7, 1.4), (0.5, 0.3, 0.2))
    draws = {k: np.asarray(v, np.float64)
             for k, v in draw(jax.random.key(1), config, N).items()}
    thickness = draws["slice_thickness_mm"]
    np.testing.assert_allclose(thickness, 5.6 * draws["slice_thickness_fraction"], rtol=1e-6)
    assert 2.8 - 1e-5 <= thickness.min() and thickness.max() <= 5.6 + 1e-5
    assert thickness.mean() == pytest.approx(4.2, abs=0.03)
    assert thickness.var() == pytest.approx(2.8**2 / 12.0, rel=0.05)
    assert draws["gamma"].mean() == pytest.approx(1.0, abs=0.003)
    assert draws["gamma"].std() == pytest.approx(0.1, rel=0.03)
    assert np.float32(0.8) <= draws["contrast_wm"].min()
    assert draws["contrast_wm"].max() <= np.float32(1.2)
    frequencies = [np.mean(draws["inplane_fwhm_mm"] == v) for v in np.float32([0.0, 0.7, 1.4])]
    np.testing.assert_allclose(frequencies, [0.5, 0.3, 0.2], atol=0.015)
    np.testing.assert_allclose(draws["slice_gap_mm"], 8 * 0.7 - thickness, atol=1e-5)
    # independence between parameters: no correlation beyond sampling noise
    assert abs(np.corrcoef(thickness, draws["gamma"])[0, 1]) < 4 / np.sqrt(N)


def test_every_sample_gets_its_own_draw_and_deterministic_mode_the_mean():
    config = simulators.default_config("FLAIR")
    params = draw(jax.random.key(2), config, 64)
    assert len(np.unique(np.asarray(params["snr_wm"]))) == 64
    config.deterministic = True
    config.parameters.gamma = dist.uniform(0.8, 1.0)
    mean = draw(jax.random.key(2), config, 3)
    np.testing.assert_allclose(mean["snr_wm"], [35.031] * 3, rtol=1e-6)
    np.testing.assert_allclose(mean["snr_gm"], [42.329] * 3, rtol=1e-6)
    np.testing.assert_allclose(mean["gamma"], [0.9] * 3, rtol=1e-6)


def test_config_survives_json_and_draws_the_same():
    config = simulators.default_config("T1w", 4)
    config.parameters.inplane_fwhm_mm = dist.categorical((0.0, 0.7))
    back = config_from_json(to_json(config))
    assert back == config
    a = draw(jax.random.key(3), config, 5)
    b = draw(jax.random.key(3), back, 5)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def _set(config, field, value):
    *parents, leaf = field.split(".")
    for name in parents:
        config = config[name]
    config[leaf] = value


@pytest.mark.parametrize("field, value, message", [
    ("noise", "poisson", "sim.noise='poisson'"),
    ("factor", 0, "sim.factor=0"),
    ("parameters.gamma.distribution", "beta", "sim.parameters.gamma.distribution='beta'"),
    ("parameters.inplane_fwhm_mm.low", -1.0, "sim.parameters.inplane_fwhm_mm"),
    ("draw_mode", "per_epoch", "sim.draw_mode='per_epoch'"),
    ("snr.covariance", ((1.0, 2.0), (2.0, 1.0)), "sim.snr.covariance"),
])
def test_invalid_configs_name_the_field(field, value, message):
    config = simulators.default_config()
    _set(config, field, value)
    with pytest.raises(simulators.SimulatorInputError, match=re.escape(message)):
        simulators.required_margin(config)
    if field.startswith(("parameters", "snr")):
        with pytest.raises(simulators.SimulatorInputError, match=re.escape(message)):
            draw(jax.random.key(0), config, 2)


DEVICES_SCRIPT = textwrap.dedent("""
    import json, jax, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import simulators
    config = simulators.default_config("T1w")
    m = simulators.required_margin(config)
    rng = np.random.default_rng(0)
    hf = rng.random((4, 8, 8, 16 + 2 * m), dtype=np.float32)
    tissue = rng.dirichlet((1, 1, 1), size=hf.shape).astype(np.float32)
    means = np.tile(np.float32([0.4, 0.6, 0.2]), (4, 1))

    def step(key, hf, tissue, means):
        params_key, noise_key = jax.random.split(key)
        params = simulators.sample_parameters(params_key, config, hf.shape[0])
        return params["snr_wm"], simulators.simulate_batch(noise_key, hf, tissue, means, params, config)

    key = jax.random.key(7)
    single = jax.jit(step)(key, hf, tissue, means)
    mesh = Mesh(np.array(jax.devices()), ("data",))
    data = NamedSharding(mesh, P("data"))
    sharded = jax.jit(step, in_shardings=(None, data, data, data), out_shardings=data)(
        key, hf, tissue, means)
    print(json.dumps({
        "devices": len(jax.devices()),
        "lf_shards": len(sharded[1].addressable_shards),
        "max_diff": max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                        for a, b in zip(single, sharded)),
        "snr_wm": np.asarray(sharded[0]).tolist(),
    }))
""")


def test_draws_do_not_depend_on_the_device_count_and_differ_across_devices():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    result = subprocess.run([sys.executable, "-c", DEVICES_SCRIPT], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["devices"] == 2 and out["lf_shards"] == 2
    assert out["max_diff"] < 1e-5                       # same draws on 1 and on 2 devices
    snr = out["snr_wm"]                                 # samples 0-1 on device 0, 2-3 on device 1
    assert len(set(snr)) == 4
