"""TFDS builders: round trips against the source NIfTIs, split rules, precise manifest errors."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from iqt.config_io import config_from_json, to_json
from iqt.data.config import default_config
from iqt.data.datasets import common, ensure_built, iqt_template
from iqt.data.datasets.tissue_labels import tissue_from_aseg
from iqt.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def _examples(builder, split: str) -> dict[str, dict]:
    source = builder.as_data_source(split)
    examples = [source[i] for i in range(len(source))]
    return {e["subject_id"].decode(): e for e in examples}


def _expected(image: np.ndarray, tissue: np.ndarray):
    """Independent normalisation: 99th percentile of the voxels with any tissue."""
    scale = np.percentile(image[tissue.max(axis=-1) > 0], 99)
    normalised = image / scale
    means = [normalised[tissue[..., t] > 0.9].mean() for t in range(3)]
    return normalised, scale, np.array(means)


def _check_example(example: dict, image: np.ndarray, tissue: np.ndarray, affine: np.ndarray):
    normalised, scale, means = _expected(image, tissue)
    np.testing.assert_allclose(example["image"], normalised, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(example["scale"], scale, rtol=1e-5)
    np.testing.assert_allclose(example["tissue_means"], means, rtol=1e-4)
    assert example["tissue"].dtype == np.uint8
    assert np.max(np.abs(example["tissue"] / 255.0 - tissue)) <= 0.5 / 255 + 1e-6
    np.testing.assert_allclose(example["affine"], affine)
    np.testing.assert_allclose(example["voxel_sizes_mm"], np.linalg.norm(affine[:3, :3], axis=0), rtol=1e-6)


@pytest.mark.parametrize("dataset", ["iqt_template", "hcp/t2w", "lemon", "nifti_folder"])
def test_data_config_round_trips_through_json(dataset):
    config = default_config(dataset)
    assert config_from_json(to_json(config)) == config
    assert all(value is not None and not isinstance(value, list) for value in config.to_dict().values())
    assert [config.dataset, config.builder_config] == (dataset.split("/") + [""])[:2]


def test_split_rule_is_by_sorted_id():
    ids = [f"{i:03d}" for i in range(75)][::-1]
    splits = common.split_subjects(ids, 60, 10, 0.2)
    ordered = sorted(ids)
    assert splits == {"train": ordered[:48], "validation": ordered[48:60], "test": ordered[60:70]}
    # Fewer than 70: test share round(5 * 10 / 70) = 1, validation round(0.2 * 4) = 1.
    assert common.split_subjects(["e", "d", "c", "b", "a"], 60, 10, 0.2) == {
        "train": ["a", "b", "c"], "validation": ["d"], "test": ["e"]}
    assert common.split_subjects(["b", "a", "c"], 0, 1, 0.0) == {"train": ["a", "b"], "test": ["c"]}
    with pytest.raises(UserError, match="at least 2"):
        common.split_subjects(["a"], 60, 10, 0.2)


def test_nifti_folder_round_trip(folder_data, synth):
    builder = ensure_built(folder_data)
    assert {s: i.num_examples for s, i in builder.info.splits.items()} == {
        "train": 5, "validation": 1, "test": 1}
    examples = {**_examples(builder, "train"), **_examples(builder, "validation"), **_examples(builder, "test")}
    assert sorted(examples) == [f"s{i:02d}" for i in range(7)]
    for sid, example in examples.items():
        i = int(sid[1:])
        image, tissue = synth.phantom(contrast=1.0 + 0.25 * i, seed=i)
        _check_example(example, image, tissue, synth.affine_for())


def _bad_manifest(root: Path, synth, problem: str) -> Path:
    manifest = synth.make_folder_dataset(root, {"train": 2, "validation": 1, "test": 1})
    lines = manifest.read_text().splitlines()
    if problem == "missing_file":
        lines[2] = lines[2].replace("c2t1.nii", "c2t1_typo.nii")
    elif problem == "bad_split":
        lines[2] = lines[2].replace(",train", ",training")
    elif problem == "duplicate":
        lines[3] = lines[3].replace("s02,", "s01,", 1)
    elif problem == "header":
        lines[0] = lines[0].replace(",csf", ",csf_map")
    elif problem == "unknown_column":
        lines = [lines[0] + ",age"] + [line + ",31" for line in lines[1:]]
    elif problem == "extra_field":
        lines[2] += ",oops"
    elif problem == "odd_subject":
        lines[2] = lines[2].replace("s01,", "../s 01,", 1)
    elif problem == "no_validation":
        lines = [line.replace(",validation", ",test") for line in lines]
    elif problem == "corrupt":
        (root / "s01" / "c3t1.nii").write_bytes(b"not a nifti file at all" * 20)
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


@pytest.mark.parametrize("problem, expected", [
    ("missing_file", r"line 3 \(subject s01\): wm file .*c2t1_typo\.nii does not exist"),
    ("bad_split", r"line 3 \(subject s01\): split 'training' is not one of"),
    ("duplicate", r"line 4: subject s01 is listed again \(first on line 3\)"),
    ("header", r"line 1: header lacks column\(s\) csf"),
    ("unknown_column", r"line 1: header has unknown column\(s\) age"),
    ("extra_field", r"line 3: 1 field\(s\) more than the header's 6"),
    ("odd_subject", r"line 3: subject id '\.\./s 01' is not a plain name"),
    ("no_validation", r"has no row with split 'validation'; at least one is needed for training's validation"),
    ("corrupt", r"line 3: subject s01 CSF map .*c3t1\.nii is not a readable NIfTI"),
])
def test_manifest_errors_name_the_row_and_file(tmp_path, synth, problem, expected):
    manifest = _bad_manifest(tmp_path / "src", synth, problem)
    config = synth.folder_config(manifest, tmp_path / "tfds")
    with pytest.raises(UserError, match=expected):
        ensure_built(config)
    assert not list((tmp_path / "tfds").rglob("dataset_info.json"))


def _hcp_layout(root: Path, synth) -> None:
    """Three HCP subjects: two with SPM maps beside T1w, one with aparc+aseg only."""
    for i, sid in enumerate(["100307", "100206"]):
        t1w = root / sid / "T1w"
        synth.write_subject(t1w, "T1w_acpc_dc_restore_brain.nii.gz", contrast=1 + i, seed=i)
        image, _ = synth.phantom(contrast=2 + i, seed=10 + i)
        synth.save(t1w / "T2w_acpc_dc_restore_brain.nii.gz", image, synth.affine_for())
    t1w = root / "101915" / "T1w"
    image, tissue = synth.phantom(seed=5)
    synth.save(t1w / "T1w_acpc_dc_restore_brain.nii.gz", image, synth.affine_for())
    synth.save(t1w / "T2w_acpc_dc_restore_brain.nii.gz", 2 * image, synth.affine_for())
    synth.save(t1w / "aparc+aseg.nii.gz", _labels(tissue), synth.affine_for(), dtype=np.int32)


def _labels(tissue: np.ndarray) -> np.ndarray:
    labels = np.zeros(tissue.shape[:3], np.int32)
    winner = tissue.argmax(axis=-1)
    inside = tissue.max(axis=-1) > 0.3
    labels[inside & (winner == 0)] = 1005   # ctx-lh-cuneus: GM
    labels[inside & (winner == 1)] = 2      # cerebral WM
    labels[inside & (winner == 2)] = 24     # CSF
    labels[:3] = 30                         # a vessel label: no tissue
    return labels


def test_aseg_label_mapping():
    labels = np.array([0, 2, 41, 3, 1035, 2001, 10, 4, 24, 30, 62, 77, 251])
    expected = [(0, 0, 0), (0, 1, 0), (0, 1, 0), (1, 0, 0), (1, 0, 0), (1, 0, 0), (1, 0, 0),
                (0, 0, 1), (0, 0, 1), (0, 0, 0), (0, 0, 0), (0, 1, 0), (0, 1, 0)]
    np.testing.assert_array_equal(tissue_from_aseg(labels), np.array(expected, np.float32))


def test_hcp_spm_and_aparc_aseg(tmp_path, synth):
    _hcp_layout(tmp_path / "hcp", synth)
    config = default_config("hcp")
    config.manual_dir, config.data_dir = str(tmp_path / "hcp"), str(tmp_path / "tfds")
    builder = ensure_built(config)
    # Sorted ids 100206 < 100307 < 101915; 3 subjects: 1 test, 1 validation, 1 train.
    assert builder.info.metadata["subjects"] == {
        "train": ["100206"], "validation": ["100307"], "test": ["101915"]}
    image, tissue = synth.phantom(contrast=2, seed=1)
    _check_example(_examples(builder, "train")["100206"], image, tissue, synth.affine_for())
    image, tissue = synth.phantom(seed=5)
    aseg_tissue = tissue_from_aseg(_labels(tissue))
    _check_example(_examples(builder, "test")["101915"], image, aseg_tissue, synth.affine_for())

    config.dataset = "hcp/t2w"  # T2w images, tissue from the T1w's SPM maps
    t2w = ensure_built(config)
    assert Path(t2w.data_dir).parts[-2] == "t2w"
    image, _ = synth.phantom(contrast=3, seed=11)
    _, tissue = synth.phantom(contrast=2, seed=1)
    _check_example(_examples(t2w, "train")["100206"], image, tissue, synth.affine_for())

    config.manual_dir = str(tmp_path / "another_copy")  # same data_dir, other source
    with pytest.raises(UserError, match="was built from .*hcp, not .*another_copy"):
        ensure_built(config)


def test_hcp_missing_download_explains(tmp_path):
    config = default_config("hcp")
    config.manual_dir, config.data_dir = str(tmp_path / "nothing"), str(tmp_path / "tfds")
    with pytest.raises(UserError, match="does not exist.*data use agreement"):
        ensure_built(config)
    (tmp_path / "empty").mkdir()
    config.manual_dir = str(tmp_path / "empty")
    with pytest.raises(UserError, match="is empty.*data use agreement"):
        ensure_built(config)
    assert not (tmp_path / "tfds").exists()   # no lock file, no folder


def test_lemon_flair_masked_by_tissue(tmp_path, synth):
    for i, sid in enumerate(["sub-010002", "sub-010001"]):
        anat = tmp_path / "lemon" / sid / "ses-01" / "anat"
        paths = synth.write_subject(anat, f"{sid}_ses-01_acq-highres_FLAIR.nii.gz", seed=i, contrast=1 + i)
        image, tissue = synth.phantom(seed=i, contrast=1 + i)
        skull = np.where(tissue.sum(-1) > 0, image, 500.0)  # not skull-stripped
        synth.save(paths["image"], skull, synth.affine_for())
    config = default_config("lemon")
    config.manual_dir, config.data_dir = str(tmp_path / "lemon"), str(tmp_path / "tfds")
    builder = ensure_built(config)
    assert builder.info.metadata["subjects"] == {"train": ["sub-010001"], "test": ["sub-010002"]}
    image, tissue = synth.phantom(seed=1, contrast=2)
    _check_example(_examples(builder, "train")["sub-010001"], image, tissue, synth.affine_for())

    extra = tmp_path / "lemon" / "sub-010001" / "ses-01" / "anat" / "sub-010001_run-2_FLAIR.nii.gz"
    synth.save(extra, image, synth.affine_for())
    config.data_dir = str(tmp_path / "tfds2")
    with pytest.raises(UserError, match="sub-010001: expected exactly one .*found 2"):
        ensure_built(config)


def test_template_slabs_are_disjoint_and_cover_y(template_data):
    from iqt.data.template import load_template
    config, builder = template_data
    template = load_template()
    brain = template.tissue.max(axis=-1) > 0
    normalised = template.image / np.percentile(template.image[brain], 99)
    world_y = []
    for split, (start, stop) in iqt_template.SLABS_Y.items():
        (example,) = _examples(builder, split).values()
        assert example["image"].shape == (197, stop - start, 189)
        np.testing.assert_allclose(example["image"], normalised[:, start:stop], rtol=1e-5, atol=1e-7)
        first, last = (example["affine"] @ [0, j, 0, 1] for j in (0, stop - start - 1))
        expected_first, expected_last = (template.affine @ [0, j, 0, 1] for j in (start, stop - 1))
        np.testing.assert_allclose([first, last], [expected_first, expected_last])
        world_y.append((first[1], last[1]))
    world_y.sort()
    assert all(a[1] < b[0] for a, b in zip(world_y, world_y[1:]))  # disjoint
    assert [b - a for a, b in iqt_template.SLABS_Y.values()] == [129, 32, 72]
    assert sum(b - a for a, b in iqt_template.SLABS_Y.values()) == template.image.shape[1]


def _python(code_or_args: list[str], env_extra=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    return subprocess.run([sys.executable, *code_or_args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


NO_TF = """
import importlib.util, json, sys
assert importlib.util.find_spec("tensorflow") is None, "tensorflow must not be installed"
import ml_collections
import simulators
from iqt.data import pipeline, splits
config = ml_collections.ConfigDict(json.loads(sys.argv[1]))
sim = simulators.default_config("T1w", 4, hf_voxel_mm=1.5)
batch = next(pipeline.make_train_iterator(config, global_batch_size=4, slice_margin=2, seed=0, sim_config=sim))
subjects = splits.load_split_subjects(config, "test")
assert batch["hf"].shape == (4, 16, 16, 12), batch["hf"].shape
assert "tensorflow" not in sys.modules
print("read", len(subjects))
"""


def test_build_and_read_without_tensorflow(tmp_path, synth):
    manifest = synth.make_folder_dataset(tmp_path / "src", {"train": 1, "validation": 1, "test": 1})
    config = synth.folder_config(manifest, tmp_path / "tfds")
    result = _python(["-c", NO_TF, config.to_json()])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("read 1")


def test_build_data_command(tmp_path, synth):
    manifest = synth.make_folder_dataset(tmp_path / "src", {"train": 2, "validation": 1, "test": 1})
    args = ["-m", "launch.build_data", "--dataset", "nifti_folder", "--manual_dir", str(manifest),
            "--data_dir", str(tmp_path / "tfds")]
    result = _python(args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "subjects: train 2, validation 1, test 1" in result.stdout
    assert "voxel sizes (mm): 1.2 x 1 x 1.5" in result.stdout
    assert "Unknown size" not in result.stdout + result.stderr  # a local build downloads nothing
    assert "downloaded and prepared" not in result.stdout + result.stderr

    bad = _bad_manifest(tmp_path / "bad", synth, "missing_file")
    result = _python(args[:5] + [str(bad), "--data_dir", str(tmp_path / "tfds_bad")])
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "line 3" in result.stderr and "c2t1_typo.nii" in result.stderr
    assert not list((tmp_path / "tfds_bad").rglob("dataset_info.json"))

    # A file found bad while building (after TFDS started): still only the error line.
    corrupt = _bad_manifest(tmp_path / "corrupt", synth, "corrupt")
    result = _python(args[:5] + [str(corrupt), "--data_dir", str(tmp_path / "tfds_corrupt")])
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr


def test_concurrent_first_use_builds_once(tmp_path, synth):
    import threading
    manifest = synth.make_folder_dataset(tmp_path / "src", {"train": 2, "validation": 1, "test": 1})
    config = synth.folder_config(manifest, tmp_path / "tfds")
    results, errors = [], []

    def build():
        try:
            results.append(ensure_built(config).info.splits["train"].num_examples)
        except Exception as e:  # noqa: BLE001 - collected and reported below
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [2, 2, 2]
    assert len(list((tmp_path / "tfds").rglob("dataset_info.json"))) == 1


def test_a_builder_of_an_unbuilt_dataset_leaves_nothing_in_the_system_temp_folder(tmp_path, monkeypatch):
    import tempfile
    from iqt.data.datasets import make_builder
    system_temp = tmp_path / "system_temp"
    system_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    config = default_config()
    config.data_dir = str(tmp_path / "data")
    make_builder(config)
    assert list(system_temp.iterdir()) == []
    assert tempfile.gettempdir() == str(system_temp)
