"""Random spatial augmentation of training patches (iqt.data.spatial_augment), each against an
independent reference: plain window copies, analytic volumes, np.rot90, strided slicing, scipy's own
interpolation with its own prefilter, and the config's bounds."""
from __future__ import annotations

import pickle

import ml_collections
import numpy as np
import pytest
from scipy import ndimage

import simulators
from iqt.data import patches, pipeline, records
from iqt.data import spatial_augment as sa
from iqt.data.config import default_config
from iqt.data.subject import Subject
from iqt.errors import UserError

MARGIN = 2
SIM = simulators.default_config("T1w", 4, hf_voxel_mm=1.5)   # the folder data's 1.5 mm slices


def _subject(synth, voxel_mm=(1.2, 1.0, 1.5)) -> Subject:
    """The conftest phantom (30, 34, 40) as the sampler keeps it: stored (uint8) tissue maps."""
    image, tissue = synth.phantom()
    return Subject("phantom", image / np.float32(100.0), records.quantise_tissue(tissue),
                   synth.affine_for(voxel_mm), tissue_means=np.array([0.6, 1.0, 0.3], np.float32),
                   brain_means=np.array([0.2, 0.3, 0.1], np.float32))


def _warped(subject: Subject, corner, window, matrix, voxel_mm=None):
    """(hf, tissue uint8) of the window warped by `matrix` (no displacement)."""
    source = sa.WarpSource.of(subject)
    voxel = source.voxel_mm if voxel_mm is None else voxel_mm
    coords = sa.sampling_coordinates(corner, window, matrix, voxel)
    tissue = sa.quantise_levels(sa.sample_tissue_levels(subject.tissue, coords))
    return sa.sample_image(source.coefficients, coords), tissue


def _window(array, corner, window):
    return array[tuple(slice(c, c + w) for c, w in zip(corner, window))]


# ----------------------------------------------------------------------------- geometry

