"""The static part of a simulator config: the switches and sizes fixed at trace time.

`SimulatorSpec.from_config` validates a `sim` config (raising
`SimulatorInputError` that names the field at fault) and derives what shapes and
control flow depend on: the slice-profile half-width for the widest profile the
distributions can draw (truncated at `psf_truncate_sigmas` σ), hence the patch
margin, and which optional effects are on. It is hashable, so it can be a static
argument of `jax.jit`.
"""
from __future__ import annotations

import dataclasses

import ml_collections

from simulators import distributions
from simulators.config import DRAW_MODES
from simulators.contrast import CONTRAST_MODELS
from simulators.errors import SimulatorInputError
from simulators.noise import NOISE_MODELS
from simulators.psf_matrix import EDGE_MODES
from simulators.parameters import validate_parameter_config
from simulators.slice_profile import PROFILES, half_width_mm
from simulators.slice_sampling import margin_hf_slices

CONTRAST_GRIDS = ("lf", "hf")
_CHOICES = {"slice_profile": PROFILES, "edge_mode": EDGE_MODES, "contrast": CONTRAST_MODELS,
            "contrast_grid": CONTRAST_GRIDS, "noise": NOISE_MODELS}


@dataclasses.dataclass(frozen=True)
class SimulatorSpec:
    factor: int                   # r: HF slices per LF slice
    hf_voxel_mm: float            # HF voxel size along the slices, mm
    slice_profile: str
    slice_half_width_mm: float    # static truncation of the slice profile
    inplane_half_width_mm: float  # static truncation of the in-plane blur; 0: no in-plane blur
    edge_mode: str
    contrast: str
    contrast_grid: str            # 'lf' (reference): contrast after blurring; 'hf': before
    noise: str
    lf_brain_threshold: float     # LF background (blurred tissue sum below this) set to 0; 0: off
    gamma_enabled: bool
    bias_enabled: bool
    bias_field_length_mm: float
    tissue_threshold: float

    @property
    def margin(self) -> int:
        """HF slices needed on each side of a patch (`required_margin`)."""
        return margin_hf_slices(self.slice_half_width_mm, self.hf_voxel_mm, self.factor)

    @property
    def needs_tissue(self) -> bool:
        return self.contrast != "none"

    @classmethod
    def of(cls, spec_or_config: "SimulatorSpec | ml_collections.ConfigDict") -> "SimulatorSpec":
        """A spec as given, or built (and validated) from a `sim` config: build it once per run and
        hand it down."""
        return spec_or_config if isinstance(spec_or_config, cls) else cls.from_config(spec_or_config)

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict) -> "SimulatorSpec":
        try:
            return _spec(config)
        except (AttributeError, KeyError) as e:
            raise SimulatorInputError(f"simulator config lacks a field: {e}") from None


def _is_fixed_at(d: ml_collections.ConfigDict, value: float) -> bool:
    return distributions.scalar_support(d) == (value, value)


def _validate(config: ml_collections.ConfigDict) -> None:
    if not isinstance(config.factor, int) or config.factor < 1:
        raise SimulatorInputError(f"sim.factor={config.factor!r} must be a positive integer")
    for field in ("hf_voxel_mm", "psf_truncate_sigmas", "bias_field_length_mm"):
        if not config[field] > 0:
            raise SimulatorInputError(f"sim.{field}={config[field]!r} must be > 0")
    if config.draw_mode not in DRAW_MODES:
        raise SimulatorInputError(f"sim.draw_mode={config.draw_mode!r} is not one of {DRAW_MODES}")
    if not 0.0 <= config.lf_brain_threshold < 1.0:
        raise SimulatorInputError(f"sim.lf_brain_threshold={config.lf_brain_threshold!r} must be in [0, 1)")
    for field, choices in _CHOICES.items():
        if config[field] not in choices:
            raise SimulatorInputError(f"sim.{field}={config[field]!r} is not one of {choices}")
    validate_parameter_config(config)


def _spec(config: ml_collections.ConfigDict) -> SimulatorSpec:
    _validate(config)
    p = config.parameters
    truncate = config.psf_truncate_sigmas
    spacing_mm = config.factor * config.hf_voxel_mm
    max_thickness = distributions.scalar_support(p.slice_thickness_fraction)[1] * spacing_mm
    max_edge = distributions.scalar_support(p.slice_edge_fwhm_mm)[1]
    max_inplane = distributions.scalar_support(p.inplane_fwhm_mm)[1]
    inplane_on = not _is_fixed_at(p.inplane_fwhm_mm, 0.0)
    return SimulatorSpec(
        factor=config.factor,
        hf_voxel_mm=float(config.hf_voxel_mm),
        slice_profile=config.slice_profile,
        slice_half_width_mm=half_width_mm(config.slice_profile, max_thickness, max_edge, truncate),
        inplane_half_width_mm=(half_width_mm("gaussian", max_inplane, 0.0, truncate)
                               if inplane_on else 0.0),
        edge_mode=config.edge_mode,
        contrast=config.contrast,
        contrast_grid=config.contrast_grid,
        noise=config.noise,
        lf_brain_threshold=float(config.lf_brain_threshold),
        gamma_enabled=not _is_fixed_at(p.gamma, 1.0),
        bias_enabled=not all(_is_fixed_at(p[f"bias_{a}"], 0.0) for a in "xyz"),
        bias_field_length_mm=float(config.bias_field_length_mm),
        tissue_threshold=float(config.tissue_threshold),
    )
