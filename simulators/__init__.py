"""The differentiable low-field MRI simulator: pure JAX, jit- and vmap-able, static shapes.

It turns normalised high-field (HF) patches, with their GM/WM/CSF maps, into
low-field (LF) ones: slice-profile blur and slice sampling by a static factor r,
optional in-plane blur, a tissue contrast change, optional gamma and bias field,
and noise at a target SNR. Every parameter is drawn per sample from the
distributions of the config (`default_config`), inside the jitted training step
(or once per training subject, `draw_mode='per_subject'`).
It knows nothing of the model.

    config = simulators.default_config("T1w", factor=8)
    m = simulators.required_margin(config)
    theta = simulators.sample_parameters(key_theta, config, batch_size)
    lf = simulators.simulate_batch(key_noise, hf, tissue, tissue_means, theta, config)
"""
from simulators.config import SEQUENCES, default_config
from simulators.errors import SimulatorInputError
from simulators.parameters import (PARAMETER_NAMES, mean_parameters, sample_parameters,
                                   sample_parameters_from_keys)
from simulators.simulate import (brain_means_by_tissue, hf_object, lf_brain_mean, simulate_batch,
                                 simulate_volume, tissue_sum)
from simulators.slice_sampling import lf_slice_centres
from simulators.spec import SimulatorSpec
from simulators.tissue import TISSUE_THRESHOLD, TISSUES, tissue_means


def required_margin(config) -> int:
    """HF slices of margin m needed on each side of a training patch.

    With m, every LF slice of the patch has its whole slice profile inside the
    patch, for the widest profile the config's distributions can draw, cut at
    `config.psf_truncate_sigmas` σ (default 4) from its centre (`gaussian`) or
    from the slice edge (`rect_gaussian`). Reference ×8 at 0.7 mm: m = 6.
    """
    return SimulatorSpec.from_config(config).margin


__all__ = [
    "PARAMETER_NAMES", "SEQUENCES", "TISSUES", "TISSUE_THRESHOLD", "SimulatorInputError", "SimulatorSpec",
    "brain_means_by_tissue",
    "default_config", "hf_object", "lf_brain_mean", "lf_slice_centres", "mean_parameters",
    "required_margin", "sample_parameters", "sample_parameters_from_keys", "simulate_batch",
    "simulate_volume", "tissue_means", "tissue_sum",
]
