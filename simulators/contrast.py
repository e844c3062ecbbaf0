"""Low-field contrast: how tissue intensities change, and the noise level that goes with it.

Tissue maps are probabilities (GM, WM, CSF) stacked last; `tissue_means` are the
mean HF intensities of GM, WM and CSF over the whole subject (maps > 0.9), so a
small patch gets the same contrast change as the volume it came from.

Models (the `contrast` field of the config):

- `snr_gm_fixed` (reference, docs/method.md §3): σ = mean_GM / snr_gm;
  I' = (GM + k·WM + CSF)·I with k = snr_wm·σ / mean_WM. GM and CSF keep their
  intensity; WM is rescaled so that its SNR is snr_wm.
- `snr_wm_fixed` (the reference's variant): σ = mean_WM / snr_wm;
  I' = (k·GM + WM + CSF)·I with k = snr_gm·σ / mean_GM.
- `tissue_scaling`: I' = (c_GM·GM + c_WM·WM + c_CSF·CSF)·I with the sampled
  factors `contrast_gm`, `contrast_wm`, `contrast_csf`; σ = c_WM·mean_WM / snr_wm.
- `none`: intensities unchanged; σ = mean_WM / snr_wm.

An optional gamma, I'' = I_ref·(I'/I_ref)^γ around the intensity I_ref of the
tissue whose SNR is held, changes contrast smoothly without moving that tissue.
"""
from __future__ import annotations

from typing import Mapping, NamedTuple, Optional

import jax
import jax.numpy as jnp

CONTRAST_MODELS = ("snr_gm_fixed", "snr_wm_fixed", "tissue_scaling", "none")
GM, WM, CSF = 0, 1, 2


class ContrastChange(NamedTuple):
    """One sample's contrast change."""
    tissue_factors: Optional[jax.Array]   # (3,) factor per tissue (GM, WM, CSF); None: unchanged
    noise_sigma: jax.Array                # () noise standard deviation, image intensity units
    reference_intensity: jax.Array        # () mean intensity of the tissue whose SNR is held


def contrast_change(model: str, tissue_means: jax.Array,
                    theta: Mapping[str, jax.Array]) -> ContrastChange:
    """The tissue factors and noise σ of `model` for one sample; tissue_means (3,)."""
    mean_gm, mean_wm = tissue_means[GM], tissue_means[WM]
    one = jnp.ones_like(mean_gm)
    if model == "snr_gm_fixed":
        sigma = mean_gm / theta["snr_gm"]
        k = theta["snr_wm"] * sigma / mean_wm
        return ContrastChange(jnp.stack([one, k, one]), sigma, mean_gm)
    if model == "snr_wm_fixed":
        sigma = mean_wm / theta["snr_wm"]
        k = theta["snr_gm"] * sigma / mean_gm
        return ContrastChange(jnp.stack([k, one, one]), sigma, mean_wm)
    if model == "tissue_scaling":
        factors = jnp.stack([theta["contrast_gm"], theta["contrast_wm"], theta["contrast_csf"]])
        wm_intensity = factors[WM] * mean_wm
        return ContrastChange(factors, wm_intensity / theta["snr_wm"], wm_intensity)
    if model == "none":
        return ContrastChange(None, mean_wm / theta["snr_wm"], mean_wm)
    raise ValueError(f"unknown contrast model {model!r}; expected one of {CONTRAST_MODELS}")


def tissue_factor_map(tissue: jax.Array, factors: jax.Array) -> jax.Array:
    """Σ_t factor_t · p_t: tissue (..., 3), factors (3,) → (...)."""
    return (tissue[..., 0] * factors[GM] + tissue[..., 1] * factors[WM]
            + tissue[..., 2] * factors[CSF])


def scale_tissues(image: jax.Array, tissue: jax.Array, factors: jax.Array) -> jax.Array:
    """I' = (Σ_t factor_t · p_t) · I; image (...), tissue (..., 3), factors (3,)."""
    return image * tissue_factor_map(tissue, factors)


def apply_gamma(image: jax.Array, gamma: jax.Array, reference_intensity: jax.Array) -> jax.Array:
    """I_ref · (I / I_ref)^γ for I > 0, and 0 elsewhere (smooth in γ)."""
    positive = image > 0
    ratio = jnp.where(positive, image / reference_intensity, 1.0)
    return jnp.where(positive, reference_intensity * ratio**gamma, 0.0)
