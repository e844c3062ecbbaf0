"""Simulating low-field images: one sample's pipeline, batches of patches, whole volumes.

The imaged object. With tissue maps, the HF object is the image times the
tissue sum S = clip(GM + WM + CSF, 0, 1), and 0 where S < `lf_brain_threshold`
(`hf_object`): where the maps miss part of the brain (partial volume, a map
that lacks sulcal CSF), the LF input and the training target both leave it
out, so the network never learns to invent intensity (the published code
multiplies its target by the same sum).
The contrast change multiplies the object by the tissue-weighted factor
relative to that sum, (Σ_t f_t·p_t) / S, so that with every factor at 1 (or
`contrast='none'`) the LF is exactly the blurred, sampled object.

One sample, slice axis last, in this order:

1. with `contrast_grid='hf'`: the tissue contrast change on the HF grid;
2. slice-profile blur and slice sampling, one matmul (and one more for the
   blurred tissue-factor map when the contrast is changed on the LF grid);
3. optional in-plane blur;
4. with `contrast_grid='lf'` (reference): the contrast change on the blurred maps;
5. optional gamma, optional bias field;
6. noise at σ = tissue mean / SNR;
7. background removal: LF voxels where the blurred tissue sum is below
   `lf_brain_threshold` are set to 0, as in a skull-stripped low-field scan.

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
from simulators.contrast import apply_gamma, contrast_change, tissue_factor_map
from simulators.errors import SimulatorInputError
from simulators.inplane_blur import blur_inplane
from simulators.noise import add_noise
from simulators.parameters import mean_parameters
from simulators.slice_sampling import sample_slices, slice_sampling_matrix
from simulators.spec import SimulatorSpec
from simulators.tissue import tissue_means as volume_tissue_means

_EMPTY = 1e-6   # a tissue sum below this is background: the contrast factor there is 1


def tissue_sum(tissue: jax.Array) -> jax.Array:
    """S = clip(GM + WM + CSF, 0, 1): tissue (..., 3) → (...)."""
    return jnp.clip(jnp.sum(tissue, axis=-1), 0.0, 1.0)


def hf_object(hf: jax.Array, tissue: Optional[jax.Array], brain_threshold: float = 0.0) -> jax.Array:
    """The imaged object and training target: hf · S where S >= `brain_threshold`, else 0
    (hf unchanged without tissue maps)."""
    if tissue is None:
        return hf
    total = tissue_sum(tissue)
    return jnp.where(total >= brain_threshold, hf * total, 0.0)


def _relative(weighted: jax.Array, total: jax.Array) -> jax.Array:
    """weighted / total where there is tissue, else 1."""
    return jnp.where(total > _EMPTY, weighted / jnp.maximum(total, _EMPTY), 1.0)


def _blur_inplane(lf: jax.Array, theta: Mapping[str, jax.Array], spec: SimulatorSpec):
    if spec.inplane_half_width_mm == 0.0:
        return lf
    return blur_inplane(lf, theta["inplane_fwhm_mm"], spec.hf_voxel_mm,
                        spec.inplane_half_width_mm, spec.edge_mode)


def simulate_one(key: jax.Array, hf: jax.Array, tissue: Optional[jax.Array],
                 tissue_means: jax.Array, theta: Mapping[str, jax.Array], *,
                 spec: SimulatorSpec, margin: int, n_lf: int) -> jax.Array:
    """One sample: hf (X, Y, n_hf) whose slice i is HF index i − margin → LF (X, Y, n_lf).

    tissue (X, Y, n_hf, 3) or None, tissue_means (3,), theta: scalars.
    """
    change = contrast_change(spec.contrast, tissue_means, theta)
    weights = slice_sampling_matrix(
        spec.slice_profile, theta, n_hf=hf.shape[-1], n_lf=n_lf, factor=spec.factor,
        margin=margin, hf_voxel_mm=spec.hf_voxel_mm, half_width_mm=spec.slice_half_width_mm,
        edge_mode=spec.edge_mode)

    def to_lf(volume):
        return _blur_inplane(sample_slices(volume, weights), theta, spec)

    image = hf_object(hf, tissue, spec.lf_brain_threshold)
    contrast = change.tissue_factors is not None
    if contrast and spec.contrast_grid == "hf":
        image = image * _relative(tissue_factor_map(tissue, change.tissue_factors), tissue_sum(tissue))
    lf = to_lf(image)
    support = None if tissue is None else to_lf(tissue_sum(tissue))
    if contrast and spec.contrast_grid == "lf":
        # Σ_t f_t · blur(p_t) = blur(Σ_t f_t · p_t): one blur for the maps, not three.
        lf = lf * _relative(to_lf(tissue_factor_map(tissue, change.tissue_factors)), support)
    if spec.gamma_enabled:
        lf = apply_gamma(lf, theta["gamma"], change.reference_intensity)
    if spec.bias_enabled:
        lf = lf * bias_field(lf.shape, spec.factor, spec.hf_voxel_mm,
                             spec.bias_field_length_mm, theta)
    lf = add_noise(key, lf, change.noise_sigma, spec.noise)
    if support is None or spec.lf_brain_threshold == 0.0:
        return lf
    return jnp.where(support >= spec.lf_brain_threshold, lf, 0.0)


def lf_brain_mean(brain_means: jax.Array, tissue_means: jax.Array,
                  theta: Mapping[str, jax.Array], spec: SimulatorSpec) -> jax.Array:
    """The expected mean LF intensity over the brain, before noise: Σ_t f_t · c_t.

    brain_means (3,): c_t, each tissue's part of the subject's LF brain mean
    (`brain_means_by_tissue`); f_t the contrast factors of `theta`. Exact for
    the mean slice profile without noise; other thicknesses move it by a few
    tenths of a percent; gamma and the bias field are not accounted for (both
    off by default). This is the training-time value of
    `iqt.data.normalization.lf_scale`, which inference measures on the LF itself.
    """
    factors = contrast_change(spec.contrast, tissue_means, theta).tissue_factors
    return jnp.sum(brain_means) if factors is None else jnp.sum(factors * brain_means)


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
                   tissue_means: jax.Array, theta: Mapping[str, jax.Array],
                   spec: SimulatorSpec | ml_collections.ConfigDict) -> jax.Array:
    """HF patches with margin (B, X, Y, Z + 2m) → LF patches (B, X, Y, Z / r).

    tissue (B, X, Y, Z + 2m, 3) GM/WM/CSF probabilities (None if the contrast
    model needs none); tissue_means (B, 3); theta from `sample_parameters`, each
    (B,). Sample b gets noise key b of `jax.random.split(key, B)`. `spec`: the
    run's `SimulatorSpec` (or its `sim` config, validated here).
    """
    spec = SimulatorSpec.of(spec)
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
    return jax.vmap(one)(keys, hf, tissue, jnp.asarray(tissue_means, jnp.float32), theta)


def brain_means_by_tissue(hf: np.ndarray, tissue: Optional[np.ndarray],
                          config: ml_collections.ConfigDict) -> np.ndarray:
    """c_t, shape (3,): each tissue's part of the mean brain intensity of the subject's LF volume.

    The volume (X, Y, Z), slice axis last, is simulated at the config's mean
    parameters without contrast change or noise; c_t is the mean over the LF
    brain (blurred tissue sum >= `lf_brain_threshold`, or > 0) of tissue t's part
    of the LF object (with `contrast_grid='lf'`: the LF object times tissue t's
    blurred share; with 'hf': tissue t's share of the object, blurred). So
    Σ_t f_t·c_t (`lf_brain_mean`) is the
    LF brain mean after a contrast change by factors f_t, before noise. Without
    maps: the LF brain mean (LF > 0), all in the first entry.
    """
    spec = SimulatorSpec.from_config(config)
    theta = {k: jnp.asarray(v[0]) for k, v in mean_parameters(config, 1).items()}
    hf = jnp.asarray(hf, jnp.float32)
    tissue = None if tissue is None else jnp.asarray(tissue, jnp.float32)
    return np.asarray(_brain_means(hf, tissue, theta, spec=spec, n_lf=hf.shape[-1] // spec.factor))


@functools.partial(jax.jit, static_argnames=("spec", "n_lf"))
def _brain_means(hf, tissue, theta, *, spec, n_lf):
    weights = slice_sampling_matrix(
        spec.slice_profile, theta, n_hf=hf.shape[-1], n_lf=n_lf, factor=spec.factor, margin=0,
        hf_voxel_mm=spec.hf_voxel_mm, half_width_mm=spec.slice_half_width_mm, edge_mode=spec.edge_mode)

    def to_lf(volume):
        return _blur_inplane(sample_slices(volume, weights), theta, spec)

    lf = to_lf(hf_object(hf, tissue, spec.lf_brain_threshold))
    if tissue is None:
        brain = lf > 0
        return jnp.stack([jnp.sum(jnp.where(brain, lf, 0.0)) / jnp.maximum(jnp.sum(brain), 1), 0.0, 0.0])
    total = tissue_sum(tissue)
    support = to_lf(total)
    brain = support >= max(spec.lf_brain_threshold, _EMPTY)
    count = jnp.maximum(jnp.sum(brain), 1)
    if spec.contrast_grid == "hf":   # the factor map multiplies the object before the blur
        parts = [to_lf(hf_object(hf, tissue, spec.lf_brain_threshold) * _relative(tissue[..., t], total))
                 for t in range(3)]
    else:                            # the blurred factor map multiplies the blurred object
        parts = [lf * _relative(to_lf(tissue[..., t]), support) for t in range(3)]
    return jnp.stack([jnp.sum(jnp.where(brain, part, 0.0)) / count for part in parts])


@functools.partial(jax.jit, static_argnames=("spec", "n_lf"))
def _simulate_volume(key, hf, tissue, tissue_means, theta, *, spec, n_lf):
    return simulate_one(key, hf, tissue, tissue_means, theta, spec=spec, margin=0, n_lf=n_lf)


def simulate_volume(key: jax.Array, hf: jax.Array, tissue: Optional[jax.Array],
                    theta_single: Mapping[str, jax.Array], config: ml_collections.ConfigDict,
                    tissue_means: Optional[jax.Array] = None) -> jax.Array:
    """A whole HF volume (X, Y, Z) → LF (X, Y, Z // r), slice axis last.

    LF slice j is centred at HF index r·j + (r − 1)/2; the last Z mod r HF slices
    start no LF slice. Profiles that reach past the volume's ends see the volume
    folded back by `config.edge_mode` (default 'reflect'). `tissue_means` default:
    `simulators.tissue_means(hf, tissue, config.tissue_threshold)`.
    theta_single: one value per parameter (shape () or (1,)).
    """
    spec = SimulatorSpec.from_config(config)
    if hf.ndim != 3 or hf.shape[-1] < spec.factor:
        raise SimulatorInputError(
            f"volume of shape {tuple(hf.shape)}: expected (X, Y, Z) with Z >= r={spec.factor}")
    _check_tissue(spec, hf.shape, tissue)
    if tissue_means is None:
        tissue_means = volume_tissue_means(hf, tissue, spec.tissue_threshold)
    theta = {k: jnp.asarray(v, jnp.float32).reshape(()) for k, v in theta_single.items()}
    return _simulate_volume(key, jnp.asarray(hf, jnp.float32),
                            None if tissue is None else jnp.asarray(tissue, jnp.float32),
                            jnp.asarray(tissue_means, jnp.float32), theta,
                            spec=spec, n_lf=hf.shape[-1] // spec.factor)
