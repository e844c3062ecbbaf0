"""One intensity rule for training, evaluation and `launch.infer`; magnitudes; the background."""
from __future__ import annotations

import jax
import nibabel as nib
import numpy as np
import pytest

import simulators
from iqt import infer_files, inference
from iqt.interpolation import interpolate_slices
from tests.simulators.helpers import smooth_tissue, smooth_volume

FACTOR = 4


class Recorder:
    """A stand-in network: records its (single) input tile, returns `fill` of the HF shape."""

    def __init__(self, fill=None):
        self.inputs, self.fill = [], fill

    def __call__(self, lf: np.ndarray) -> np.ndarray:
        self.inputs.append(np.array(lf))
        hf = np.repeat(lf, FACTOR, axis=-1)
        return hf if self.fill is None else self.fill(hf)


def _phantom():
    """A smooth brain in a zero background with its maps, and its LF at the mean parameters."""
    shape = (24, 20, 64)
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    inside = (x**2 + y**2 + z**2 < 0.8).astype(np.float32)
    tissue = smooth_tissue(shape) * inside[..., None]
    image = (0.5 + 0.5 * np.abs(smooth_volume(shape))) * inside
    config = simulators.default_config("T1w", FACTOR, hf_voxel_mm=1.0)
    config.noise = "none"
    means = simulators.tissue_means(image, tissue, 0.5)
    params = {k: v[0] for k, v in simulators.mean_parameters(config, 1).items()}
    lf = np.asarray(simulators.simulate_volume(jax.random.key(0), image, tissue, params, config,
                                               tissue_means=means))
    return image, tissue, config, means, params, lf


def test_the_network_sees_the_same_input_in_training_and_in_launch_infer(tmp_path):
    image, tissue, config, means, params, lf = _phantom()
    spec = simulators.SimulatorSpec.from_config(config)
    training_scale = float(simulators.lf_brain_mean(
        simulators.brain_means_by_tissue(image, tissue, config), means, params, spec))
    source = tmp_path / "lf.nii.gz"
    nib.save(nib.Nifti1Image(lf, np.diag([1.0, 1.0, float(FACTOR), 1.0])), source)
    recorder = Recorder()
    predictor = inference.Predictor(recorder, FACTOR)
    infer_files.enhance_file(source, tmp_path / "out.nii.gz", predictor, tile_lf=(64, 64, 64),
                           progress=False, figure=False)
    (seen,) = recorder.inputs
    np.testing.assert_allclose(seen[0], lf / training_scale, rtol=1e-6, atol=1e-7)


def test_outputs_are_magnitudes_and_the_background_is_the_upsampled_input():
    rng = np.random.default_rng(0)
    lf = rng.uniform(0.5, 2.0, (8, 8, 6)).astype(np.float32)
    mask = np.zeros(lf.shape, bool)
    mask[2:6, 2:6, 1:5] = True                       # a brain inside a non-zero background
    predictor = inference.Predictor(Recorder(fill=lambda hf: hf - 3.0), FACTOR)   # negative inside
    hf = inference.enhance_lf(lf, predictor, mask, tile_lf=(64, 64, 64), progress=False)
    assert hf.shape == (8, 8, 6 * FACTOR) and hf.min() >= 0.0
    brain = np.repeat(mask, FACTOR, axis=-1)
    reach = np.zeros_like(mask)
    reach[2:6, 2:6, 0:6] = True                      # one LF slice beyond the brain along the slices
    reach = np.repeat(reach, FACTOR, axis=-1)
    assert np.all(hf[brain] == 0.0)                  # negatives clipped
    cubic = np.maximum(interpolate_slices(np.where(mask, 0.0, lf), FACTOR, 3), 0.0)
    np.testing.assert_array_equal(hf[~reach], cubic[~reach])          # the background, not invented
    network = np.maximum(np.repeat(lf / lf[mask].mean(), FACTOR, axis=-1) - 3.0, 0.0) * lf[mask].mean()
    np.testing.assert_allclose(hf[reach & ~brain], (network + cubic)[reach & ~brain], rtol=1e-5)
    (seen,) = predictor.predict_fn.inputs            # the network saw a zero background
    assert np.all(seen[0][~mask] == 0.0)
    assert np.mean(seen[0][mask]) == pytest.approx(1.0, rel=1e-6)
