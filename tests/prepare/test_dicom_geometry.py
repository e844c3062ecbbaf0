"""Broken DICOM series are refused in one line naming the slice: a duplicate, a missing or moved slice,
mixed orientations, a gantry tilt, a truncated or empty file (series written with SimpleITK, then
damaged file by file)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from iqt.errors import UserError
from iqt.prepare.dicom import read_scan
from tests.prepare.helpers import kept_locale, oblique_image, write_dicom_series

SPACING = (0.9, 1.1, 5.0)


def _series(folder: Path) -> list[Path]:
    image = oblique_image(shape=(24, 20, 6), spacing=SPACING)
    write_dicom_series(image, folder, number=3, description="T1 AX")
    return sorted(folder.iterdir())


def _retag(path: Path, **tags: str) -> None:
    """Rewrites one slice file with some tags replaced (tag 'gggg_eeee' → 'gggg|eeee')."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.LoadPrivateTagsOn()
    piece = reader.Execute()
    for key, value in tags.items():
        piece.SetMetaData(key.replace("_", "|"), value)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(path))
    with kept_locale():
        writer.Execute(piece)


def _position(path: Path) -> np.ndarray:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return np.array([float(v) for v in reader.GetMetaData("0020|0032").split("\\")])


def _normal(path: Path) -> np.ndarray:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    cosines = np.array([float(v) for v in reader.GetMetaData("0020|0037").split("\\")])
    return np.cross(cosines[:3], cosines[3:])


def _at(path: Path, position: np.ndarray) -> None:
    _retag(path, **{"0020_0032": "\\".join(f"{v:.6f}" for v in position)})


def _duplicate(files):
    _at(files[3], _position(files[2]))


def _missing(files):
    files[3].unlink()


def _jittered(files):
    _at(files[3], _position(files[3]) + 1.2 * _normal(files[3]))


def _mixed_orientation(files):
    _retag(files[2], **{"0020_0037": "1\\0\\0\\0\\1\\0"})


def _tilted(files):
    row = np.array(oblique_image().GetDirection()).reshape(3, 3)[:, 0]
    for k, path in enumerate(files):
        _at(path, _position(path) + 0.5 * k * row)


def _truncated(files):
    files[2].write_bytes(files[2].read_bytes()[:-300])


def _empty(files):
    files[4].write_bytes(b"")


DAMAGES = {   # damage: words of the refusal
    "duplicate": (_duplicate, ("two slices at one position", "s3_002.dcm", "s3_003.dcm")),
    "missing": (_missing, ("irregular slice spacing", "10.00 mm", "5.00 mm", "missing")),
    "jittered": (_jittered, ("irregular slice spacing", "s3_003.dcm")),
    "mixed_orientation": (_mixed_orientation, ("mixes slice orientations", "s3_002.dcm")),
    "tilted": (_tilted, ("tilted", "s3_005.dcm", "2.50 mm")),
    "truncated": (_truncated, ("s3_002.dcm is not a readable DICOM image", "incomplete")),
    "empty": (_empty, ("s3_004.dcm is not a readable DICOM image", "0 bytes")),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_broken_series_is_refused_naming_the_slice(tmp_path, damage):
    damage_fn, words = DAMAGES[damage]
    damage_fn(_series(tmp_path / "dicom"))
    with pytest.raises(UserError) as refusal:
        read_scan(tmp_path / "dicom")
    assert all(word in str(refusal.value) for word in words), str(refusal.value)


def test_a_regular_series_and_files_that_are_no_slices_pass(tmp_path):
    _series(tmp_path / "dicom")
    (tmp_path / "dicom" / "README.txt").write_text("scanned 2026-12-07")
    volume, source = read_scan(tmp_path / "dicom")
    assert volume.data.shape == (24, 20, 6) and source["files"] == 6
    np.testing.assert_allclose(np.linalg.norm(volume.affine[:3, :3], axis=0), SPACING, rtol=1e-5)
