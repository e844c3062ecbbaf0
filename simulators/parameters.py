"""The named parameters of one low-field degradation, drawn independently per sample.

| name | unit | drives |
| --- | --- | --- |
| `slice_thickness_fraction` | – | slice thickness / slice spacing (spacing = r · hf_voxel_mm) |
| `slice_edge_fwhm_mm` | mm | edge softness of the `rect_gaussian` profile |
| `inplane_fwhm_mm` | mm | in-plane blur (off while fixed at 0) |
| `snr_wm`, `snr_gm` | – | contrast change and noise σ (drawn jointly) |
| `contrast_gm`, `contrast_wm`, `contrast_csf` | – | `tissue_scaling` contrast |
| `gamma` | – | intensity nonlinearity (off while fixed at 1) |
| `bias_x`, `bias_y`, `bias_z` | log-intensity per `bias_field_length_mm` | bias field (off while fixed at 0) |
| `slice_thickness_mm` | mm | derived, fraction · spacing: the slice profile width (FWHM of `gaussian`) |
| `slice_gap_mm` | mm | derived, spacing − slice_thickness_mm |

Randomness: one key per sample (so a sample's draw depends on its own key, never
on how the batch is spread over devices), split again, one key per parameter.
With `draw_mode='per_sample'` the sample keys are split from the step's key;
with 'per_subject' each is the run's key folded with the sample's subject index,
so a subject keeps one draw for the whole run (the published protocol).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from simulators import distributions
from simulators.errors import SimulatorInputError

SCALAR_PARAMETERS = ("slice_thickness_fraction", "slice_edge_fwhm_mm", "inplane_fwhm_mm",
                     "contrast_gm", "contrast_wm", "contrast_csf", "gamma",
                     "bias_x", "bias_y", "bias_z")
SNR_PARAMETERS = ("snr_wm", "snr_gm")
DERIVED_PARAMETERS = ("slice_thickness_mm", "slice_gap_mm")
PARAMETER_NAMES = SCALAR_PARAMETERS + SNR_PARAMETERS + DERIVED_PARAMETERS
WIDTHS = ("slice_thickness_fraction", "slice_edge_fwhm_mm", "inplane_fwhm_mm")


def validate_parameter_config(config: ml_collections.ConfigDict) -> None:
    """Raises `SimulatorInputError` naming the first invalid distribution of `config`."""
    for name in SCALAR_PARAMETERS:
        distributions.validate_scalar(f"sim.parameters.{name}", config.parameters[name])
    distributions.validate_pair("sim.snr", config.snr)
    for name in WIDTHS:
        if distributions.scalar_support(config.parameters[name])[0] < 0:
            raise SimulatorInputError(f"sim.parameters.{name} can draw negative widths")


def with_derived(theta: dict[str, jax.Array], config: ml_collections.ConfigDict) -> dict:
    """Adds `slice_thickness_mm` = fraction · spacing and `slice_gap_mm` = spacing − thickness."""
    spacing_mm = config.factor * config.hf_voxel_mm
    thickness_mm = theta["slice_thickness_fraction"] * spacing_mm
    return {**theta, "slice_thickness_mm": thickness_mm, "slice_gap_mm": spacing_mm - thickness_mm}


def _draw_one(key: jax.Array, config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
    snr_key, *keys = jax.random.split(key, len(SCALAR_PARAMETERS) + 1)
    theta = {name: distributions.draw_scalar(k, config.parameters[name])
              for name, k in zip(SCALAR_PARAMETERS, keys)}
    snr = distributions.draw_pair(snr_key, config.snr)
    theta.update(snr_wm=snr[0], snr_gm=snr[1])
    return with_derived(theta, config)


def mean_parameters(config: ml_collections.ConfigDict, batch_size: int) -> dict[str, jax.Array]:
    """Every parameter at its configured mean, each of shape (batch_size,)."""
    theta = {name: distributions.scalar_mean(config.parameters[name])
              for name in SCALAR_PARAMETERS}
    theta.update(zip(SNR_PARAMETERS, distributions.pair_mean(config.snr)))
    theta = {k: jnp.full((batch_size,), v, jnp.float32) for k, v in theta.items()}
    return with_derived(theta, config)


def sample_parameters(key: jax.Array, config: ml_collections.ConfigDict,
                      batch_size: int) -> dict[str, jax.Array]:
    """Independent per-sample draws, each of shape (batch_size,), float32.

    Sample b draws from key b of `jax.random.split(key, batch_size)`. With
    `config.deterministic` every sample gets the mean parameters (the key is
    unused). Works inside `jax.jit`; `batch_size` is static.
    """
    return sample_parameters_from_keys(jax.random.split(key, batch_size), config)


def sample_parameters_from_keys(keys: jax.Array, config: ml_collections.ConfigDict,
                                validated: bool = False) -> dict[str, jax.Array]:
    """One draw per key: keys (B,) → parameters each of shape (B,), float32.

    validated: the config was validated already (its `SimulatorSpec` was built)."""
    if not validated:
        try:
            validate_parameter_config(config)
        except (AttributeError, KeyError) as e:
            raise SimulatorInputError(f"simulator config lacks a field: {e}") from None
    if config.deterministic:
        return mean_parameters(config, keys.shape[0])
    return jax.vmap(lambda k: _draw_one(k, config))(keys)
