"""The benchmark's acquisitions: what a real 2-D multi-slice low-field scan does that training does not.

Each case is an `iqt.generalisation.acquisition.Acquisition` at the run's slice
spacing (`sim.factor` × `sim.hf_voxel_mm`; 6 mm for the demo, the clinical
0.36 T protocol of 5 mm slices with a 1 mm gap; 5.6 mm for the published ×8
configs), slices axial (S-I). The slice thickness is 5/6 of the spacing unless
a case says otherwise. The training simulator draws Gaussian slice profiles,
Gaussian noise on the magnitude and the published SNR pair; every case but
`gauss_bias` leaves that family in at least one way.

| case | what differs from training |
| --- | --- |
| rect_gap | rectangular slice profile (an ideal slab), 1/6 gap, no noise |
| sinc_snr20 | windowed-sinc profile (time-bandwidth 4: soft edges, side lobes), Rician SNR 20 |
| rect_snr10_correlated | rectangular, Rician SNR 10, noise correlated in-plane (FWHM 1.5 mm) |
| gauss_bias | the training family's Gaussian profile, SNR 20 and a ±10 % bias field |
| gibbs | rectangular, 60 % of in-plane k-space kept (Gibbs ringing), SNR 30 |
| low_contrast | rectangular, grey/white contrast lowered by x -> m (x/m)^0.6, SNR 20 |
| crosstalk | windowed sinc, alternate slices 8 % darker (interleaved acquisition), SNR 20 |
| clinic | all at once, milder: windowed sinc, SNR 15 correlated (1 mm), ±10 % bias, 80 % k-space, gamma 0.8, 5 % cross-talk |
"""
from __future__ import annotations

from typing import Iterable

from iqt.errors import UserError
from iqt.generalisation.acquisition import Acquisition

CASES = {case.name: case for case in (
    Acquisition("rect_gap", "rectangular 5/6-spacing slices with a gap, noiseless", profile="rect"),
    Acquisition("sinc_snr20", "windowed-sinc slice profile (time-bandwidth 4), Rician SNR 20",
                profile="windowed_sinc", snr=20.0),
    Acquisition("rect_snr10_correlated", "rectangular slices, Rician SNR 10 correlated in-plane (FWHM 1.5 mm)",
                profile="rect", snr=10.0, noise_correlation_fwhm_mm=1.5),
    Acquisition("gauss_bias", "Gaussian slice profile (the training family), SNR 20, ±10 % bias field",
                profile="gaussian", snr=20.0, bias_amplitude=0.1),
    Acquisition("gibbs", "rectangular slices, 60 % of in-plane k-space (Gibbs ringing), SNR 30",
                profile="rect", snr=30.0, kspace_fraction=0.6),
    Acquisition("low_contrast", "rectangular slices, grey/white contrast lowered (gamma 0.6), SNR 20",
                profile="rect", snr=20.0, contrast_gamma=0.6),
    Acquisition("crosstalk", "windowed-sinc slices, alternate slices 8 % darker (cross-talk), SNR 20",
                profile="windowed_sinc", snr=20.0, crosstalk=0.08),
    Acquisition("clinic", "windowed sinc, SNR 15 correlated (1 mm), ±10 % bias, 80 % k-space, gamma 0.8, "
                "5 % cross-talk", profile="windowed_sinc", snr=15.0, noise_correlation_fwhm_mm=1.0,
                bias_amplitude=0.1, kspace_fraction=0.8, contrast_gamma=0.8, crosstalk=0.05),
)}


def select_cases(names: Iterable[str] | None = None) -> list[Acquisition]:
    """The named cases (all by default); an unknown name is a `UserError` listing the valid ones."""
    names = list(CASES) if names is None else [n for n in names if n]
    unknown = [n for n in names if n not in CASES]
    if unknown or not names:
        raise UserError(f"unknown case(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(CASES)}")
    return [CASES[n] for n in names]
