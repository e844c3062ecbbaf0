"""The simulator section (`sim`) of a config, with the published defaults.

`default_config(sequence, factor)` reproduces docs/method.md §3: a Gaussian slice
profile of FWHM = slice thickness = 0.75 · r HF voxels (6 voxels = 4.2 mm at
×8 and 0.7 mm, leaving a gap of 2 voxels), the GM-fixed tissue-SNR contrast
model on the LF grid, additive Gaussian noise, and (snr_wm, snr_gm) drawn from
the bivariate normal fitted to 0.36 T scans. Every other effect is present but
switched off (fixed at its neutral value), so that it can be turned on from the
command line, e.g. `--config.sim.noise=rician` or
`--config.sim.parameters.slice_thickness_mm.distribution=uniform`.

The thickness is fixed when the config is made: after changing `factor` or
`hf_voxel_mm`, set `parameters.slice_thickness_mm` too (or build the config with
`default_config(sequence, factor, hf_voxel_mm)`).

T2w: only the point (snr_wm, snr_gm) = (35.20, 48.35) is published. We centre a
bivariate normal there and give it the spread of the two published fits: a
coefficient of variation of 15 % per tissue (T1w 14 % / 16 %, FLAIR 17 % / 17 %)
and a correlation of 0.95 (T1w 0.94, FLAIR 0.96).
"""
from __future__ import annotations

import ml_collections

from simulators import distributions as dist

T2W_SNR_CV = 0.15
T2W_SNR_CORRELATION = 0.95
THICKNESS_PER_SPACING = 0.75   # reference: thickness 6 + gap 2 HF voxels at ×8


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


def default_config(sequence: str = "T1w", factor: int = 8,
                   hf_voxel_mm: float = 0.7) -> ml_collections.ConfigDict:
    """The `sim` config for `sequence` ('T1w', 'T2w', 'FLAIR') at resolution factor r."""
    if sequence not in PUBLISHED_SNR:
        raise ValueError(f"unknown sequence {sequence!r}; expected one of {SEQUENCES}")
    if not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor={factor!r} must be a positive integer")
    snr_mean, snr_covariance = PUBLISHED_SNR[sequence]
    thickness_mm = round(THICKNESS_PER_SPACING * factor * hf_voxel_mm, 6)
    c = ml_collections.ConfigDict()
    c.factor = factor                      # r, static: HF slices per LF slice
    c.hf_voxel_mm = float(hf_voxel_mm)     # isotropic HF voxel size; LF slice spacing = r · this
    c.deterministic = False                # True: every sample gets the mean parameters (noise stays random)
    c.slice_profile = "gaussian"           # or 'rect_gaussian'
    c.psf_truncate_sigmas = 4.0            # profiles cut this many σ from centre (rect: from edge)
    c.edge_mode = "reflect"                # whole-volume edges: reflect | mirror | nearest | constant
    c.contrast = "snr_gm_fixed"            # snr_gm_fixed | snr_wm_fixed | tissue_scaling | none
    c.contrast_grid = "lf"                 # 'lf': on blurred maps (reference); 'hf': before blurring
    c.tissue_threshold = 0.9               # tissue masks for tissue means: probability > this
    c.noise = "gaussian"                   # gaussian | rician | none
    c.bias_field_length_mm = 100.0
    c.snr = dist.bivariate_normal(snr_mean, snr_covariance)
    c.parameters = ml_collections.ConfigDict(dict(
        slice_thickness_mm=dist.fixed(thickness_mm),
        slice_edge_fwhm_mm=dist.fixed(float(hf_voxel_mm)),
        inplane_fwhm_mm=dist.fixed(0.0),
        contrast_gm=dist.fixed(1.0),
        contrast_wm=dist.fixed(1.0),
        contrast_csf=dist.fixed(1.0),
        gamma=dist.fixed(1.0),
        bias_x=dist.fixed(0.0),
        bias_y=dist.fixed(0.0),
        bias_z=dist.fixed(0.0),
    ))
    return c
