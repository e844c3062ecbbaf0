"""`enhance_file`: intensity units, header, mask, the figure; `plan_outputs` for several inputs."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from iqt.errors import UserError
from iqt.interpolation import interpolate_slices
from iqt.infer_files import enhance_file, figure_path, plan_outputs
from iqt.inference import Predictor

FACTOR = 3


def _scan(tmp_path, slice_axis=1, name="scan.nii.gz"):
    """A skull-stripped-looking scan in scanner units (up to ~800), slices along `slice_axis`."""
    rng = np.random.default_rng(4)
    data = np.zeros((10, 12, 9), np.float32)
    data[2:8, 2:10, 1:8] = rng.uniform(200, 800, (6, 8, 7))
    sizes = [0.9, 0.9, 0.9]
    sizes[slice_axis] = 5.0
    image = nib.Nifti1Image(np.moveaxis(data, 2, slice_axis), np.diag([-sizes[0], sizes[1], sizes[2], 1.0]))
    image.header.set_xyzt_units(xyz="mm", t="sec")
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=4)
    nib.save(image, tmp_path / name)
    return tmp_path / name, np.asarray(image.dataobj)


def test_output_is_in_the_input_units_with_the_input_header(tmp_path):
    path, data = _scan(tmp_path, slice_axis=1)
    nearest = Predictor(lambda lf: interpolate_slices(lf, FACTOR, order=0), FACTOR)
    out_path = enhance_file(path, tmp_path / "out.nii.gz", nearest, progress=False)
    out = nib.load(out_path)
    assert out.get_data_dtype() == np.float32
    np.testing.assert_allclose(np.asarray(out.dataobj), np.repeat(data, FACTOR, axis=1), rtol=1e-5)
    assert int(out.header["qform_code"]) == 1 and int(out.header["sform_code"]) == 4
    assert out.header.get_xyzt_units() == ("mm", "sec")
    np.testing.assert_allclose(out.header.get_zooms(), (0.9, 5.0 / FACTOR, 0.9), rtol=1e-6)
    assert figure_path(out_path) == tmp_path / "out.png"
    assert (tmp_path / "out.png").read_bytes()[:4] == b"\x89PNG"


def test_the_network_sees_intensities_divided_by_the_brain_mean(tmp_path):
    path, data = _scan(tmp_path)
    seen = []

    def ones(lf):
        seen.append(lf.max())
        return np.ones((*lf.shape[:3], lf.shape[3] * FACTOR), np.float32)

    out = enhance_file(path, tmp_path / "out.nii", Predictor(ones, FACTOR), progress=False, figure=False)
    scale = data[data > 0].mean()
    # the network's answer in the brain and one LF slice beyond it along the slices (axis 1); the
    # stripped background elsewhere
    reach = np.repeat(ndimage.binary_dilation(data > 0, np.ones((1, 3, 1), bool)), FACTOR, axis=1)
    np.testing.assert_allclose(np.asarray(nib.load(out).dataobj)[reach], scale, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(nib.load(out).dataobj)[~reach], 0.0)
    assert max(seen) == pytest.approx(data.max() / scale, rel=1e-5)


def test_a_mask_clears_the_background_and_sets_the_scale(tmp_path):
    path, data = _scan(tmp_path, slice_axis=2)
    mask = np.zeros(data.shape, np.uint8)
    mask[3:7, 3:9, 2:6] = 1
    nib.save(nib.Nifti1Image(mask, nib.load(path).affine), tmp_path / "mask.nii.gz")
    nearest = Predictor(lambda lf: interpolate_slices(lf, FACTOR, order=0), FACTOR)
    out = enhance_file(path, tmp_path / "out.nii.gz", nearest, mask_path=tmp_path / "mask.nii.gz",
                       progress=False, figure=False)
    brain = np.repeat(mask > 0, FACTOR, axis=2)
    background = np.maximum(interpolate_slices(np.where(mask > 0, 0, data), FACTOR, 3), 0)  # not invented
    expected = np.where(brain, np.repeat(np.where(mask > 0, data, 0), FACTOR, axis=2), background)
    np.testing.assert_allclose(np.asarray(nib.load(out).dataobj), expected, rtol=1e-5, atol=1e-3)
    nib.save(nib.Nifti1Image(mask[:-1], np.eye(4)), tmp_path / "bad_mask.nii.gz")
    with pytest.raises(UserError, match="bad_mask"):
        enhance_file(path, tmp_path / "out2.nii.gz", nearest, mask_path=tmp_path / "bad_mask.nii.gz",
                     progress=False)
    assert not (tmp_path / "out2.nii.gz").exists()


def test_several_inputs_go_into_an_output_folder(tmp_path):
    (tmp_path / "in").mkdir()
    a, _ = _scan(tmp_path / "in", name="a.nii.gz")
    b, _ = _scan(tmp_path / "in", name="b.nii")
    (tmp_path / "in" / "notes.txt").write_text("ignored")
    pairs = plan_outputs([str(tmp_path / "in")], str(tmp_path / "out"))
    assert pairs == [(a, tmp_path / "out" / "a.nii.gz"), (b, tmp_path / "out" / "b.nii")]
    assert plan_outputs([str(a)], str(tmp_path)) == [(a, tmp_path / "a.nii.gz")]  # an existing folder
    with pytest.raises(UserError, match="overwrite"):
        plan_outputs([str(a), str(tmp_path / "in")], str(tmp_path / "out"))
    with pytest.raises(UserError, match="folder"):
        plan_outputs([str(a), str(b)], str(tmp_path / "x.nii.gz"))
    with pytest.raises(UserError, match="is the input"):
        plan_outputs([str(a)], str(a))


def test_a_failing_figure_leaves_no_volume_either(tmp_path, monkeypatch):
    from iqt import infer_files

    def disk_full(path, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(infer_files, "save_figure", disk_full)
    path, _ = _scan(tmp_path)
    nearest = Predictor(lambda lf: interpolate_slices(lf, FACTOR, order=0), FACTOR)
    with pytest.raises(OSError):
        enhance_file(path, tmp_path / "out" / "iqt.nii.gz", nearest, progress=False)
    assert list((tmp_path / "out").iterdir()) == []
