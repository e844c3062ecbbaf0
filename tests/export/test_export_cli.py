"""`launch.export` and `launch.infer --model/--backend` on a real (tiny, random) run, in subprocesses."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from iqt import config_io
from iqt.models import input_multiple
from tests.cli_helpers import assert_user_error
from tests.conftest import slow
from tests.random_run import random_run

ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-5
HIDE_RUNTIMES = ("import sys, runpy; sys.modules['openvino'] = sys.modules['onnxruntime'] = None; "
                 "sys.argv = ['{module}'] + sys.argv[1:]; runpy.run_module('{module}', run_name='__main__')")


def run_module(module: str, *args, hide_runtimes: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    head = ["-c", HIDE_RUNTIMES.format(module=module)] if hide_runtimes else ["-m", module]
    return subprocess.run([sys.executable, *head, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=180)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A work directory: the tiny ×8 demo config (cubic residual) and one checkpoint of random
    weights and BatchNorm statistics."""
    workdir = tmp_path_factory.mktemp("run")
    config, _, _ = random_run(workdir, seed=3, random_batch_stats=True)
    return workdir, config


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    workdir, _ = run
    out = tmp_path_factory.mktemp("export") / "model.onnx"
    result = run_module("launch.export", f"--workdir={workdir}", "--checkpoint=latest", "--format=onnx",
                        f"--output={out}")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def lf_file(tmp_path_factory, run):
    _, config = run
    folder = tmp_path_factory.mktemp("lf")
    hf_mm = float(config.sim.hf_voxel_mm)
    affine = np.diag([-hf_mm, hf_mm, 8 * hf_mm, 1.0])
    affine[:3, 3] = (40.0, -50.0, -30.0)
    data = np.zeros((34, 30, 6), np.float32)
    data[3:31, 4:26, :] = np.random.default_rng(2).uniform(100, 400, (28, 22, 6))
    image = nib.Nifti1Image(data, affine)
    image.header["descrip"] = b"low-field test scan"
    nib.save(image, folder / "lf.nii.gz")
    return folder / "lf.nii.gz"


def test_the_export_holds_what_inference_needs(exported, run):
    onnx = pytest.importorskip("onnx")
    _, config = run
    meta = {p.key: p.value for p in onnx.load(str(exported)).metadata_props}
    assert config_io.config_from_json(meta["iqt.config"]).to_dict() == config.to_dict()
    multiple = input_multiple(config.model, 8)
    assert meta["iqt.factor"] == "8" and meta["iqt.input_multiple"] == ",".join(map(str, multiple))
    assert "mean" in meta["iqt.normalisation"] and '"lf_slice"' in meta["iqt.training_voxels_mm"]


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_whole_volumes_of_jax_and_the_onnx_runtimes_agree(run, exported, lf_file, tmp_path, backend):
    pytest.importorskip(backend)
    workdir, _ = run
    common = [f"--input={lf_file}", "--checkpoint=latest", "--noprogress", "--tile=32,32,4"]
    jax_run = run_module("launch.infer", f"--workdir={workdir}", "--backend=jax", *common,
                         f"--output={tmp_path / 'jax.nii.gz'}")
    assert jax_run.returncode == 0, jax_run.stderr
    onnx_run = run_module("launch.infer", f"--model={exported}", f"--backend={backend}", "--precision=float32",
                          *common, f"--output={tmp_path / 'onnx.nii.gz'}")
    assert onnx_run.returncode == 0, onnx_run.stderr
    assert f"run by {backend} in float32" in onnx_run.stdout
    a, b = nib.load(tmp_path / "jax.nii.gz"), nib.load(tmp_path / "onnx.nii.gz")
    x, y = np.asarray(a.dataobj), np.asarray(b.dataobj)
    assert x.shape == (34, 30, 48) and np.abs(y - x).max() <= TOLERANCE * np.abs(x).max()
    assert np.array_equal(a.affine, b.affine)
    assert a.header.binaryblock == b.header.binaryblock