def test_the_identity_warp_is_the_plain_window_copy(synth):
    """Rotation 0, scale (1, 1), no (or a zero) displacement: warp_into gives extract_into's patches."""
    subject = _subject(synth)
    corners = np.array([[3, 4, 5], [10, 12, 20], [0, 0, 0], [14, 18, 28]])
    patch, margin = (16, 16, 8), 2
    plain = patches.empty_patches(len(corners), patch, margin)
    patches.extract_into(plain, range(len(corners)), subject, corners, patch, margin)
    source, window = sa.WarpSource.of(subject), (16, 16, 12)
    none = sa.SpatialAugment(rotation_deg=0.0, scale=(1.0, 1.0), elastic_sd_mm=0.0, elastic_spacing_mm=8.0)
    warps = none.draw(np.random.default_rng(0), len(corners), window, source.voxel_mm)
    zero_field = [sa.Warp(np.eye(3), np.zeros((3,) + sa.control_grid_shape(window, source.voxel_mm, 8.0)))] * 4
    for chosen in (warps, zero_field):
        warped = patches.empty_patches(len(corners), patch, margin)
        sa.warp_into(warped, range(len(corners)), subject, source, corners, chosen, patch, margin, 8.0)
        np.testing.assert_allclose(warped["hf"], plain["hf"], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(warped["tissue"], plain["tissue"])
        for key in ("tissue_means", "brain_means", "subject"):
            np.testing.assert_array_equal(warped[key], plain[key])


def _polynomial(points: np.ndarray, size: int) -> np.ndarray:
    """A smooth cubic (total degree 3) of volume coordinates (3, ...), between 1.05 and 2.95 on the grid."""
    u, v, w = (points - (size - 1) / 2.0) / (size / 2.0)
    return 2 + 0.3 * u - 0.2 * v + 0.1 * w + 0.2 * u * v - 0.1 * w ** 2 + 0.05 * u * v * w


def test_warping_by_a_then_its_inverse_recovers_a_smooth_volume():
    """Cubic B-splines reproduce cubics exactly: A's warp is the analytic f(c + A(p - c)) and A⁻¹'s
    warp of it gives f back to float32 precision, away from the edges (whose influence decays by
    0.27 per voxel; A's warp is 0 where it samples outside the volume)."""
    size = 64
    grid = np.indices((size,) * 3, dtype=np.float64)
    volume = _polynomial(grid, size).astype(np.float32)
    a = sa.rotation_matrix((12.0, -8.0, 20.0)) @ np.diag([1.1, 0.9, 1.05])
    forward = sa.sampling_coordinates((0, 0, 0), volume.shape, a)
    once = sa.sample_image(sa.spline_coefficients(volume), forward)
    inverse = sa.sampling_coordinates((0, 0, 0), volume.shape, np.linalg.inv(a))
    back = sa.sample_image(sa.spline_coefficients(once), inverse)
    centre = (size - 1) / 2.0
    interior = np.sum((grid - centre) ** 2, axis=0) <= 12.0 ** 2
    np.testing.assert_allclose(once[interior], _polynomial(forward, size)[interior], rtol=0, atol=2e-6)  # float32
    np.testing.assert_allclose(back[interior], volume[interior], rtol=0, atol=2e-6)
    assert interior.sum() > 7000


def test_scaling_by_exactly_two_samples_every_other_voxel(synth):
    """Odd window sizes put the centre on a voxel: c + 2(p - c) = 2p - c, every other voxel from
    corner - (window - 1)/2; diagonal matrices are the same in voxels whatever the voxel sizes."""
    subject = _subject(synth)
    corner, window = (12, 13, 15), (7, 9, 5)
    hf, tissue = _warped(subject, corner, window, np.diag([2.0, 2.0, 2.0]))
    start = np.array(corner) - (np.array(window) - 1) // 2
    every_other = tuple(slice(s, s + 2 * w - 1, 2) for s, w in zip(start, window))
    np.testing.assert_allclose(hf, subject.image[every_other], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(tissue, subject.tissue[every_other])


def test_a_quarter_turn_about_z_is_rot90_of_the_window(synth):
    """R_z(90°) about the window's centre maps its voxels onto its voxels: np.rot90 (k = -1, clockwise
    in (x, y)); with square in-plane voxels the slice thickness does not matter."""
    subject = _subject(synth, voxel_mm=(1.0, 1.0, 1.5))
    corner, window = (8, 9, 10), (12, 12, 7)
    hf, tissue = _warped(subject, corner, window, sa.rotation_matrix((0.0, 0.0, 90.0)))
    np.testing.assert_allclose(hf, np.rot90(_window(subject.image, corner, window), -1, axes=(0, 1)), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(tissue, np.rot90(_window(subject.tissue, corner, window), -1, axes=(0, 1)))


def test_the_displacement_is_the_cubic_spline_of_its_control_values():
    """Separable weights == scipy's 3-D cubic interpolation of the control grid at each voxel's
    control coordinate; the grid spans the window at the requested spacing."""
    window, voxel, spacing = (24, 20, 30), (1.0, 1.25, 1.5), 10.0
    shape = sa.control_grid_shape(window, voxel, spacing)
    assert shape == (4, 4, 6)   # ceil(23 / 10) + 1, ceil(23.75 / 10) + 1, ceil(43.5 / 10) + 1
    control = np.random.default_rng(3).normal(0, 2, (3,) + shape)
    field = sa.displacement_mm(control, window, voxel, spacing)
    t = [(np.arange(n) - (n - 1) / 2) * v / spacing + (p - 1) / 2 for n, v, p in zip(window, voxel, shape)]
    at = np.stack(np.meshgrid(*t, indexing="ij"))
    for k in range(3):
        np.testing.assert_allclose(field[k], ndimage.map_coordinates(control[k], at, order=3, mode="mirror"),
                                   rtol=0, atol=1e-9)


# ----------------------------------------------------------------------------- tissue maps

def _random_maps(shape, seed=0) -> np.ndarray:
    """Stored maps (uint8) summing to <= 255, many voxels exactly 255 (and none above)."""
    gen = np.random.default_rng(seed)
    q = np.floor(gen.dirichlet([0.5, 0.5, 0.5, 0.3], size=shape)[..., :3] * 255).astype(np.uint8)
    full = gen.random(shape) < 0.3
    q[full, 2] = 255 - q[full, 0].astype(int) - q[full, 1]
    return q


def test_warped_tissue_maps_stay_probabilities_summing_to_at_most_one():
    tissue = _random_maps((24, 26, 28))
    assert tissue.astype(int).sum(-1).max() == 255
    source_voxel = (1.0, 1.0, 1.0)
    strong = sa.SpatialAugment(rotation_deg=45.0, scale=(0.7, 1.4), elastic_sd_mm=3.0, elastic_spacing_mm=6.0)
    window, outside = (16, 16, 20), False
    for corner, warp in zip([(2, 3, 4), (8, 10, 8), (0, 0, 0)],
                            strong.draw(np.random.default_rng(1), 3, window, source_voxel)):
        field = sa.displacement_mm(warp.control, window, source_voxel, 6.0)
        coords = sa.sampling_coordinates(corner, window, warp.matrix, source_voxel, field)
        levels = sa.sample_tissue_levels(tissue, coords)
        assert levels.min() >= 0 and levels.max() <= 255
        assert levels.sum(-1).max() <= 255 * (1 + 1e-6)
        reference = np.stack([ndimage.map_coordinates(records.dequantise_tissue(tissue[..., k]), coords, order=1,
                                                      mode="constant") for k in range(3)], axis=-1)
        np.testing.assert_allclose(levels / 255, reference, rtol=0, atol=1e-6)
        quantised = sa.quantise_levels(levels)
        assert quantised.astype(int).sum(-1).max() <= 255
        assert np.abs(quantised - levels).max() <= 1.0 + 1e-4          # rounding, or rounding down
        assert np.mean(np.abs(quantised - levels) <= 0.5 + 1e-4) > 0.99  # mostly plain rounding
        outside |= bool(np.any(coords < 0))
    assert outside   # some voxels were sampled outside the volume (as 0)


def test_quantisation_caps_the_sum_at_255():
    levels = np.array([[127.5, 127.5, 0.0],      # rint: 128 + 128
                       [100.2, 100.3, 54.4],     # rint: 255, kept
                       [200.0, 100.0, 0.0],      # over 255 already: scaled, rounded down
                       [-1e-6, 255.00001, 0.0]])  # float error at the bounds
    q = sa.quantise_levels(levels.astype(np.float32))
    np.testing.assert_array_equal(q, [[127, 127, 0], [100, 100, 54], [170, 85, 0], [0, 255, 0]])


# ----------------------------------------------------------------------------- the pipeline

def _augmented(config, **fields):
    config = config.copy_and_resolve_references()
    config.spatial_augment.enabled = True
    config.spatial_augment.update(fields)
    return config


def _sampler(config, seed=0):
    return pipeline.make_train_iterator(config, global_batch_size=4, slice_margin=MARGIN, seed=seed,
                                        sim_config=SIM)._sampler


def _reference_patch(volume: Subject, corner, window, warp: sa.Warp, spacing: float):
    """The warped window by scipy alone: coordinates written out, the displacement by 3-D cubic
    interpolation of its control grid, the image by map_coordinates with its own prefilter."""
    voxel = np.array(volume.voxel_sizes_mm)
    centre = np.array(corner) + (np.array(window) - 1) / 2
    offsets = np.indices(window, dtype=np.float64) - ((np.array(window) - 1) / 2)[:, None, None, None]
    mm = np.einsum("ij,j...->i...", warp.matrix, offsets * voxel[:, None, None, None])
    grid = warp.control.shape[1:]
    t = np.stack([offsets[i] * voxel[i] / spacing + (grid[i] - 1) / 2 for i in range(3)])
    displacement = np.stack([ndimage.map_coordinates(warp.control[i], t, order=3, mode="mirror") for i in range(3)])
    coords = centre[:, None, None, None] + (mm + displacement) / voxel[:, None, None, None]
    hf = np.maximum(ndimage.map_coordinates(volume.image.astype(np.float64), coords, order=3, mode="constant"), 0)
    tissue = np.stack([ndimage.map_coordinates(records.dequantise_tissue(volume.tissue[..., k]), coords, order=1,
                                               mode="constant") for k in range(3)], axis=-1)
    return hf, tissue


def test_augmented_groups_are_the_visits_warped_windows_shuffled(folder_data):
    """Row order as without augmentation; each row the scipy reference of its window's warp, drawn from
    the stream (seed, stream, _WARP, visit); tissue rounded to 1/255; statistics the volume's."""
    sampler = _sampler(_augmented(folder_data, elastic_spacing_mm=6.0), seed=4)
    plain = _sampler(folder_data, seed=4)
    group, unwarped = sampler.group(1), plain.group(1)
    count = group["hf"].shape[0] * group["hf"].shape[1]
    rows = {key: value.reshape((count,) + value.shape[2:]) for key, value in group.items()}
    order = patches.rng(4, 0, pipeline._GROUP, 1).permutation(2 * sampler.patches_per_volume)
    window = (16, 16, 8 + 2 * MARGIN)
    for visit in (2, 3):
        volume, corners = sampler.visit_corners(visit)
        warps = sampler.spatial_augment.draw(patches.rng(4, 0, pipeline._WARP, visit), len(corners), window,
                                             volume.voxel_sizes_mm)
        for j, (corner, warp) in enumerate(zip(corners, warps)):
            (row,) = np.flatnonzero(order[:count] == (visit - 2) * len(corners) + j)
            hf, tissue = _reference_patch(volume, corner, window, warp, 6.0)
            np.testing.assert_allclose(rows["hf"][row], hf, rtol=0, atol=2e-5)
            assert np.abs(records.dequantise_tissue(rows["tissue"][row]) - tissue).max() <= 1 / 255 + 1e-6
            np.testing.assert_array_equal(rows["tissue_means"][row], volume.tissue_means)
            np.testing.assert_array_equal(rows["brain_means"][row], volume.brain_means)
    np.testing.assert_array_equal(group["tissue_means"], unwarped["tissue_means"])   # same visits, same order
    assert np.mean(np.abs(group["hf"] - unwarped["hf"])) > 0.01                      # but warped


def test_warps_are_a_function_of_seed_stream_and_visit(folder_data):
    config = _augmented(folder_data)
    first, again = _sampler(config, seed=2), _sampler(config, seed=2)
    for a, b in zip(first.visit_warps(5), again.visit_warps(5)):
        np.testing.assert_array_equal(a.matrix, b.matrix)
        np.testing.assert_array_equal(a.control, b.control)
    for key, value in first.group(2).items():
        np.testing.assert_array_equal(value, again.group(2)[key])
    other_visit = first.visit_warps(6)
    assert not np.allclose(first.visit_warps(5)[0].matrix, other_visit[0].matrix)
    assert not np.allclose(first.visit_warps(5)[0].control, other_visit[0].control)
    other_seed = _sampler(config, seed=3).visit_warps(5)
    assert not np.allclose(first.visit_warps(5)[0].matrix, other_seed[0].matrix)
    assert _sampler(folder_data).visit_warps(5) == []


def test_a_pickled_sampler_gives_the_same_groups(folder_data):
    """What each Grain worker process gets: the settings travel, the caches are rebuilt."""
    sampler = _sampler(_augmented(folder_data), seed=5)
    copy = pickle.loads(pickle.dumps(sampler))
    assert copy.spatial_augment == sampler.spatial_augment and not copy._cache
    for key, value in sampler.group(0).items():
        np.testing.assert_array_equal(copy.group(0)[key], value)


def test_evaluation_batches_are_not_warped(folder_data):
    def batch(config):
        return pipeline.make_eval_batch(config, split="validation", num_patches=3, slice_margin=MARGIN, seed=1,
                                        sim_config=SIM)
    plain, augmented = batch(folder_data), batch(_augmented(folder_data))
    for key in plain:
        np.testing.assert_array_equal(plain[key], augmented[key])


# ----------------------------------------------------------------------------- config

def test_defaults_are_off_and_valid():
    section = default_config("iqt_template").spatial_augment
    assert section.enabled is False
    sa.check_config(section, hf_voxel_mm=1.0)
    assert sa.SpatialAugment.from_config(section) is None
    assert sa.SpatialAugment.from_config(None) is None          # configs saved before the section
    section.enabled = True
    assert sa.SpatialAugment.from_config(section) == sa.SpatialAugment(10.0, (0.85, 1.15), 2.0, 16.0)


@pytest.mark.parametrize("field, value", [
    ("enabled", 1), ("rotation_deg", -1.0), ("rotation_deg", 46.0), ("rotation_deg", float("nan")),
    ("rotation_deg", True), ("scale", (1.2, 0.9)), ("scale", (0.0, 1.0)), ("scale", (0.9,)),
    ("scale", (0.9, float("inf"))), ("elastic_sd_mm", -0.5), ("elastic_sd_mm", "2"),
    ("elastic_spacing_mm", 0.0), ("elastic_spacing_mm", 0.5)])
def test_bad_values_are_one_line_user_errors_naming_the_field(field, value):
    config = default_config("iqt_template")
    section = config.spatial_augment.to_dict()
    section[field] = value
    config.spatial_augment = ml_collections.ConfigDict(section)   # as read from JSON: any type
    with pytest.raises(UserError, match=rf"^data\.spatial_augment\.{field}=") as error:
        pipeline._check_config(config, slice_margin=2, hf_voxel_mm=1.0)  # as iqt.config_check calls it
    assert "\n" not in str(error.value)


def test_a_section_that_is_not_a_mapping_is_a_user_error():
    raw = default_config("iqt_template").to_dict()
    raw["spatial_augment"] = True   # as a hand-edited config.json could hold
    config = ml_collections.ConfigDict(raw)
    with pytest.raises(UserError, match=r"^data\.spatial_augment must be a mapping of enabled, rotation_deg"):
        pipeline._check_config(config, slice_margin=2)


def test_a_run_config_with_a_bad_field_is_refused_before_training():
    from iqt import config_io
    from iqt.config_check import check_run_config
    from launch.configs import demo
    config = demo.get_config("tiny")
    config.data.spatial_augment.enabled = True
    check_run_config(config)
    saved = config_io.config_from_json(config_io.to_json(config))   # config.json's round trip
    assert saved == config
    check_run_config(saved)
    config.data.spatial_augment.scale = (1.1, 1.0)
    with pytest.raises(UserError, match=r"data\.spatial_augment\.scale=\(1\.1, 1\.0\) must be"):
        check_run_config(config)
    del config.data["spatial_augment"]   # a config.json saved before the section: off
    check_run_config(config)
