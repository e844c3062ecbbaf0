"""Inputs that fail late or tiles that are too small: every good input is still enhanced.

Real NIfTI files through `iqt.infer_files.enhance_file`, with a stand-in network that
repeats each LF slice r times: the tiled, blended result must equal that
repetition exactly (the blending weights sum to one), whatever the tile size asked.
"""
import nibabel as nib
import numpy as np
import pytest

from iqt.errors import UserError
from iqt.infer_files import enhance_file, for_each_input
from iqt.inference import Predictor
from simulators import SimulatorInputError
from simulators import tissue_means

FACTOR = 2


def _repeat_slices(batch: np.ndarray) -> np.ndarray:
    return np.repeat(batch, FACTOR, axis=-1)


def _predictor(multiple=(4, 4, 1)) -> Predictor:
    return Predictor(_repeat_slices, FACTOR, multiple)


def _scan(path, data):
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), np.diag([1.0, 1.0, 4.0, 1.0])), path)
    return path


def test_a_folder_with_a_blank_volume_writes_every_good_file_then_reports_it(tmp_path):
    rng = np.random.default_rng(0)
    names = ["a.nii.gz", "b_blank.nii.gz", "c.nii.gz"]
    volumes = [rng.uniform(1, 100, (20, 16, 5)), np.zeros((20, 16, 5)), rng.uniform(1, 100, (20, 16, 5))]
    pairs = [(_scan(tmp_path / n, v), tmp_path / "out" / n) for n, v in zip(names, volumes)]
    with pytest.raises(UserError, match=r"1 of 3 inputs failed \(the other 2 outputs were written\): "
                                        r"b_blank.nii.gz: .*empty"):
        for_each_input(pairs, lambda s, t: enhance_file(s, t, _predictor(), progress=False, figure=False))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.nii.gz", "c.nii.gz"]
    for name, volume in ((names[0], volumes[0]), (names[2], volumes[2])):
        written = nib.load(tmp_path / "out" / name).get_fdata()
        np.testing.assert_allclose(written, np.repeat(volume, FACTOR, axis=-1), rtol=1e-5)


@pytest.mark.parametrize("tile", [(16, 16, 4), (4, 4, 4), (1, 1, 1)])
def test_a_tile_smaller_than_its_margins_grows_to_the_smallest_that_tiles(tile, caplog):
    lf = np.random.default_rng(1).uniform(0, 1, (37, 29, 6)).astype(np.float32)
    hf = _predictor().enhance(lf, tile_lf=tile, margin_lf=(8, 8, 2), progress=False)
    np.testing.assert_allclose(hf, _repeat_slices(lf), rtol=1e-6)
    assert "smaller than its margins" in caplog.text


def test_a_small_crop_without_pure_wm_gets_the_probability_weighted_mean():
    tissue = np.zeros((8, 8, 8, 3), np.float32)
    tissue[..., 0], tissue[..., 1], tissue[..., 2] = 0.95, 0.03, 0.02   # all GM: no voxel > 0.9 of WM
    image = np.arange(8 * 8 * 8, dtype=np.float32).reshape(8, 8, 8)
    means = tissue_means(image, tissue)
    np.testing.assert_allclose(means, [image.mean()] * 3, rtol=1e-6)   # uniform maps: every mean is the mean


def test_maps_without_any_wm_are_refused_by_name():
    tissue = np.zeros((8, 8, 8, 3), np.float32)
    tissue[..., 0] = 1.0
    with pytest.raises(SimulatorInputError, match="WM map is 0 everywhere"):
        tissue_means(np.ones((8, 8, 8)), tissue)