@slow   # about 17 s; tests/export/test_backend_choice.py checks the choice and its cache
def test_the_defaults_time_the_cpu_runtimes_once_and_stay_close_to_jax(run, lf_file, tmp_path, monkeypatch):
    """`--backend auto --precision auto`: each installed runtime timed on a probe tile the first time,
    the cached choice the second; bfloat16 (where native) within `BF16_TOLERANCE` of JAX."""
    from tests.export.test_onnx_graph import BF16_TOLERANCE
    monkeypatch.setenv("IQT_CPU_BACKEND_CACHE", str(tmp_path / "choice.json"))
    workdir, _ = run
    common = [f"--workdir={workdir}", f"--input={lf_file}", "--checkpoint=latest", "--noprogress", "--tile=32,32,4"]
    first = run_module("launch.infer", *common, f"--output={tmp_path / 'first.nii.gz'}")
    assert first.returncode == 0, first.stderr
    assert "timing" in first.stdout and (tmp_path / "choice.json").is_file()
    second = run_module("launch.infer", *common, f"--output={tmp_path / 'second.nii.gz'}")
    assert second.returncode == 0 and "timing" not in second.stdout
    choice = json.loads((tmp_path / "choice.json").read_text()).popitem()[1]["choice"]
    assert f"run by {choice}" in second.stdout
    jax_run = run_module("launch.infer", *common, "--backend=jax",
                         f"--output={tmp_path / 'jax.nii.gz'}")
    x, y = (np.asarray(nib.load(tmp_path / f"{n}.nii.gz").dataobj) for n in ("jax", "second"))
    assert jax_run.returncode == 0 and np.abs(y - x).max() <= BF16_TOLERANCE * np.abs(x).max()


def test_a_missing_runtime_says_what_to_install(exported, lf_file, tmp_path):
    result = run_module("launch.infer", f"--model={exported}", "--backend=openvino", f"--input={lf_file}",
                        f"--output={tmp_path / 'out.nii.gz'}", hide_runtimes=True)
    assert_user_error(result, "openvino is not installed", "pip install")
    assert not any(tmp_path.iterdir())


def test_without_runtimes_the_jax_path_still_enhances(run, lf_file, tmp_path):
    workdir, _ = run
    result = run_module("launch.infer", f"--workdir={workdir}", "--checkpoint=latest", f"--input={lf_file}",
                        "--noprogress", f"--output={tmp_path / 'out.nii.gz'}", hide_runtimes=True)
    assert result.returncode == 0, result.stderr
    assert nib.load(tmp_path / "out.nii.gz").shape == (34, 30, 48)


def test_a_corrupt_onnx_file_is_one_line(exported, lf_file, tmp_path):
    pytest.importorskip("onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(exported.read_bytes()[:5000])
    result = run_module("launch.infer", f"--model={corrupt}", f"--input={lf_file}",
                        f"--output={tmp_path / 'out' / 'x.nii.gz'}")
    assert_user_error(result, "corrupt.onnx", "not a readable ONNX model")
    assert not (tmp_path / "out").exists()


def _with_metadata(exported: Path, out: Path, **changes) -> Path:
    """A copy of the exported network with some `iqt.*` metadata replaced (None: removed)."""
    import onnx
    model = onnx.load(str(exported))
    props = {p.key: p.value for p in model.metadata_props}
    for key, value in changes.items():
        props.pop(f"iqt.{key}", None)
        if value is not None:
            props[f"iqt.{key}"] = value
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(out))
    return out


