"""The blinded reading plan and the anonymised NIfTI copies."""
import gzip
from collections import Counter

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from analysis.anonymise import anonymised_image, copy_anonymised, load_nifti, scanner_fields
from analysis.design import POSITIONS, reading_plan
from analysis.errors import UserError
from analysis.scores import IMAGE_TYPES

PATIENTS = [f"P{k:02d}" for k in range(1, 13)]
READERS = [f"R{k}" for k in range(1, 8)]


@pytest.fixture(scope="module")
def plan():
    return reading_plan(PATIENTS, READERS, seed=11)


def _unblind(plan_table: pd.DataFrame, key: pd.DataFrame, experiment: int, column: str):
    lookup = key[key["experiment"] == experiment].set_index("code")
    return plan_table[column].map(lookup["patient"]), plan_table[column].map(lookup["image_type"])


def test_experiment1_every_reader_sees_every_patient_once(plan):
    first, _, key = plan
    patients, types = _unblind(first, key, 1, "case")
    assert len(first) == len(READERS) * len(PATIENTS)
    seen = Counter(zip(first["reader"], patients))
    assert set(seen) == {(r, p) for r in READERS for p in PATIENTS}
    assert set(seen.values()) == {1}
    for reader, rows in first.groupby("reader"):
        assert sorted(rows["reading_order"]) == list(range(1, len(PATIENTS) + 1))


def test_experiment1_image_types_balanced(plan):
    first, _, key = plan
    patients, types = _unblind(first, key, 1, "case")
    per_reader = Counter(zip(first["reader"], types))
    # 12 patients: every reader sees exactly 4 of each type.
    assert {per_reader[r, t] for r in READERS for t in IMAGE_TYPES} == {4}
    per_patient = Counter(zip(patients, types))
    # 7 readers per patient: each type shown to 2 or 3 of them.
    assert {per_patient[p, t] for p in PATIENTS for t in IMAGE_TYPES} <= {2, 3}


def test_experiment2_side_by_side_order(plan):
    _, second, key = plan
    assert len(second) == len(READERS) * len(PATIENTS)
    unblinded = {pos: _unblind(second, key, 2, f"case_{pos}") for pos in POSITIONS}
    for k in range(len(second)):
        patients = {unblinded[pos][0].iloc[k] for pos in POSITIONS}
        types = {unblinded[pos][1].iloc[k] for pos in POSITIONS}
        assert len(patients) == 1 and types == set(IMAGE_TYPES)
    seen = Counter(zip(second["reader"], unblinded["A"][0]))
    assert set(seen) == {(r, p) for r in READERS for p in PATIENTS}
    # Each type takes each position 12 / 3 = 4 times for every reader.
    for pos in POSITIONS:
        counts = Counter(zip(second["reader"], unblinded[pos][1]))
        assert {counts[r, t] for r in READERS for t in IMAGE_TYPES} == {4}


def test_codes_are_blind(plan):
    first, second, key = plan
    assert key["code"].is_unique
    codes = set(key["code"])
    assert not any(p in c for c in codes for p in PATIENTS)
    assert set(key[key["experiment"] == 1]["code"]).isdisjoint(key[key["experiment"] == 2]["code"])
    assert set(first.columns) == {"reader", "reading_order", "case"}  # nothing unblinded


def test_same_seed_same_plan(plan):
    again = reading_plan(PATIENTS, READERS, seed=11)
    for table, same in zip(plan, again):
        pd.testing.assert_frame_equal(table, same)
    other = reading_plan(PATIENTS, READERS, seed=12)
    assert not plan[0].equals(other[0])


SECRETS = (b"SIEMENS MAGNETOM Avanto 1.5T", b"LF_0.36T_scan", b"ParaView", b"HFSCAN",
           b"MagneticFieldStrength")


def _scanner_like_nifti(path):
    data = np.arange(4 * 5 * 3, dtype=np.int16).reshape(4, 5, 3)
    affine = np.diag([0.5, 0.5, 6.0, 1.0])
    affine[:3, 3] = [-10, 20, 5]
    image = nib.Nifti1Image(data, affine)
    header = image.header
    header["descrip"] = SECRETS[0]
    header["aux_file"] = SECRETS[1]
    header["db_name"] = SECRETS[2]
    header["intent_name"] = SECRETS[3]
    header.extensions.append(nib.nifti1.Nifti1Extension(6, b'{"MagneticFieldStrength": 0.36}'))
    header.set_dim_info(freq=0, phase=1, slice=2)
    header["slice_duration"] = 0.05
    header["pixdim"][4] = 2500.0  # repetition time, as converters store it
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, path)
    return data, affine


def test_anonymised_copy_has_no_scanner_fields(tmp_path):
    source, target = tmp_path / "LF_T1w.nii.gz", tmp_path / "out" / "T1w.nii.gz"
    data, affine = _scanner_like_nifti(source)
    assert set(scanner_fields(load_nifti(source))) == {
        "descrip", "aux_file", "db_name", "intent_name", "extensions", "dim_info",
        "slice_duration", "pixdim[4]"}
    copy_anonymised(source, target)
    copy = nib.load(target)
    assert scanner_fields(copy) == {}
    raw = gzip.decompress(target.read_bytes())
    assert not any(secret in raw for secret in SECRETS)
    np.testing.assert_array_equal(np.asanyarray(copy.dataobj), data)
    np.testing.assert_allclose(copy.affine, affine)
    assert copy.get_data_dtype() == np.int16
    assert int(copy.header["qform_code"]) == 1 and int(copy.header["sform_code"]) == 1
    assert copy.header.get_zooms() == pytest.approx((0.5, 0.5, 6.0))


def test_anonymise_nifti2_and_bad_files(tmp_path):
    image = nib.Nifti2Image(np.ones((2, 2, 2), np.float32), np.eye(4))
    image.header["descrip"] = b"scanner 3T"
    assert scanner_fields(anonymised_image(image)) == {}
    assert isinstance(anonymised_image(image), nib.Nifti2Image)
    (tmp_path / "bad.nii.gz").write_bytes(b"not an image")
    with pytest.raises(UserError, match="bad.nii.gz"):
        load_nifti(tmp_path / "bad.nii.gz")
