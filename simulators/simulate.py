"""Simulating low-field images: one sample's pipeline, batches of patches, whole volumes.

One sample, slice axis last, in this order:

1. with `contrast_grid='hf'`: the tissue contrast change on the HF grid;
2. slice-profile blur and slice sampling, one matmul (and one more for the
   blurred tissue-factor map when the contrast is changed on the LF grid);
3. optional in-plane blur;
4. with `contrast_grid='lf'` (reference): the contrast change on the blurred maps;
5. optional gamma, optional bias field;
6. noise at σ = tissue mean / SNR.

Steps 2–4 are linear or pointwise, so a patch with its margin gives exactly the
LF slices that the whole volume gives there (in-plane blur and the bias field
aside, which see only the patch).
"""
from __future__ import annotations

import functools
from typing import Mapping, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from simulators.bias_field import bias_field
from simulators.contrast import apply_gamma, contrast_change, scale_tissues, tissue_factor_map
from simulators.errors import SimulatorInputError
from simulators.inplane_blur import blur_inplane
from simulators.noise import add_noise
from simulators.slice_sampling import sample_slices, slice_sampling_matrix
from simulators.spec import SimulatorSpec

TISSUES = ("GM", "WM", "CSF")


def _blur_inplane(lf: jax.Array, params: Mapping[str, jax.Array], spec: SimulatorSpec):
    if spec.inplane_half_width_mm == 0.0:
        return lf
    return blur_inplane(lf, params["inplane_fwhm_mm"], spec.hf_voxel_mm,
                        spec.inplane_half_width_mm, spec.edge_mode)


def simulate_one(key: jax.Array, hf: jax.Array, tissue: Optional[jax.Array],
                 tissue_means: jax.Array, params: Mapping[str, jax.Array], *,
                 spec: SimulatorSpec, margin: int, n_lf: int) -> jax.Array:
    """One sample: hf (X, Y, n_hf) whose slice i is HF index i − margin → LF (X, Y, n_lf).

    tissue (X, Y, n_hf, 3) or None, tissue_means (3,), params: scalars.
    """
    change = contrast_change(spec.contrast, tissue_means, params)
    weights = slice_sampling_matrix(
        spec.slice_profile, params, n_hf=hf.shape[-1], n_lf=n_lf, factor=spec.factor,
        margin=margin, hf_voxel_mm=spec.hf_voxel_mm, half_width_mm=spec.slice_half_width_mm,
        edge_mode=spec.edge_mode)
    on_hf_grid = spec.needs_tissue and spec.contrast_grid == "hf"
    on_lf_grid = spec.needs_tissue and spec.contrast_grid == "lf"
    image = scale_tissues(hf, tissue, change.tissue_factors) if on_hf_grid else hf
    lf = _blur_inplane(sample_slices(image, weights), params, spec)
    if on_lf_grid:
        # Σ_t f_t · blur(p_t) = blur(Σ_t f_t · p_t): one blur for the maps, not three.
        lf = lf * _blur_inplane(sample_slices(tissue_factor_map(tissue, change.tissue_factors),
                                              weights), params, spec)
    if spec.gamma_enabled:
        lf = apply_gamma(lf, params["gamma"], change.reference_intensity)
    if spec.bias_enabled:
        lf = lf * bias_field(lf.shape, spec.factor, spec.hf_voxel_mm,
                             spec.bias_field_length_mm, params)
    return add_noise(key, lf, change.noise_sigma, spec.noise)


def _check_tissue(spec: SimulatorSpec, hf_shape: tuple, tissue) -> None:
    if tissue is None:
        if spec.needs_tissue:
            raise SimulatorInputError(
                f"contrast model {spec.contrast!r} needs tissue maps (GM, WM, CSF); "
                "give them, or set sim.contrast='none'")
    elif tuple(tissue.shape) != tuple(hf_shape) + (3,):
        raise SimulatorInputError(
            f"tissue maps of shape {tuple(tissue.shape)} do not match the image "
            f"{tuple(hf_shape)} (expected {tuple(hf_shape) + (3,)})")


