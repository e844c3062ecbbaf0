"""The simulator section (`sim`) of a config: what is drawn, from which ranges.

Two protocols (`default_config(..., protocol=...)`):

- `design` (default): every patch draws its own degradation around the clinical
  0.36 T protocol (5 mm slices with a 1 mm gap, 0.5 mm in-plane; docs/method.md
  §1): the slice thickness, which is the FWHM of the Gaussian slice profile,
  uniform in [0.75, 0.92] of the slice spacing (5 mm ± 0.5 mm at a 6 mm
  spacing; the gap is the rest of the spacing); an in-plane Gaussian blur of
  FWHM uniform in [0, 0.5] mm; and the (SNR_WM, SNR_GM) pair, which sets both
  the GM/WM contrast and the noise, from the bivariate normal fitted to 0.36 T
  scans. `draw_mode = 'per_sample'`.
- `published`: the reference method (Lin et al., MedIA 2023; docs/method.md §3):
  thickness fixed at 0.75 of the spacing (6 of 8 HF voxels at ×8), no in-plane
  blur, one (SNR_WM, SNR_GM) draw per training subject kept for every epoch
  (`draw_mode = 'per_subject'`).

Widths are relative to the slice spacing `factor · hf_voxel_mm`, so they follow
the voxel size actually used (`hf_voxel_mm` is checked against the data in
training and taken from the input in `launch.simulate`). Every other effect
(gamma, bias field, per-tissue scaling) is present but switched off, fixed at
its neutral value; turn any on from the command line, e.g.
`--config.sim.noise=rician` or
`--config.sim.parameters.gamma.distribution=uniform`.

T2w: only the point (snr_wm, snr_gm) = (35.20, 48.35) is published. We centre a
bivariate normal there and give it the spread of the two published fits: a
coefficient of variation of 15 % per tissue (T1w 14 % / 16 %, FLAIR 17 % / 17 %)
and a correlation of 0.95 (T1w 0.94, FLAIR 0.96).
"""
from __future__ import annotations

import ml_collections

from simulators import distributions as dist
from simulators.tissue import TISSUE_THRESHOLD

T2W_SNR_CV = 0.15
T2W_SNR_CORRELATION = 0.95
PUBLISHED_THICKNESS = 0.75          # of the slice spacing: thickness 6 + gap 2 HF voxels at ×8
DESIGN_THICKNESS = (0.75, 0.92)     # of the spacing: 4.5-5.5 mm slices at a 6 mm spacing
DESIGN_INPLANE_FWHM_MM = (0.0, 0.5)
PROTOCOLS = ("design", "published")
DRAW_MODES = ("per_sample", "per_subject")


def _t2w_covariance(mean_wm: float, mean_gm: float) -> tuple:
    std_wm, std_gm = T2W_SNR_CV * mean_wm, T2W_SNR_CV * mean_gm
    cov = T2W_SNR_CORRELATION * std_wm * std_gm
    return ((std_wm**2, cov), (cov, std_gm**2))


# (snr_wm, snr_gm) at 0.36 T: mean and covariance (docs/method.md §3).
PUBLISHED_SNR = {
    "T1w": ((64.50, 54.14), ((78.47, 71.50), (71.50, 73.91))),
    "FLAIR": ((35.031, 42.329), ((34.048, 39.850), (39.850, 50.293))),
    "T2w": ((35.20, 48.35), _t2w_covariance(35.20, 48.35)),
}
SEQUENCES = tuple(PUBLISHED_SNR)


def default_config(sequence: str = "T1w", factor: int = 8, hf_voxel_mm: float = 0.7,
                   protocol: str = "design") -> ml_collections.ConfigDict:
    """The `sim` config for `sequence` ('T1w', 'T2w', 'FLAIR') at resolution factor r.

    hf_voxel_mm: the HF voxel size (mm) along the slice axis, > 0; the LF slice
    spacing is r · hf_voxel_mm. protocol: 'design' or 'published' (module docstring).
    """
    if sequence not in PUBLISHED_SNR:
        raise ValueError(f"unknown sequence {sequence!r}; expected one of {SEQUENCES}")
    if not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor={factor!r} must be a positive integer")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    snr_mean, snr_covariance = PUBLISHED_SNR[sequence]
    design = protocol == "design"
    c = ml_collections.ConfigDict()
    c.factor = factor                      # r, static: HF slices per LF slice
    c.hf_voxel_mm = float(hf_voxel_mm)     # HF voxel size along the slices; LF spacing = r · this
    c.deterministic = False                # True: every sample gets the mean parameters (noise stays random)
    c.draw_mode = "per_sample" if design else "per_subject"   # or one draw per training subject
    c.slice_profile = "gaussian"           # or 'rect_gaussian'
    c.psf_truncate_sigmas = 4.0            # profiles cut this many σ from centre (rect: from edge)
    c.edge_mode = "reflect"                # whole-volume edges: reflect | mirror | nearest | constant
    c.contrast = "snr_gm_fixed"            # snr_gm_fixed | snr_wm_fixed | tissue_scaling | none
    c.contrast_grid = "lf"                 # 'lf': on blurred maps (reference); 'hf': before blurring
    c.tissue_threshold = TISSUE_THRESHOLD  # tissue masks for tissue means: probability > this
    c.noise = "gaussian"                   # gaussian | rician | none
    c.lf_brain_threshold = 0.5             # LF voxels whose blurred tissue sum is below this are
                                           # background, set to 0 as in a skull-stripped scan (0: off)
    c.bias_field_length_mm = 100.0
    c.snr = dist.bivariate_normal(snr_mean, snr_covariance)
    c.parameters = ml_collections.ConfigDict(dict(
        slice_thickness_fraction=(dist.uniform(*DESIGN_THICKNESS) if design
                                  else dist.fixed(PUBLISHED_THICKNESS)),
        slice_edge_fwhm_mm=dist.fixed(float(hf_voxel_mm)),
        inplane_fwhm_mm=dist.uniform(*DESIGN_INPLANE_FWHM_MM) if design else dist.fixed(0.0),
        contrast_gm=dist.fixed(1.0),
        contrast_wm=dist.fixed(1.0),
        contrast_csf=dist.fixed(1.0),
        gamma=dist.fixed(1.0),
        bias_x=dist.fixed(0.0),
        bias_y=dist.fixed(0.0),
        bias_z=dist.fixed(0.0),
    ))
    return c
