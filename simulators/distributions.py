"""Distributions that simulator parameters are drawn from, as declared in the config.

Every scalar distribution is a ConfigDict with the same fields, so that its kind
can be switched on the command line (`--config.sim.parameters.gamma.distribution=uniform
--config.sim.parameters.gamma.low=0.8 --config.sim.parameters.gamma.high=1.2`);
`choices`, not `values`, which would hide `ConfigDict.values()`:

    distribution   'fixed' | 'uniform' | 'normal' | 'categorical'
    value          the value of 'fixed'
    low, high      the range of 'uniform'; the clipping range of 'normal'
    mean, std      of 'normal'
    choices, probs the choices of 'categorical' and their probabilities (tuples)

The SNR pair (snr_wm, snr_gm) is drawn jointly:

    distribution   'fixed' | 'uniform' | 'bivariate_normal'
    mean           (wm, gm): the value of 'fixed', the mean of 'bivariate_normal'
    covariance     ((var_wm, cov), (cov, var_gm)) of 'bivariate_normal'
    low, high      (wm, gm): the ranges of 'uniform'; the clipping range otherwise

`scalar_support` (the range a draw can take) fixes static shapes such as the patch
margin; the means give the parameters of the deterministic mode.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from simulators.errors import SimulatorInputError

SCALAR_KINDS = ("fixed", "uniform", "normal", "categorical")
PAIR_KINDS = ("fixed", "uniform", "bivariate_normal")


def _scalar(distribution: str, value: float, low: float, high: float, mean: float, std: float,
            choices: Sequence[float], probs: Sequence[float]) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        distribution=distribution, value=float(value), low=float(low), high=float(high),
        mean=float(mean), std=float(std), choices=tuple(float(c) for c in choices),
        probs=tuple(float(p) for p in probs)))


def fixed(value: float) -> ml_collections.ConfigDict:
    return _scalar("fixed", value, value, value, value, 0.0, (value,), (1.0,))


def uniform(low: float, high: float) -> ml_collections.ConfigDict:
    middle = 0.5 * (low + high)
    return _scalar("uniform", middle, low, high, middle, 0.0, (middle,), (1.0,))


def normal(mean: float, std: float, low: float | None = None,
           high: float | None = None) -> ml_collections.ConfigDict:
    """A normal clipped to [low, high] (default: mean ± 4 std)."""
    low = mean - 4.0 * std if low is None else low
    high = mean + 4.0 * std if high is None else high
    return _scalar("normal", mean, low, high, mean, std, (mean,), (1.0,))


def categorical(choices: Sequence[float], probs: Sequence[float] | None = None):
    """One of `choices`, with probabilities `probs` (default: equal)."""
    probs = (1.0,) * len(choices) if probs is None else probs
    return _scalar("categorical", choices[0], min(choices), max(choices), choices[0], 0.0,
                   choices, probs)


def _pair(distribution: str, mean, covariance, low, high) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        distribution=distribution, mean=tuple(float(m) for m in mean),
        covariance=tuple(tuple(float(c) for c in row) for row in covariance),
        low=tuple(float(v) for v in low), high=tuple(float(v) for v in high)))


def fixed_pair(value: Sequence[float]) -> ml_collections.ConfigDict:
    return _pair("fixed", value, ((0.0, 0.0), (0.0, 0.0)), value, value)


def uniform_pair(low: Sequence[float], high: Sequence[float]) -> ml_collections.ConfigDict:
    middle = [0.5 * (a + b) for a, b in zip(low, high)]
    return _pair("uniform", middle, ((0.0, 0.0), (0.0, 0.0)), low, high)


def bivariate_normal(mean: Sequence[float], covariance, low: Sequence[float] = (1.0, 1.0),
                     high: Sequence[float] = (1e4, 1e4)) -> ml_collections.ConfigDict:
    """A bivariate normal clipped to [low, high] per component."""
    return _pair("bivariate_normal", mean, covariance, low, high)


def validate_scalar(path: str, d: ml_collections.ConfigDict) -> None:
    """Raises `SimulatorInputError` naming `path` if `d` is not a valid distribution."""
    kind = d.distribution
    if kind not in SCALAR_KINDS:
        raise SimulatorInputError(f"{path}.distribution={kind!r} is not one of {SCALAR_KINDS}")
    if kind in ("uniform", "normal") and not d.low <= d.high:
        raise SimulatorInputError(f"{path}: low={d.low} must not exceed high={d.high}")
    if kind == "normal" and d.std < 0:
        raise SimulatorInputError(f"{path}.std={d.std} must be >= 0")
    if kind == "categorical":
        probs = np.asarray(d.probs, np.float64)
        if len(d.choices) == 0 or len(d.choices) != len(probs):
            raise SimulatorInputError(f"{path}: choices and probs must be non-empty and of equal length")
        if np.any(probs < 0) or probs.sum() <= 0:
            raise SimulatorInputError(f"{path}.probs={tuple(d.probs)} must be >= 0 with a positive sum")


def validate_pair(path: str, d: ml_collections.ConfigDict) -> None:
    """Raises `SimulatorInputError` naming `path` if `d` is not a valid pair distribution."""
    if d.distribution not in PAIR_KINDS:
        raise SimulatorInputError(f"{path}.distribution={d.distribution!r} is not one of {PAIR_KINDS}")
    for field in ("mean", "low", "high"):
        if len(d[field]) != 2:
            raise SimulatorInputError(f"{path}.{field}={d[field]} must hold 2 values (wm, gm)")
    if d.distribution != "fixed" and not np.all(np.asarray(d.low) <= np.asarray(d.high)):
        raise SimulatorInputError(f"{path}: low={d.low} must not exceed high={d.high}")
    if d.distribution == "bivariate_normal":
        cov = np.asarray(d.covariance, np.float64)
        if cov.shape != (2, 2) or not np.allclose(cov, cov.T) or np.linalg.eigvalsh(cov).min() < 0:
            raise SimulatorInputError(
                f"{path}.covariance={d.covariance} must be a symmetric positive semi-definite 2x2 matrix")


def scalar_support(d: ml_collections.ConfigDict) -> tuple[float, float]:
    """The smallest and largest value a draw can take."""
    if d.distribution == "fixed":
        return d.value, d.value
    if d.distribution == "categorical":
        return min(d.choices), max(d.choices)
    return d.low, d.high


def scalar_mean(d: ml_collections.ConfigDict) -> float:
    """The mean of the distribution (clipping of 'normal' ignored)."""
    if d.distribution == "fixed":
        return d.value
    if d.distribution == "uniform":
        return 0.5 * (d.low + d.high)
    if d.distribution == "normal":
        return d.mean
    probs = np.asarray(d.probs, np.float64)
    return float(np.dot(d.choices, probs / probs.sum()))


def draw_scalar(key: jax.Array, d: ml_collections.ConfigDict) -> jax.Array:
    """One draw, a float32 scalar."""
    if d.distribution == "fixed":
        return jnp.float32(d.value)
    if d.distribution == "uniform":
        return jax.random.uniform(key, (), jnp.float32, d.low, d.high)
    if d.distribution == "normal":
        return jnp.clip(d.mean + d.std * jax.random.normal(key, (), jnp.float32), d.low, d.high)
    probs = np.asarray(d.probs, np.float64)
    choices = jnp.asarray(d.choices, jnp.float32)
    return jax.random.choice(key, choices, p=jnp.asarray(probs / probs.sum(), jnp.float32))


def pair_mean(d: ml_collections.ConfigDict) -> np.ndarray:
    """The mean (wm, gm), shape (2,)."""
    if d.distribution == "uniform":
        return 0.5 * (np.asarray(d.low) + np.asarray(d.high))
    return np.asarray(d.mean, np.float64)


def draw_pair(key: jax.Array, d: ml_collections.ConfigDict) -> jax.Array:
    """One draw (wm, gm), float32 shape (2,)."""
    if d.distribution == "fixed":
        return jnp.asarray(d.mean, jnp.float32)
    low, high = jnp.asarray(d.low, jnp.float32), jnp.asarray(d.high, jnp.float32)
    if d.distribution == "uniform":
        return jax.random.uniform(key, (2,), jnp.float32, low, high)
    cov = np.asarray(d.covariance, np.float64)
    chol = np.linalg.cholesky(cov + 1e-12 * np.eye(2))
    z = jax.random.normal(key, (2,), jnp.float32)
    draw = jnp.asarray(d.mean, jnp.float32) + jnp.asarray(chol, jnp.float32) @ z
    return jnp.clip(draw, low, high)
