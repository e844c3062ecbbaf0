"""The named parameters of one low-field degradation, drawn independently per sample.

| name | unit | drives |
| --- | --- | --- |
| `slice_thickness_mm` | mm | slice profile width (the FWHM of the `gaussian` profile) |
| `slice_edge_fwhm_mm` | mm | edge softness of the `rect_gaussian` profile |
| `inplane_fwhm_mm` | mm | in-plane blur (off while fixed at 0) |
| `snr_wm`, `snr_gm` | – | contrast change and noise σ (drawn jointly) |
| `contrast_gm`, `contrast_wm`, `contrast_csf` | – | `tissue_scaling` contrast |
| `gamma` | – | intensity nonlinearity (off while fixed at 1) |
| `bias_x`, `bias_y`, `bias_z` | log-intensity per `bias_field_length_mm` | bias field (off while fixed at 0) |
| `slice_gap_mm` | mm | derived, r · hf_voxel_mm − slice_thickness_mm; reported for logging, not drawn |

Randomness: one key per sample, split from the batch key (so a sample's draw
depends on its index, never on how the batch is spread over devices); each
sample's key is split again, one key per parameter.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from simulators import distributions
from simulators.errors import SimulatorInputError

SCALAR_PARAMETERS = ("slice_thickness_mm", "slice_edge_fwhm_mm", "inplane_fwhm_mm",
                     "contrast_gm", "contrast_wm", "contrast_csf", "gamma",
                     "bias_x", "bias_y", "bias_z")
SNR_PARAMETERS = ("snr_wm", "snr_gm")
PARAMETER_NAMES = SCALAR_PARAMETERS + SNR_PARAMETERS + ("slice_gap_mm",)


def validate_parameter_config(config: ml_collections.ConfigDict) -> None:
    """Raises `SimulatorInputError` naming the first invalid distribution of `config`."""
    for name in SCALAR_PARAMETERS:
        distributions.validate_scalar(f"sim.parameters.{name}", config.parameters[name])
    distributions.validate_pair("sim.snr", config.snr)
    for name in ("slice_thickness_mm", "slice_edge_fwhm_mm", "inplane_fwhm_mm"):
        if distributions.scalar_support(config.parameters[name])[0] < 0:
            raise SimulatorInputError(f"sim.parameters.{name} can draw negative widths")


def with_slice_gap(params: dict[str, jax.Array], config: ml_collections.ConfigDict) -> dict:
    """Adds the derived `slice_gap_mm` = r · hf_voxel_mm − slice_thickness_mm."""
    spacing_mm = config.factor * config.hf_voxel_mm
    return {**params, "slice_gap_mm": spacing_mm - params["slice_thickness_mm"]}


def _draw_one(key: jax.Array, config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
    snr_key, *keys = jax.random.split(key, len(SCALAR_PARAMETERS) + 1)
    params = {name: distributions.draw_scalar(k, config.parameters[name])
              for name, k in zip(SCALAR_PARAMETERS, keys)}
    snr = distributions.draw_pair(snr_key, config.snr)
    params.update(snr_wm=snr[0], snr_gm=snr[1])
    return with_slice_gap(params, config)


def mean_parameters(config: ml_collections.ConfigDict, batch_size: int) -> dict[str, jax.Array]:
    """Every parameter at its configured mean, each of shape (batch_size,)."""
    params = {name: distributions.scalar_mean(config.parameters[name])
              for name in SCALAR_PARAMETERS}
    params.update(zip(SNR_PARAMETERS, distributions.pair_mean(config.snr)))
    params = {k: jnp.full((batch_size,), v, jnp.float32) for k, v in params.items()}
    return with_slice_gap(params, config)


def sample_parameters(key: jax.Array, config: ml_collections.ConfigDict,
                      batch_size: int) -> dict[str, jax.Array]:
    """Independent per-sample draws, each of shape (batch_size,), float32.

    With `config.deterministic` every sample gets the mean parameters (the key is
    unused). Works inside `jax.jit`; `batch_size` is static.
    """
    try:
        validate_parameter_config(config)
    except (AttributeError, KeyError) as e:
        raise SimulatorInputError(f"simulator config lacks a field: {e}") from None
    if config.deterministic:
        return mean_parameters(config, batch_size)
    keys = jax.random.split(key, batch_size)
    return jax.vmap(lambda k: _draw_one(k, config))(keys)
