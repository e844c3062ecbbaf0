"""The preparation steps on the MNI152 template in 5 mm slices, against known truths."""
from __future__ import annotations

import numpy as np
import pytest

from iqt.data.nifti import voxel_sizes_from_affine
from iqt.data.template import load_template
from iqt.errors import UserError
from iqt.prepare.bias import n4_correct
from iqt.prepare.brain import dice, extract_brain, has_nonzero_background
from iqt.prepare.crosstalk import correct_crosstalk
from iqt.prepare.phantom import synthetic_head
from iqt.prepare.spacing import TrainingGrid, check_spacing, resample_in_plane
from tests.prepare.helpers import thick_template

SIZES = (1.0, 1.0, 5.0)


def slice_means(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.array([image[..., k][mask[..., k]].mean() for k in range(image.shape[2]) if mask[..., k].any()])


def test_n4_recovers_a_known_smooth_field():
    image, brain = thick_template(step=2)   # 2 x 2 x 5 mm: seconds
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in image.shape], indexing="ij")
    field = np.exp(0.2 * x - 0.15 * y ** 2 + 0.1 * z).astype(np.float32)   # 0.73 to 1.35
    corrected, _, _ = n4_correct(image * field, (2.0, 2.0, 5.0), brain)
    ratio = corrected[brain] / image[brain]
    before = field[brain]
    assert before.std() / before.mean() > 0.08
    assert ratio.std() / ratio.mean() < 0.05


def test_brain_extraction_finds_the_template_brain_inside_a_synthetic_head():
    image, _ = thick_template()
    head, truth = synthetic_head(image, SIZES)
    assert has_nonzero_background(head) and not has_nonzero_background(image)
    found, parameters = extract_brain(head, SIZES)
    assert dice(found, truth) >= 0.9, parameters
    assert not found[truth.shape[0] // 2, 2, :].any()   # the scalp in front of the brain is outside


def test_crosstalk_gains_are_removed():
    """Histogram matching ignores a slice's gain: the gained template comes out as the template does."""
    image, brain = thick_template()
    gains = np.random.default_rng(0).uniform(0.8, 1.2, image.shape[2]).astype(np.float32)
    corrected, parameters = correct_crosstalk(image * gains, brain, 2)
    truth, _ = correct_crosstalk(image, brain, 2)
    reference = parameters["reference_slice"]
    matched = [reference] + [s["slice"] for s in parameters["slices"]]
    assert len(matched) >= 20
    np.testing.assert_allclose(slice_means(corrected[..., matched], brain[..., matched]) / gains[reference],
                               slice_means(truth[..., matched], brain[..., matched]), rtol=0.02)
    left = [k for k in range(image.shape[2]) if k not in matched]   # too little brain: left alone
    np.testing.assert_array_equal(corrected[..., left], (image * gains)[..., left])


def test_crosstalk_gains_are_removed_where_the_slices_look_alike():
    """Thin central slices of the template (1 mm apart): matched to the truth itself."""
    thin = np.asarray(load_template().image[:, :, 70:79], np.float32)
    mask = thin > 0
    gains = np.random.default_rng(1).uniform(0.8, 1.2, thin.shape[2]).astype(np.float32)
    corrected, parameters = correct_crosstalk(thin * gains, mask, 2)
    np.testing.assert_allclose(slice_means(corrected, mask) / gains[parameters["reference_slice"]],
                               slice_means(thin, mask), rtol=0.02)


def test_the_slice_spacing_is_checked_against_the_training_run():
    grid = TrainingGrid(in_plane_mm=0.7, slice_mm=5.6, factor=8)
    with pytest.raises(UserError, match=r"slices 3 mm apart .* x8 on 0.7 mm .* 5.6 mm, 46% off"):
        check_spacing((1.0, 1.0, 3.0), 2, grid)
    [warning] = check_spacing((1.0, 1.0, 3.0), 2, grid, allow_mismatch=True)
    assert warning.startswith("warning: ") and "5.6 mm" in warning
    assert check_spacing((1.0, 1.0, 6.0), 2, grid) == []          # 7 % off
    with pytest.raises(UserError, match=r"trained at x6 on 0.7 mm voxels fits it .*--config.sim.factor=6"):
        check_spacing((1.0, 1.0, 4.2), 2, grid)                  # 4.2 mm / 0.7 mm = 6
    with pytest.raises(UserError, match="nothing along them for IQT to enhance"):
        check_spacing((1.0, 1.0, 1.0), 2, grid, allow_mismatch=False)
    with pytest.raises(UserError, match="in-plane voxels 1 x 1 mm"):
        check_spacing((1.0, 1.0, 6.0), 2, grid, check_in_plane=True)


def test_in_plane_resampling_keeps_the_slices_and_the_world_positions():
    # slice axis 0 (5 mm along x), oblique-free but permuted and flipped in-plane axes
    affine = np.array([[5.0, 0.0, 0.0, -40.0], [0.0, -0.45, 0.0, 90.0], [0.0, 0.0, 0.5, -70.0], [0, 0, 0, 1]])
    shape = (6, 200, 180)
    ramp = lambda w: 3.0 * w[0] - 2.0 * w[1] + 0.5 * w[2]   # noqa: E731  (linear: interpolation is exact)
    world = lambda a, s: a[:3, :3] @ np.indices(s).reshape(3, -1) + a[:3, 3:]   # noqa: E731
    data = ramp(world(affine, shape)).reshape(shape).astype(np.float32)
    out, new_affine = resample_in_plane(data, affine, 0, 0.7)
    assert voxel_sizes_from_affine(new_affine) == pytest.approx((5.0, 0.7, 0.7))
    assert out.shape == (6, round(200 * 0.45 / 0.7), round(180 * 0.5 / 0.7))
    expected = ramp(world(new_affine, out.shape)).reshape(out.shape)
    inner = (slice(None), slice(3, -3), slice(3, -3))   # away from the edges (padding and anti-aliasing)
    np.testing.assert_allclose(out[inner], expected[inner], atol=2e-3)


def test_morphology_by_physical_distance_matches_scipy():
    from scipy import ndimage

    from iqt.prepare.brain import _dilate, _erode
    mask = ndimage.gaussian_filter(np.random.default_rng(0).random((60, 50, 12)), (3, 3, 0.7)) > 0.5
    sizes = (0.9, 1.1, 5.0)
    for mm in (2.0, 6.0):
        np.testing.assert_array_equal(_dilate(mask, mm, sizes),
                                      ndimage.distance_transform_edt(~mask, sampling=sizes) <= mm)
        np.testing.assert_array_equal(_erode(mask, mm, sizes),
                                      ndimage.distance_transform_edt(mask, sampling=sizes) > mm)


def test_prepare_names_the_simulators_sequences_and_needs_no_jax():
    import subprocess
    import sys

    import simulators
    from iqt.prepare import pipeline

    assert sorted(pipeline.SEQUENCES) == sorted(simulators.SEQUENCES)
    code = "import sys, launch.prepare; assert 'jax' not in sys.modules, 'launch.prepare imported JAX'"
    subprocess.run([sys.executable, "-c", code], check=True)
