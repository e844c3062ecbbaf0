"""iqt.data.nifti: reading, writing, grid checks, slice axis and the slice convention."""
from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from iqt.data import nifti
from iqt.data.subject import load_subject
from iqt.errors import UserError
from iqt.io_utils import atomic_path

RNG = np.random.default_rng(0)


def oblique_affine(voxel_sizes=(1.0, 1.2, 3.0), origin=(-40.0, 12.5, 7.0)) -> np.ndarray:
    """A rotated (about z by 30 degrees), anisotropic voxel -> world affine."""
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(voxel_sizes)
    affine[:3, 3] = origin
    return affine


# --- reading ---------------------------------------------------------------

def test_load_matches_nibabel_as_float32(tmp_nifti):
    raw = RNG.integers(-300, 3000, size=(6, 7, 5)).astype(np.int16)
    path = tmp_nifti(raw, oblique_affine())
    volume = nifti.load_volume(path)
    reference = nib.load(path)
    assert volume.data.dtype == np.float32
    np.testing.assert_array_equal(volume.data, reference.get_fdata())
    np.testing.assert_allclose(volume.affine, reference.affine)
    np.testing.assert_allclose(volume.voxel_sizes_mm, (1.0, 1.2, 3.0), rtol=1e-6)
    assert isinstance(volume.header, nib.Nifti1Header)


def test_orientation_of_a_flipped_permuted_affine(tmp_nifti):
    # array axis 0 -> world -y (posterior), axis 1 -> +x (right), axis 2 -> -z (inferior)
    affine = np.array([[0, 2.0, 0, 0], [-1.0, 0, 0, 0], [0, 0, -4.0, 0], [0, 0, 0, 1]])
    volume = nifti.load_volume(tmp_nifti(np.ones((3, 4, 5), np.float32), affine))
    assert volume.orientation == ("P", "R", "I")
    assert volume.voxel_sizes_mm == (1.0, 2.0, 4.0)


def test_trailing_singleton_axis_is_squeezed(tmp_nifti):
    data = RNG.random((4, 5, 6, 1)).astype(np.float32)
    volume = nifti.load_volume(tmp_nifti(data))
    assert volume.data.shape == (4, 5, 6)
    np.testing.assert_array_equal(volume.data, data[..., 0])


def _not_nifti_text(tmp_path):
    path = tmp_path / "notes.nii.gz"
    path.write_text("this is not an image\n")
    return path


def _gzip_of_garbage(tmp_path):
    path = tmp_path / "garbage.nii.gz"
    path.write_bytes(gzip.compress(b"\x00\x01 not a NIfTI header" * 20))
    return path


def _truncated(tmp_nifti):
    path = tmp_nifti(RNG.random((16, 16, 16)).astype(np.float32), name="truncated.nii.gz")
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    return path


def _truncated_uncompressed(tmp_nifti):
    path = tmp_nifti(RNG.random((16, 16, 16)).astype(np.float32), name="truncated.nii")
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    return path


def _mgh(tmp_path):
    path = tmp_path / "image.mgz"
    nib.save(nib.MGHImage(np.ones((3, 3, 3), np.float32), np.eye(4)), path)
    return path


def _with_nans(tmp_nifti):
    data = np.ones((4, 4, 4), np.float32)
    data[0, 0, 0], data[1, 2, 3], data[3, 3, 3] = np.nan, np.inf, -np.inf
    return tmp_nifti(data, name="nans.nii.gz")


def _raw_nifti(path, data, *, sform=None, shape=None):
    """Writes a NIfTI-1 file byte by byte, so that its header can say what nibabel would refuse
    to write: `sform` (3x4 rows, qform off) and a claimed `shape` other than the data's."""
    header = nib.Nifti1Image(data, np.diag([1.0, 1.0, 4.0, 1.0])).header.copy()
    if sform is not None:
        header["qform_code"], header["sform_code"] = 0, 1
        header["srow_x"], header["srow_y"], header["srow_z"] = np.asarray(sform, np.float64)[:3]
    if shape is not None:
        header.set_data_shape(shape)
    content = header.binaryblock + b"\0" * 4 + np.asarray(data).tobytes(order="F")
    path.write_bytes(gzip.compress(content) if path.name.endswith(".gz") else content)
    return path


_VOXELS = np.arange(8 * 8 * 4, dtype=np.float32).reshape(8, 8, 4)
_ANISO = np.diag([1.0, 1.0, 4.0, 1.0])


def _parallel_axes():
    sform = _ANISO.copy()
    sform[:3, 2] = 4 * sform[:3, 0]   # the slice axis points along the first axis: rank 2
    return sform


