"""Geometry: axis order and flips, and the slice convention from HF through LF to IQT."""
from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest

import simulators
from iqt.data.nifti import lf_affine_from_hf
from iqt.interpolation import interpolate_slices
from iqt.infer_files import enhance_file
from iqt.inference import Predictor, enhance_volume
from iqt.orientation import Reorientation


def reoriented(data: np.ndarray, affine: np.ndarray, order, flips):
    """The same image stored differently: axes flipped then permuted, the affine to match.

    Written from first principles: stored index k along new axis n is index
    i = k (or size - 1 - k if flipped) along old axis order[n].
    """
    to_old = np.eye(4)
    to_old[:3, :3] = 0
    for new, old in enumerate(order):
        to_old[old, new] = -1.0 if flips[old] else 1.0
        to_old[old, 3] = data.shape[old] - 1 if flips[old] else 0.0
    flipped = np.flip(data, axis=[a for a in range(3) if flips[a]])
    return np.ascontiguousarray(flipped.transpose(order)), affine @ to_old


def oblique_affine(voxel_mm=(1.0, 1.1, 4.0)) -> np.ndarray:
    """Voxel sizes along x, y, z rotated by about 10 degrees, origin off-centre."""
    c, s = np.cos(0.17), np.sin(0.17)
    rotation = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]) @ np.array([[1, 0, 0], [0, c, s], [0, -s, c]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(voxel_mm)
    affine[:3, 3] = (-12.5, 30.0, -7.25)
    return affine


STORAGES = [((0, 1, 2), (False, False, False)), ((1, 0, 2), (True, False, False)),
            ((2, 0, 1), (False, True, True)), ((0, 2, 1), (True, True, True))]


@pytest.mark.parametrize("order,flips", STORAGES)
def test_reorientation_round_trip_and_world_coordinates(order, flips):
    data = np.arange(6 * 7 * 5, dtype=np.float32).reshape(6, 7, 5)
    stored, affine = reoriented(data, oblique_affine(), order, flips)
    slice_axis = order.index(2)
    r = Reorientation.from_affine(affine, slice_axis)
    canonical, canonical_affine = r.apply(stored), r.affine(affine, stored.shape)
    np.testing.assert_array_equal(r.invert(canonical), stored)
    assert canonical.shape == (6, 7, 5)          # the slice axis is last again
    # every voxel keeps its world position: compare through the voxel values
    for k in itertools.product(*[range(n) for n in canonical.shape]):
        i = np.unravel_index(int(canonical[k]), data.shape)
        np.testing.assert_allclose(canonical_affine @ (*k, 1), oblique_affine() @ (*i, 1), atol=1e-9)


def test_canonical_order_is_nibabels_closest_canonical_when_slices_are_axial():
    data = np.random.default_rng(1).random((6, 7, 5)).astype(np.float32)
    affine = np.eye(4)
    affine[:3, :3] = [[0, 0, -1.0], [1.0, 0, 0], [0, 4.0, 0]]  # axis 0 → A, axis 1 → S (4 mm), axis 2 → L
    image = nib.Nifti1Image(data, affine)
    canonical = nib.as_closest_canonical(image)
    r = Reorientation.from_affine(affine, slice_axis=1)
    np.testing.assert_array_equal(r.apply(data), np.asarray(canonical.dataobj))
    np.testing.assert_allclose(r.affine(affine, data.shape), canonical.affine)


def _centroid_world(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    weights = np.clip(data, 0, None)
    grid = np.meshgrid(*[np.arange(n) for n in data.shape], indexing="ij")
    index = [float((g * weights).sum() / weights.sum()) for g in grid]
    return (affine @ (*index, 1.0))[:3]


def _linear_predictor(factor: int) -> Predictor:
    return Predictor(lambda lf: interpolate_slices(lf, factor, order=1), factor)


@pytest.mark.parametrize("order,flips", STORAGES)
def test_a_feature_keeps_its_world_position_from_hf_through_lf_to_iqt(tmp_path, order, flips):
    factor, hf_affine = 4, oblique_affine((1.0, 1.0, 1.0))
    centre, sigma = np.array([10.3, 15.7, 45.3]), np.array([1.5, 1.5, 8.0])
    grid = np.meshgrid(*[np.arange(n) for n in (24, 28, 96)], indexing="ij")
    hf = np.exp(-0.5 * sum(((g - c) / s) ** 2 for g, c, s in zip(grid, centre, sigma))).astype(np.float32)
    truth = (hf_affine @ (*centre, 1.0))[:3]
    np.testing.assert_allclose(_centroid_world(hf, hf_affine), truth, atol=1e-3)

    sim = simulators.default_config("T1w", factor, hf_voxel_mm=1.0)
    sim.contrast, sim.noise, sim.deterministic = "none", "none", True
    params = {k: v[0] for k, v in simulators.mean_parameters(sim, 1).items()}
    lf = np.asarray(simulators.simulate_volume(simulators_key(), hf, None, params, sim))
    lf_affine = lf_affine_from_hf(hf_affine, factor)
    np.testing.assert_allclose(_centroid_world(lf, lf_affine), truth, atol=0.02)

    stored, stored_affine = reoriented(lf, lf_affine, order, flips)
    nib.save(nib.Nifti1Image(stored, stored_affine), tmp_path / "lf.nii.gz")
    enhance_file(tmp_path / "lf.nii.gz", tmp_path / "iqt.nii.gz", _linear_predictor(factor),
                 progress=False, figure=False)
    out = nib.load(tmp_path / "iqt.nii.gz")
    assert out.shape[order.index(2)] == 96
    np.testing.assert_allclose(_centroid_world(np.asarray(out.dataobj), out.affine), truth, atol=0.02)


def simulators_key():
    import jax
    return jax.random.key(0)


def _asymmetric_predictor(factor: int) -> Predictor:
    """A stand-in network that is not flip- or transpose-equivariant (position-dependent gain)."""
    def predict(lf):
        gain = 1.0 + 0.05 * np.arange(lf.shape[1])[:, None, None] + 0.01 * np.arange(lf.shape[2])[None, :, None]
        return (interpolate_slices(lf, factor, order=1) * gain).astype(np.float32)
    return Predictor(predict, factor)


def test_storage_order_and_flips_do_not_change_the_enhanced_anatomy(tmp_path):
    factor = 3
    rng = np.random.default_rng(2)
    lf = np.abs(rng.normal(1.0, 0.3, (9, 11, 6))).astype(np.float32)
    affine = oblique_affine((1.0, 1.1, 4.0))
    outputs = []
    for n, (order, flips) in enumerate(STORAGES):
        stored, stored_affine = reoriented(lf, affine, order, flips)
        nib.save(nib.Nifti1Image(stored, stored_affine), tmp_path / f"lf{n}.nii.gz")
        enhance_file(tmp_path / f"lf{n}.nii.gz", tmp_path / f"out{n}.nii.gz", _asymmetric_predictor(factor),
                     progress=False, figure=False)
        outputs.append(nib.as_closest_canonical(nib.load(tmp_path / f"out{n}.nii.gz")))
    for other in outputs[1:]:
        np.testing.assert_allclose(other.affine, outputs[0].affine, atol=1e-6)
        np.testing.assert_allclose(np.asarray(other.dataobj), np.asarray(outputs[0].dataobj), rtol=1e-6)
    # the stand-in really is orientation-dependent: without reorientation the answers differ
    flipped = np.flip(lf, axis=0)
    naive = np.flip(enhance_volume(flipped, _asymmetric_predictor(factor).predict_fn, factor, progress=False), 0)
    assert not np.allclose(naive, enhance_volume(lf, _asymmetric_predictor(factor).predict_fn, factor,
                                                 progress=False), rtol=1e-3)