DAMAGED_METADATA = {   # how the metadata is damaged: the words its one-line refusal must hold
    "factor_word": ({"factor": "eight"}, "iqt.factor", "'eight'"),
    "factor_one": ({"factor": "1"}, "iqt.factor", "≥ 2"),
    "multiple": ({"input_multiple": "8,8"}, "iqt.input_multiple", "three positive"),
    "config_empty": ({"config": ""}, "iqt.config", "export it again"),
    "config_object_empty": ({"config": "{}"}, "iqt.config", "sim.factor"),
    "config_list": ({"config": "[1, 2]"}, "iqt.config", "export it again"),
    "config_other_factor": ({"config": json.dumps({"sim": {"factor": 4}})}, "iqt.config", "×4"),
    "voxels_json": ({"training_voxels_mm": "{"}, "iqt.training_voxels_mm", "in_plane"),
    "voxels_negative": ({"training_voxels_mm": json.dumps({"in_plane": 1, "hf_slice": 1, "lf_slice": -8})},
                        "iqt.training_voxels_mm", "-8"),
    "missing_key": ({"input_multiple": None}, "iqt.input_multiple", "not exported by"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_METADATA))
def test_damaged_onnx_metadata_is_one_user_error(exported, tmp_path, case):
    pytest.importorskip("onnx")
    from iqt.errors import UserError
    from iqt.export import backends
    changes, *words = DAMAGED_METADATA[case]
    damaged = _with_metadata(exported, tmp_path / f"{case}.onnx", **changes)
    with pytest.raises(UserError) as refusal:
        backends.read_metadata(damaged)
    assert all(word in str(refusal.value) for word in words), str(refusal.value)


def test_damaged_onnx_metadata_stops_infer_in_one_line(exported, lf_file, tmp_path):
    pytest.importorskip("onnx")
    damaged = _with_metadata(exported, tmp_path / "damaged.onnx", factor="eight")
    result = run_module("launch.infer", f"--model={damaged}", f"--input={lf_file}",
                        f"--output={tmp_path / 'out' / 'x.nii.gz'}")
    assert_user_error(result, "damaged.onnx", "iqt.factor")
    assert not (tmp_path / "out").exists()


def test_an_onnx_of_another_factor_is_refused(exported, lf_file, tmp_path):
    pytest.importorskip("onnx")
    result = run_module("launch.infer", f"--model={exported}", "--factor=4", f"--input={lf_file}",
                        "--allow_spacing_mismatch", f"--output={tmp_path / 'out' / 'x.nii.gz'}")
    assert_user_error(result, "×8", "×4")
    assert not (tmp_path / "out").exists()


def test_bfloat16_with_another_runtime_than_openvino_is_refused(exported, lf_file, tmp_path):
    pytest.importorskip("onnxruntime")
    result = run_module("launch.infer", f"--model={exported}", "--backend=onnxruntime", "--precision=bfloat16",
                        f"--input={lf_file}", f"--output={tmp_path / 'out' / 'x.nii.gz'}")
    assert_user_error(result, "bfloat16 runs only with OpenVINO", "onnxruntime computes in float32")
    assert not (tmp_path / "out").exists()


def test_launch_export_errors_are_one_line(run, tmp_path):
    workdir, _ = run
    assert_user_error(run_module("launch.export", f"--workdir={tmp_path / 'absent'}",
                                 f"--output={tmp_path / 'm.onnx'}"), "absent")
    assert_user_error(run_module("launch.export", f"--workdir={workdir}", f"--output={tmp_path / 'm.txt'}"),
                      ".onnx")
    assert_user_error(run_module("launch.export", f"--workdir={workdir}", "--checkpoint=99",
                                 f"--output={tmp_path / 'm.onnx'}"), "99")
    assert not any(tmp_path.iterdir())


def test_an_existing_network_file_is_replaced_only_with_overwrite(run, exported, tmp_path):
    workdir, _ = run
    existing = tmp_path / "mine.onnx"
    existing.write_bytes(b"a network of mine")
    assert_user_error(run_module("launch.export", f"--workdir={workdir}", "--checkpoint=latest",
                                 f"--output={existing}"), "exists", "--overwrite")
    assert existing.read_bytes() == b"a network of mine"
    result = run_module("launch.export", f"--workdir={workdir}", "--checkpoint=latest", f"--output={existing}",
                        "--overwrite")
    assert result.returncode == 0, result.stderr
    assert existing.read_bytes() == exported.read_bytes()