BAD_FILES = {
    "NaN in the affine": (lambda tmp_path, tmp_nifti: _raw_nifti(
        tmp_path / "nan.nii.gz", _VOXELS, sform=np.where(np.eye(4) == 1, np.nan, 0.0)), "non-finite affine"),
    "all-zero affine": (lambda tmp_path, tmp_nifti: _raw_nifti(
        tmp_path / "zero.nii.gz", _VOXELS, sform=np.zeros((4, 4))), "singular affine"),
    "rank-deficient affine": (lambda tmp_path, tmp_nifti: _raw_nifti(
        tmp_path / "rank2.nii.gz", _VOXELS, sform=_parallel_axes()), "singular affine"),
    "complex64": (lambda tmp_path, tmp_nifti: tmp_nifti(_VOXELS.astype(np.complex64)), "complex voxels"),
    "RGB24": (lambda tmp_path, tmp_nifti: tmp_nifti(np.zeros((4, 4, 4), [("R", "u1"), ("G", "u1"), ("B", "u1")])),
              "RGB"),
    "header claims more than the .nii holds": (lambda tmp_path, tmp_nifti: _raw_nifti(
        tmp_path / "claims.nii", _VOXELS, shape=(8, 8, 40)), "truncated or corrupt"),
    "header claims more than the .nii.gz holds": (lambda tmp_path, tmp_nifti: _raw_nifti(
        tmp_path / "claims.nii.gz", _VOXELS, shape=(8, 8, 40)), "truncated or corrupt"),
    "header claims 1.6e9 voxels": (lambda tmp_path, tmp_nifti: _raw_nifti(
        tmp_path / "huge.nii.gz", _VOXELS, shape=(2000, 2000, 400)), "more than the limit"),

    "missing": (lambda tmp_path, tmp_nifti: tmp_path / "absent.nii.gz", "does not exist"),
    "text": (lambda tmp_path, tmp_nifti: _not_nifti_text(tmp_path), "not a readable NIfTI"),
    "gzip of garbage": (lambda tmp_path, tmp_nifti: _gzip_of_garbage(tmp_path), "not a readable NIfTI"),
    "mgh": (lambda tmp_path, tmp_nifti: _mgh(tmp_path), "not a NIfTI"),
    "truncated gz": (lambda tmp_path, tmp_nifti: _truncated(tmp_nifti), "truncated or corrupt"),
    "truncated nii": (lambda tmp_path, tmp_nifti: _truncated_uncompressed(tmp_nifti), "truncated or corrupt"),
    "two volumes": (lambda tmp_path, tmp_nifti: tmp_nifti(np.zeros((3, 3, 3, 2), np.float32)),
                    "more than one volume"),
    "zero-length axis": (lambda tmp_path, tmp_nifti: tmp_nifti(np.zeros((3, 0, 3), np.float32)),
                         "zero-length axis"),
    "2D": (lambda tmp_path, tmp_nifti: tmp_nifti(np.zeros((3, 3), np.float32)), "3D volume is needed"),
    "non-finite": (lambda tmp_path, tmp_nifti: _with_nans(tmp_nifti), "3 non-finite voxels"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_is_a_user_error_naming_the_file(case, tmp_path, tmp_nifti):
    make, expected = BAD_FILES[case]
    path = make(tmp_path, tmp_nifti)
    with pytest.raises(UserError) as error:
        nifti.load_volume(path, name="T1 scan")
    message = str(error.value)
    assert expected in message
    assert str(path) in message and "T1 scan" in message
    assert "\n" not in message


# --- writing ---------------------------------------------------------------

def test_save_then_load_round_trip_checked_with_nibabel(tmp_path):
    header = nib.Nifti1Header()
    header.set_xyzt_units(xyz="mm", t="sec")
    header["qform_code"], header["sform_code"] = 1, 4
    data = RNG.normal(size=(5, 6, 7)).astype(np.float32)
    affine = oblique_affine()
    path = tmp_path / "out" / "enhanced.nii.gz"
    nifti.save_volume(path, data, affine, header)

    written = nib.load(path)
    assert written.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), data)
    np.testing.assert_allclose(written.affine, affine, atol=1e-6)
    assert (int(written.header["qform_code"]), int(written.header["sform_code"])) == (1, 4)
    np.testing.assert_allclose(written.header.get_qform(), affine, atol=1e-5)
    np.testing.assert_allclose(written.header.get_zooms(), (1.0, 1.2, 3.0), rtol=1e-6)
    assert written.header.get_xyzt_units() == ("mm", "sec")

    again = nifti.load_volume(path)
    np.testing.assert_array_equal(again.data, data)
    nifti.save_volume(tmp_path / "copy.nii", again.data, again.affine, again.header)
    copy = nib.load(tmp_path / "copy.nii")
    assert (int(copy.header["qform_code"]), int(copy.header["sform_code"])) == (1, 4)
    assert copy.header.get_xyzt_units() == ("mm", "sec")


