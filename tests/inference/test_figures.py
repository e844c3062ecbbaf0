"""The comparison figure: anatomical orientation, physical aspect, one intensity window."""
from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from iqt import figures

AXIAL, CORONAL, SAGITTAL = figures.VIEWS


def _marked_ras(shape=(10, 12, 9)):
    """A volume in RAS order with markers at the right, anterior and superior ends of the central lines."""
    volume = np.zeros(shape)
    cx, cy, cz = ((n - 1) // 2 for n in shape)   # (4, 5, 4): where the central sections cut
    volume[-1, cy, cz] = 1.0    # patient's right (x grows toward R)
    volume[cx, -1, cz] = 2.0    # anterior
    volume[cx, cy, -1] = 3.0    # superior
    return volume


def test_the_patients_right_is_on_the_screens_left_and_up_is_anterior_or_superior():
    volume = _marked_ras()   # rows are drawn bottom to top (origin 'lower')
    axial, size = figures.oriented_section(volume, (1.0, 1.0, 1.0), "RAS", AXIAL)
    assert axial.shape == (12, 10) and size == (10.0, 12.0)     # rows A-P, columns R-L
    assert axial[5, 0] == 1.0 and axial[-1, 5] == 2.0           # right: leftmost; anterior: top
    coronal, size = figures.oriented_section(volume, (1.0, 1.0, 1.0), "RAS", CORONAL)
    assert coronal.shape == (9, 10) and size == (10.0, 9.0)
    assert coronal[4, 0] == 1.0 and coronal[-1, 5] == 3.0       # right: leftmost; superior: top
    sagittal, size = figures.oriented_section(volume, (1.0, 1.0, 1.0), "RAS", SAGITTAL)
    assert sagittal.shape == (9, 12) and size == (12.0, 9.0)
    assert sagittal[4, 0] == 2.0 and sagittal[-1, 6] == 3.0     # anterior: leftmost; superior: top


def test_flipped_or_permuted_storage_shows_the_same_anatomy():
    volume = _marked_ras()
    lps = np.flip(volume, axis=(0, 1))                     # stored L-P-S
    ars = np.transpose(volume, (1, 0, 2))                  # stored A-R-S
    for view in figures.VIEWS:
        expected, size = figures.oriented_section(volume, (1.0, 2.0, 3.0), "RAS", view)
        got, got_size = figures.oriented_section(lps, (1.0, 2.0, 3.0), "LPS", view)
        np.testing.assert_array_equal(got, expected)
        assert got_size == size
        got, got_size = figures.oriented_section(ars, (2.0, 1.0, 3.0), "ARS", view)
        np.testing.assert_array_equal(got, expected)
        assert got_size == size


def test_thick_slices_keep_their_physical_height():
    lf = np.random.default_rng(0).random((20, 16, 4))
    _, (width, height) = figures.oriented_section(lf, (1.0, 1.0, 6.0), "RAS", CORONAL)
    assert (width, height) == (20.0, 24.0)
    hf = np.repeat(lf, 6, axis=-1)
    _, hf_size = figures.oriented_section(hf, (1.0, 1.0, 1.0), "RAS", CORONAL)
    assert hf_size == (20.0, 24.0)
    # cut across the slices, the LF and HF sections are of the same place (the HF slice lies in the LF one)
    for n_lf, codes in ((4, "RAS"), (5, "RAS"), (4, "RAI"), (5, "RAI")):
        lf = np.random.default_rng(n_lf).random((6, 5, n_lf))
        np.testing.assert_array_equal(figures.oriented_section(np.repeat(lf, 6, axis=-1), (1, 1, 1), codes, AXIAL)[0],
                                      figures.oriented_section(lf, (1, 1, 6), codes, AXIAL)[0])


def test_intensity_window_is_robust_and_never_empty():
    volume = np.concatenate([np.zeros(500), np.linspace(0, 100, 1000), [1e6]])
    low, high = figures.intensity_window(volume)
    assert low == 0.0 and high == pytest.approx(np.percentile(volume, 99.5))
    assert figures.intensity_window(np.full(10, 3.0)) == (0.0, 3.0)
    assert figures.intensity_window(np.zeros(10)) == (0.0, 1.0)


def test_the_figure_has_one_column_per_estimate(tmp_path):
    rng = np.random.default_rng(1)
    lf = rng.random((24, 20, 4)).astype(np.float32)
    hf = np.repeat(lf, 4, axis=-1)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    figures.save_enhancement_figure(tmp_path / "two.png", lf, hf, 4, (1.0, 1.0, 1.0), affine)
    figures.save_enhancement_figure(tmp_path / "four.png", lf, hf, 4, (1.0, 1.0, 1.0), affine, cubic=hf,
                                    truth=hf)
    two, four = (matplotlib.image.imread(tmp_path / f"{n}.png") for n in ("two", "four"))
    assert four.shape[1] == pytest.approx(2 * two.shape[1], rel=0.02)   # 4 columns against 2
    assert four.shape[0] == two.shape[0]
