"""Tiled enhancement gives the whole-volume answer, whatever the tiles and batches."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

from iqt.inference import Predictor, enhance_volume
from iqt.tiling import plan_axis, plan_tiles, fade

FACTOR = 4


def local_predict(lf: np.ndarray) -> np.ndarray:
    """A stand-in network with a small receptive field (1 voxel in-plane, 1 slice along z).

    3×3 in-plane mean with zero padding (like a 'same' conv), then linear
    interpolation along the slices at the convention's positions.
    """
    smooth = ndimage.uniform_filter(lf, size=(1, 3, 3, 1), mode="constant")
    positions = (np.arange(lf.shape[-1] * FACTOR) - (FACTOR - 1) / 2) / FACTOR
    positions = np.clip(positions, 0, lf.shape[-1] - 1)
    low = np.floor(positions).astype(int)
    high = np.minimum(low + 1, lf.shape[-1] - 1)
    t = (positions - low).astype(np.float32)
    return smooth[..., low] * (1 - t) + smooth[..., high] * t


@pytest.fixture
def volume() -> np.ndarray:
    return np.random.default_rng(0).random((37, 29, 9), dtype=np.float32)


@pytest.mark.parametrize("length,max_size,margin,multiple,scale", [
    (37, 16, 2, 1, 1), (100, 30, 3, 2, 3), (512, 144, 8, 16, 1), (9, 4, 1, 1, 4), (233, 128, 8, 16, 1),
    (28, 32, 2, 2, 8), (61, 20, 0, 4, 2)])
def test_weights_are_a_partition_of_unity_that_ignores_tile_edges(length, max_size, margin, multiple, scale):
    axis = plan_axis(length, max_size, margin, multiple)
    assert axis.padded >= length and axis.padded % multiple == 0
    assert axis.size <= max(max_size, multiple) and axis.size % multiple == 0
    assert all(s % multiple == 0 for s in axis.starts) and axis.starts[-1] + axis.size == axis.padded
    total = np.zeros(axis.padded * scale)
    for i, (start, w) in enumerate(zip(axis.starts, axis.weights(scale))):
        total[start * scale:(start + axis.size) * scale] += w
        if i > 0:       # an edge shared with the previous tile: its margin is never used
            assert np.all(w[:margin * scale] == 0)
        if i < len(axis.starts) - 1:
            assert np.all(w[len(w) - margin * scale:] == 0)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_plan_picks_fewer_computed_voxels_than_naive_stepping():
    # 256 voxels, tiles <= 144, margin 8: two tiles of 144 (288 computed), not three
    axis = plan_axis(256, 144, 8, 16)
    assert len(axis.starts) * axis.size == 288
    plan = plan_tiles((512, 512, 28), (272, 272, 32), (8, 8, 2), (16, 16, 2))   # the default tile
    assert plan.overlap_waste < 1.3
    assert plan_tiles((512, 512, 28), (144, 144, 32), (8, 8, 2), (16, 16, 2)).overlap_waste < 2.0


def test_whole_volume_answer_for_any_tile_size(volume):
    expected = local_predict(volume[None])[0]
    for tile in [(64, 64, 16), (16, 16, 4), (20, 12, 6), (8, 10, 4)]:
        out = enhance_volume(volume, local_predict, FACTOR, tile_lf=tile, margin_lf=(2, 2, 1),
                             progress=False)
        assert out.shape == (37, 29, 9 * FACTOR) and out.dtype == np.float32
        np.testing.assert_allclose(out, expected, atol=1e-5, err_msg=f"tile {tile}")


def test_padding_to_the_network_multiple_mirrors_the_far_end(volume):
    multiple = (8, 8, 2)
    padded = np.pad(volume, [(0, 3), (0, 3), (0, 1)], mode="symmetric")   # to 40, 32, 10
    expected = local_predict(padded[None])[0][:37, :29, :9 * FACTOR]
    for tile in [(40, 32, 10), (16, 16, 6)]:
        out = enhance_volume(volume, local_predict, FACTOR, tile_lf=tile, margin_lf=(2, 2, 1),
                             multiple=multiple, progress=False)
        np.testing.assert_allclose(out, expected, atol=1e-5)


def test_batches_hold_at_most_batch_size_tiles_and_do_not_change_the_answer(volume):
    results, calls = {}, {}
    for batch_size in (1, 3, 100):
        shapes = []

        def recording(lf):
            shapes.append(lf.shape)
            return local_predict(lf)

        results[batch_size] = enhance_volume(volume, recording, FACTOR, tile_lf=(16, 16, 4),
                                             margin_lf=(2, 2, 1), batch_size=batch_size, progress=False)
        calls[batch_size] = shapes
    plan = plan_tiles(volume.shape, (16, 16, 4), (2, 2, 1))
    for batch_size, shapes in calls.items():
        size = min(batch_size, plan.num_tiles)
        assert len(shapes) == -(-plan.num_tiles // size)
        assert all(s[0] == size and s[1:] == (plan.axes[0].size, plan.axes[1].size, plan.axes[2].size)
                   for s in shapes)
    for a, b in itertools.combinations(results.values(), 2):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_overlap_waste_counts_the_voxels_actually_computed(volume):
    computed = []
    plan = plan_tiles(volume.shape, (16, 16, 4), (2, 2, 1))
    enhance_volume(volume, lambda lf: computed.append(lf[0].size) or local_predict(lf), FACTOR,
                   tile_lf=(16, 16, 4), margin_lf=(2, 2, 1), progress=False)
    assert sum(computed) / volume.size == pytest.approx(plan.overlap_waste)
    assert len(computed) == plan.num_tiles


def test_a_wrong_output_shape_from_the_network_is_reported(volume):
    with pytest.raises(ValueError, match="expected"):
        enhance_volume(volume, lambda lf: lf, FACTOR, progress=False)


def test_the_predictor_cuts_the_tiles_it_is_asked_for():
    volume = np.random.default_rng(3).random((20, 18, 12), dtype=np.float32)
    shapes = []

    def recording(lf):
        shapes.append(lf.shape[1:])
        return local_predict(lf)

    out = Predictor(recording, FACTOR, (1, 1, 1)).enhance(
        volume, tile_lf=(16, 16, 8), margin_lf=(2, 2, 2), progress=False)
    plan = plan_tiles(volume.shape, (16, 16, 8), (2, 2, 2))
    assert set(shapes) == {tuple(a.size for a in plan.axes)} and len(shapes) == plan.num_tiles
    np.testing.assert_allclose(out, local_predict(volume[None])[0], atol=1e-5)


@pytest.mark.parametrize("length, tile, margin", [(64, 32, 2), (256, 128, 8), (12, 8, 1), (512, 272, 8)])
def test_neighbours_cross_fade_over_at_least_the_fade_beyond_their_margins(length, tile, margin):
    axis = plan_axis(length, tile, margin)
    weights = axis.weights()
    for i, (left, right) in enumerate(zip(axis.starts, axis.starts[1:])):
        overlap = slice(right, left + axis.size)
        w_left, w_right = weights[i][overlap.start - left:], weights[i + 1][:overlap.stop - right]
        assert np.all(w_left[:margin] == 1.0) and np.all(w_right[-margin:] == 1.0)   # margins discarded
        partial = np.count_nonzero((w_right > 0) & (w_right < 1))
        assert partial >= fade(margin), (axis, partial)                               # a real cross-fade
        np.testing.assert_allclose(w_left + w_right, 1.0, atol=1e-6)