def test_save_replaces_shape_dtype_and_scaling_of_the_source_header(tmp_nifti, tmp_path):
    source = nib.Nifti1Image(np.arange(2 * 3 * 4 * 2, dtype=np.int16).reshape(2, 3, 4, 2), np.eye(4))
    source.header.set_slope_inter(2.0, 10.0)
    nib.save(source, tmp_path / "source.nii.gz")
    header = nib.load(tmp_path / "source.nii.gz").header
    data = RNG.random((4, 4, 3)).astype(np.float32)
    nifti.save_volume(tmp_path / "out.nii.gz", data, np.diag([2.0, 2.0, 2.0, 1.0]), header)
    written = nib.load(tmp_path / "out.nii.gz")
    assert written.shape == (4, 4, 3)
    assert written.get_data_dtype() == np.float32
    assert written.header.get_slope_inter() in ((None, None), (1.0, 0.0))
    np.testing.assert_array_equal(written.get_fdata(dtype=np.float32), data)


def test_save_without_codes_keeps_the_affine_in_the_sform(tmp_path):
    affine = oblique_affine()
    nifti.save_volume(tmp_path / "plain.nii.gz", np.zeros((2, 2, 2)), affine)
    written = nib.load(tmp_path / "plain.nii.gz")
    assert int(written.header["sform_code"]) == 2
    np.testing.assert_allclose(written.affine, affine, atol=1e-6)


def test_writer_that_raises_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "out.nii.gz"
    target.write_bytes(b"previous result")

    def failing_save(image, filename):
        with open(filename, "wb") as f:
            f.write(b"half a NIfTI")
        raise RuntimeError("disk full")

    monkeypatch.setattr(nifti.nib, "save", failing_save)
    with pytest.raises(RuntimeError):
        nifti.save_volume(target, np.zeros((2, 2, 2)), np.eye(4))
    with pytest.raises(RuntimeError):
        nifti.save_volume(tmp_path / "new.nii.gz", np.zeros((2, 2, 2)), np.eye(4))
    assert target.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nii.gz"]


def test_saved_file_has_the_permissions_of_a_plainly_created_file(tmp_path):
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"")
    nifti.save_volume(tmp_path / "saved.nii.gz", np.zeros((2, 2, 2)), np.eye(4))
    assert (tmp_path / "saved.nii.gz").stat().st_mode == plain.stat().st_mode


def test_exception_inside_atomic_path_leaves_no_file(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "out.nii.gz") as tmp:
            tmp.write_bytes(b"partial")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


# --- grids -----------------------------------------------------------------

def _volume(shape=(4, 5, 6), affine=None) -> nifti.Volume:
    return nifti.Volume(np.zeros(shape, np.float32), np.eye(4) if affine is None else affine,
                        nib.Nifti1Header())


def test_check_same_grid_names_the_map_that_disagrees():
    reference = _volume()
    shifted = np.eye(4)
    shifted[1, 3] = 0.01
    nifti.check_same_grid(reference, {"GM map": _volume(affine=np.eye(4) + 1e-5)})
    with pytest.raises(UserError, match="WM map has shape"):
        nifti.check_same_grid(reference, {"GM map": _volume(), "WM map": _volume((4, 5, 7))})
    with pytest.raises(UserError, match="CSF map has a different affine"):
        nifti.check_same_grid(reference, {"CSF map": _volume(affine=shifted)})


def test_load_subject_rejects_mismatched_tissue_files(tmp_nifti):
    image = tmp_nifti(np.ones((4, 5, 6), np.float32), name="t1.nii.gz")
    gm = tmp_nifti(np.full((4, 5, 6), 0.5, np.float32), name="gm.nii.gz")
    wm_wrong_shape = tmp_nifti(np.zeros((4, 5, 5), np.float32), name="wm.nii.gz")
    moved = np.eye(4)
    moved[0, 3] = 1.0
    csf_moved = tmp_nifti(np.zeros((4, 5, 6), np.float32), moved, name="csf.nii.gz")
    csf = tmp_nifti(np.zeros((4, 5, 6), np.float32), name="csf_ok.nii.gz")
    with pytest.raises(UserError, match=r"WM map .*wm\.nii\.gz has shape"):
        load_subject("s01", image, gm, wm_wrong_shape, csf)
    with pytest.raises(UserError, match=r"CSF map .*csf\.nii\.gz has a different affine"):
        load_subject("s01", image, gm, gm, csf_moved)
    with pytest.raises(UserError, match="CSF"):
        load_subject("s01", image, gm, gm)