def simulate_batch(key: jax.Array, hf: jax.Array, tissue: Optional[jax.Array],
                   tissue_means: jax.Array, params: Mapping[str, jax.Array],
                   config: ml_collections.ConfigDict) -> jax.Array:
    """HF patches with margin (B, X, Y, Z + 2m) → LF patches (B, X, Y, Z / r).

    tissue (B, X, Y, Z + 2m, 3) GM/WM/CSF probabilities (None if the contrast
    model needs none); tissue_means (B, 3); params from `sample_parameters`, each
    (B,). Sample b gets noise key b of `jax.random.split(key, B)`.
    """
    spec = SimulatorSpec.from_config(config)
    batch, n_hf = hf.shape[0], hf.shape[-1]
    margin = spec.margin
    depth = n_hf - 2 * margin
    if hf.ndim != 4 or depth <= 0 or depth % spec.factor:
        raise SimulatorInputError(
            f"HF patches of shape {tuple(hf.shape)}: expected (B, X, Y, Z + 2·{margin}) "
            f"with Z a positive multiple of r={spec.factor}")
    _check_tissue(spec, hf.shape, tissue)
    one = functools.partial(simulate_one, spec=spec, margin=margin, n_lf=depth // spec.factor)
    keys = jax.random.split(key, batch)
    return jax.vmap(one)(keys, hf, tissue, jnp.asarray(tissue_means, jnp.float32), params)


def tissue_means_from_volume(hf: np.ndarray, tissue: Optional[np.ndarray],
                             threshold: float = 0.9) -> np.ndarray:
    """Mean intensity of GM, WM, CSF where each map > `threshold`, shape (3,).

    Without tissue maps, all three are the mean over the foreground (voxels above
    the volume's mean intensity).
    """
    hf = np.asarray(hf, np.float32)
    if tissue is None:
        return np.full(3, hf[hf > hf.mean()].mean(), np.float32)
    means = []
    for t, name in enumerate(TISSUES):
        mask = np.asarray(tissue[..., t]) > threshold
        if not mask.any():
            raise SimulatorInputError(
                f"no voxel of the {name} map exceeds {threshold}, so the mean {name} intensity is unknown: "
                f"the volume holds too little {name} (a small crop?), or the map is not a probability map")
        means.append(hf[mask].mean())
    return np.asarray(means, np.float32)


@functools.partial(jax.jit, static_argnames=("spec", "n_lf"))
def _simulate_volume(key, hf, tissue, tissue_means, params, *, spec, n_lf):
    return simulate_one(key, hf, tissue, tissue_means, params, spec=spec, margin=0, n_lf=n_lf)


def simulate_volume(key: jax.Array, hf: jax.Array, tissue: Optional[jax.Array],
                    params_single: Mapping[str, jax.Array], config: ml_collections.ConfigDict,
                    tissue_means: Optional[jax.Array] = None) -> jax.Array:
    """A whole HF volume (X, Y, Z) → LF (X, Y, Z // r), slice axis last.

    LF slice j is centred at HF index r·j + (r − 1)/2; the last Z mod r HF slices
    start no LF slice. Profiles that reach past the volume's ends see the volume
    folded back by `config.edge_mode` (default 'reflect'). `tissue_means` default:
    `tissue_means_from_volume(hf, tissue, config.tissue_threshold)`.
    params_single: one value per parameter (shape () or (1,)).
    """
    spec = SimulatorSpec.from_config(config)
    if hf.ndim != 3 or hf.shape[-1] < spec.factor:
        raise SimulatorInputError(
            f"volume of shape {tuple(hf.shape)}: expected (X, Y, Z) with Z >= r={spec.factor}")
    _check_tissue(spec, hf.shape, tissue)
    if tissue_means is None:
        tissue_means = tissue_means_from_volume(hf, tissue, spec.tissue_threshold)
    params = {k: jnp.asarray(v, jnp.float32).reshape(()) for k, v in params_single.items()}
    return _simulate_volume(key, jnp.asarray(hf, jnp.float32),
                            None if tissue is None else jnp.asarray(tissue, jnp.float32),
                            jnp.asarray(tissue_means, jnp.float32), params,
                            spec=spec, n_lf=hf.shape[-1] // spec.factor)
