"""Test-time augmentation (`iqt.tta`): exact inverses on a grid, equivariant networks unchanged,
the average of the flipped predictions by hand, and the one-line refusal of an unknown mode."""
from __future__ import annotations

import numpy as np
import pytest

from iqt import tta
from iqt.errors import UserError
from iqt.inference import Predictor
from iqt.interpolation import interpolate_slices

R = 3


def _upsample(lf: np.ndarray) -> np.ndarray:
    """A flip-equivariant 'network': every LF slice repeated r times (nearest along the slices)."""
    return np.repeat(lf, R, axis=-1).astype(np.float32)


def test_flips_are_the_eight_subsets_of_the_three_axes_identity_first():
    sets = tta.flip_sets("flips")
    assert sets[0] == () and len(sets) == len(set(sets)) == 8
    assert set(sets) == {(), (1,), (2,), (3,), (1, 2), (1, 3), (2, 3), (1, 2, 3)}
    assert tta.flip_sets("none") == [()]


def test_each_flip_is_its_own_exact_inverse_on_the_slice_convention():
    lf = np.random.default_rng(0).random((2, 5, 4, 3), dtype=np.float32)
    for axes in tta.flip_sets("flips"):
        forward = _upsample(np.flip(lf, axes))
        np.testing.assert_array_equal(np.flip(forward, axes), _upsample(lf))   # HF slices reverse with LF's
        np.testing.assert_array_equal(np.flip(np.flip(lf, axes), axes), lf)


def test_an_equivariant_network_is_unchanged_by_tta():
    lf = np.random.default_rng(1).random((2, 6, 5, 4), dtype=np.float32)
    np.testing.assert_allclose(tta.with_tta(_upsample, "flips")(lf), _upsample(lf), rtol=1e-6)
    cubic = lambda x: np.stack([interpolate_slices(v, R, 3) for v in x])   # symmetric kernel: equivariant too
    np.testing.assert_allclose(tta.with_tta(cubic, "flips")(lf), cubic(lf), atol=1e-5)


def test_a_network_with_a_direction_is_averaged_over_its_flips():
    ramp = np.arange(6, dtype=np.float32)[None, :, None, None]
    biased = lambda x: _upsample(x) + ramp   # adds 0 … 5 along x: not flip-equivariant
    lf = np.random.default_rng(2).random((1, 6, 5, 2), dtype=np.float32)
    np.testing.assert_allclose(tta.with_tta(biased, "flips")(lf), _upsample(lf) + 2.5, rtol=1e-6)   # mean ramp


def test_none_is_the_network_itself_and_an_unknown_mode_is_refused():
    assert tta.with_tta(_upsample, "none") is _upsample
    predictor = tta.augmented(Predictor(_upsample, R), "flips")
    assert predictor.factor == R and predictor.predict_fn is not _upsample
    with pytest.raises(UserError, match="--tta"):
        tta.flip_sets("rotations")