def test_load_subject_scales_uint8_maps(tmp_nifti):
    image = tmp_nifti(np.ones((2, 2, 2), np.float32), name="t1.nii.gz")
    gm = tmp_nifti(np.full((2, 2, 2), 255, np.uint8), name="gm.nii.gz")
    wm = tmp_nifti(np.full((2, 2, 2), 51, np.uint8), name="wm.nii.gz")
    csf = tmp_nifti(np.full((2, 2, 2), 1.02, np.float32), name="csf.nii.gz")
    subject = load_subject("s01", image, gm, wm, csf)
    assert subject.tissue.shape == (2, 2, 2, 3) and subject.tissue.dtype == np.float32
    np.testing.assert_allclose(subject.tissue[0, 0, 0], [1.0, 0.2, 1.0], rtol=1e-6)
    percent = tmp_nifti(np.full((2, 2, 2), 80.0, np.float32), name="csf_percent.nii.gz")
    with pytest.raises(UserError, match=r"CSF map .*csf_percent\.nii\.gz holds values from 80"):
        load_subject("s01", image, gm, wm, percent)


# --- slice axis and the slice convention -------------------------------------

@pytest.mark.parametrize("sizes, axis", [((1, 1, 5), 2), ((4, 0.9, 1), 0), ((0.7, 2.8, 0.7), 1)])
def test_slice_axis_is_the_clearly_largest_spacing(sizes, axis):
    assert nifti.find_slice_axis(sizes) == axis


def test_ambiguous_slice_axis_asks_for_the_flag():
    with pytest.raises(UserError, match="--slice_axis"):
        nifti.find_slice_axis((1.0, 1.0, 1.4))
    assert nifti.find_slice_axis((1.0, 1.0, 1.4), min_ratio=1.3) == 2
    assert nifti.find_slice_axis((1.0, 1.0, 1.0), slice_axis=0) == 0
    for bad in (3, -1, True):
        with pytest.raises(UserError, match="--slice_axis"):
            nifti.find_slice_axis((1.0, 1.0, 5.0), slice_axis=bad)


def test_an_isotropic_scan_is_told_it_has_no_slice_axis_to_enhance():
    with pytest.raises(UserError, match="not a thick-slice scan") as refused:
        nifti.find_slice_axis((1.0, 1.05, 1.0))
    assert "no thick slices to enhance" in str(refused.value)


def test_lf_affine_by_hand():
    lf = nifti.lf_affine_from_hf(np.eye(4), 4)
    expected = np.eye(4)
    expected[2, 2], expected[2, 3] = 4.0, 1.5
    np.testing.assert_array_equal(lf, expected)
    with pytest.raises(UserError):
        nifti.lf_affine_from_hf(np.eye(4), 0)


@pytest.mark.parametrize("factor", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("slice_axis", [0, 1, 2])
def test_lf_and_hf_affines_are_inverses_and_follow_the_convention(factor, slice_axis):
    hf = oblique_affine((0.7, 0.8, 0.9))
    lf = nifti.lf_affine_from_hf(hf, factor, slice_axis)
    np.testing.assert_allclose(nifti.hf_affine_from_lf(lf, factor, slice_axis), hf, atol=1e-12)
    np.testing.assert_allclose(nifti.lf_affine_from_hf(nifti.hf_affine_from_lf(hf, factor, slice_axis),
                                                       factor, slice_axis), hf, atol=1e-12)
    for j in range(5):
        lf_voxel, hf_voxel = np.array([3.0, 2.0, 1.0, 1.0]), np.array([3.0, 2.0, 1.0, 1.0])
        lf_voxel[slice_axis] = j
        hf_voxel[slice_axis] = factor * j + (factor - 1) / 2
        np.testing.assert_allclose(lf @ lf_voxel, hf @ hf_voxel, atol=1e-9)
    np.testing.assert_allclose(nifti.voxel_sizes_from_affine(lf)[slice_axis],
                               factor * (0.7, 0.8, 0.9)[slice_axis])


def test_describe_reports_an_ambiguous_slice_axis_without_failing():
    volume = nifti.Volume(np.arange(8, dtype=np.float32).reshape(2, 2, 2), np.eye(4), nib.Nifti1Header())
    lines = nifti.describe(volume).splitlines()
    assert lines[0] == "shape: 2 x 2 x 2" and lines[-1] == "intensity range: 0 to 7"
    assert lines[3].startswith("slice axis: none stands out") and "--slice_axis" in lines[3]
    assert nifti.describe(volume, slice_axis=1).splitlines()[3] == "slice axis: 1 (given)"
