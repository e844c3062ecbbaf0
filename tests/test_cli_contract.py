"""The command-line error contract, through a real entry point run in a subprocess.

A user error prints exactly one line on stderr starting with `error:`, exits
with status 2, shows no traceback and writes nothing.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_module(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def scan(tmp_path) -> Path:
    """A 20 x 24 x 8 scan with 1 x 1 x 4 mm voxels (slices along axis 2), LAS."""
    affine = np.diag([-1.0, 1.0, 4.0, 1.0])
    data = np.linspace(0.0, 500.0, 20 * 24 * 8, dtype=np.float32).reshape(20, 24, 8)
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def test_inspect_volume_prints_what_the_library_sees(scan, tmp_path):
    result = run_module("launch.inspect_volume", "--input", str(scan), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "shape: 20 x 24 x 8" in lines
    assert "voxel sizes (mm): 1 x 1 x 4" in lines
    assert "orientation: LAS" in lines
    assert "slice axis: 2 (detected)" in lines
    assert "intensity range: 0 to 500" in lines
    given = run_module("launch.inspect_volume", "--input", str(scan), "--slice_axis", "0", cwd=tmp_path)
    assert "slice axis: 0 (given)" in given.stdout.splitlines()


def test_help_prints_the_flags_and_exits_0(tmp_path):
    result = run_module("launch.inspect_volume", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--input" in result.stdout and "--slice_axis" in result.stdout
    assert result.stderr == ""


def _not_nifti(tmp_path: Path) -> Path:
    path = tmp_path / "notes.nii.gz"
    path.write_text("not an image")
    return path


def _truncated(tmp_path: Path, scan: Path) -> Path:
    path = tmp_path / "cut.nii.gz"
    content = scan.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    return path


CASES = {
    "missing file": lambda tmp_path, scan: ["--input", str(tmp_path / "absent.nii.gz")],
    "not NIfTI": lambda tmp_path, scan: ["--input", str(_not_nifti(tmp_path))],
    "truncated": lambda tmp_path, scan: ["--input", str(_truncated(tmp_path, scan))],
    "slice axis out of range": lambda tmp_path, scan: ["--input", str(scan), "--slice_axis", "3"],
    "slice axis not a number": lambda tmp_path, scan: ["--input", str(scan), "--slice_axis=z"],
    "unknown flag": lambda tmp_path, scan: ["--input", str(scan), "--sliceaxis", "2"],
    "no input flag": lambda tmp_path, scan: [],
    "stray argument": lambda tmp_path, scan: ["--input", str(scan), "extra"],
}


@pytest.mark.parametrize("case", list(CASES))
def test_user_error_is_one_line_exit_2_no_traceback_no_output(case, tmp_path, scan):
    args = CASES[case](tmp_path, scan)
    before = sorted(tmp_path.iterdir())
    result = run_module("launch.inspect_volume", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    stderr_lines = result.stderr.splitlines()
    assert len(stderr_lines) == 1 and stderr_lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert sorted(tmp_path.iterdir()) == before


# --- every command: bad configs, damaged work directories, unwritable outputs (issue 14) ------

def _fake_run(tmp_path: Path, config_text: bytes | str) -> Path:
    """A work directory with a checkpoint folder and the given config.json."""
    run = tmp_path / "run"
    (run / "checkpoints" / "2").mkdir(parents=True)
    content = config_text.encode() if isinstance(config_text, str) else config_text
    (run / "config.json").write_bytes(content)
    return run


def _tiny_config_json(**sim) -> str:
    import json

    sys.path.insert(0, str(ROOT))
    from launch.configs import demo

    config = demo.get_config("tiny").to_dict()
    config["sim"].update(sim)
    return json.dumps(config, default=list)


def _no_sim() -> str:
    import json

    config = json.loads(_tiny_config_json())
    del config["sim"]
    return json.dumps(config)


A_FILE = "/etc/hostname"   # a file: any output path under it cannot be made
TRAIN = ("launch.train", "--config", "demo:tiny")
CONTRACT_CASES = {
    "train: override typo": (*TRAIN, "--workdir", "{tmp}/w", "--config.train.num_step=3"),
    "train: unknown field": (*TRAIN, "--workdir", "{tmp}/w", "--config.train.nosuch=1"),
    "train: bad simulator field": (*TRAIN, "--workdir", "{tmp}/w", "--config.sim.noise=bogus"),
    "train: unknown learning-rate schedule": (*TRAIN, "--workdir", "{tmp}/w", "--config.train.lr_schedule=bogus"),
    "train: bad BatchNorm momentum": (*TRAIN, "--workdir", "{tmp}/w", "--config.model.bn_momentum=1.5"),
    "train: bad draw mode": (*TRAIN, "--workdir", "{tmp}/w", "--config.sim.draw_mode=per_epoch"),
    "train: negative width": (*TRAIN, "--workdir", "{tmp}/w", "--config.sim.hf_voxel_mm=-1"),
    "train: unknown dataset": (*TRAIN, "--workdir", "{tmp}/w", "--config.data.dataset=bogus"),
    "train: batch size 0": (*TRAIN, "--workdir", "{tmp}/w", "--config.train.batch_size=0"),
    "train: bad patch size": (*TRAIN, "--workdir", "{tmp}/w", "--config.data.patch_size_hf=(16,16,12)"),
    "train: bad calibration patch": (*TRAIN, "--workdir", "{tmp}/w",
                                     "--config.train.bn_calibration_patch_hf=(31,32,16)"),
    "train: missing config file": ("launch.train", "--config", "nosuch.py", "--workdir", "{tmp}/w"),
    "train: relative path from elsewhere": ("launch.train", "--config", "launch/configs/nosuch.py",
                                            "--workdir", "{tmp}/w"),
    "train: variant that raises": ("launch.train", "--config", "demo:huge", "--workdir", "{tmp}/w"),
    "train: workdir under a file": (*TRAIN, "--workdir", f"{A_FILE}/w"),
    "train: HCP download folder missing": ("launch.train", "--config", "hcp_t1w_x8", "--workdir", "{tmp}/w",
                                           "--config.data.manual_dir={tmp}/no_hcp",
                                           "--config.data.data_dir={tmp}/tfds"),
    "train: config file that does not import": ("launch.train", "--config", "{syntax}", "--workdir", "{tmp}/w"),
    "simulate: output is the input": ("launch.simulate", "--config", "simulate", "--config.sim.contrast=none",
                                      "--input", "{scan}", "--output", "{scan}"),
    "simulate: output not NIfTI": ("launch.simulate", "--config", "simulate", "--config.sim.contrast=none",
                                   "--input", "{scan}", "--output", "{tmp}/x.txt"),
    "simulate: seed overflows": ("launch.simulate", "--config", "simulate", "--config.sim.contrast=none",
                                 "--input", "{scan}", "--output", "{tmp}/o.nii.gz",
                                 "--seed=100000000000000000000000"),
    "simulate: output under /proc": ("launch.simulate", "--config", "simulate", "--config.sim.contrast=none",
                                     "--input", "{scan}", "--output", "/proc/o.nii.gz"),
    "infer: config.json {}": ("launch.infer", "--workdir", "{run:{}}", "--input", "{scan}",
                              "--output", "{tmp}/o.nii.gz"),
    "infer: config.json without sim": ("launch.infer", "--workdir", "{run:nosim}", "--input", "{scan}",
                                       "--output", "{tmp}/o.nii.gz"),
    "infer: config.json factor 'eight'": ("launch.infer", "--workdir", "{run:eight}", "--input", "{scan}",
                                          "--output", "{tmp}/o.nii.gz"),
    "infer: config.json random bytes": ("launch.infer", "--workdir", "{run:bytes}", "--input", "{scan}",
                                        "--output", "{tmp}/o.nii.gz"),
    "infer: output under a file": ("launch.infer", "--workdir", "{run:good}", "--input", "{scan}",
                                   "--output", f"{A_FILE}/o.nii.gz"),
    "evaluate: config.json random bytes": ("launch.evaluate", "--workdir", "{run:bytes}"),
    "evaluate: out under a file": ("launch.evaluate", "--workdir", "{run:good}", "--out", f"{A_FILE}/e"),
    "export_template: out under a file": ("launch.export_template", "--out", f"{A_FILE}/t"),
    "build_data: data_dir under /proc": ("launch.build_data", "--data_dir", "/proc/iqt"),
    "prepare: mask output is the --mask": ("launch.prepare", "--input", "{scan}", "--output", "{tmp}/p.nii.gz",
                                           "--mask", "{copy:p_brainmask.nii.gz}", "--steps=brain"),
    "prepare: mask output is the input": ("launch.prepare", "--input", "{copy:q_brainmask.nii.gz}",
                                          "--output", "{tmp}/q.nii.gz", "--steps=brain"),
    "prepare: output is a dangling link": ("launch.prepare", "--input", "{scan}", "--output",
                                           "{link:p.nii.gz}", "--steps=brain"),
    "infer: output is a dangling link": ("launch.infer", "--workdir", "{run:good}", "--input", "{scan}",
                                         "--output", "{link:o.nii.gz}"),
    "infer: figure would overwrite the input": ("launch.infer", "--workdir", "{run:good}", "--input",
                                                "{copy:o.png}", "--output", "{tmp}/o.nii.gz"),
    "reader_study: out under a file": ("analysis.reader_study", "--scores",
                                       str(ROOT / "analysis/examples/example_scores_synthetic.csv"),
                                       "--out", f"{A_FILE}/r"),
}
RUN_CONFIGS = {"{}": lambda: "{}", "nosim": _no_sim, "eight": lambda: _tiny_config_json(factor="eight"),
               "bytes": lambda: bytes(range(256)) * 4, "good": _tiny_config_json}


def _fill(arg: str, tmp_path: Path, scan: Path) -> str:
    if arg.startswith("{run:"):
        return str(_fake_run(tmp_path, RUN_CONFIGS[arg[5:-1]]()))
    if arg.startswith("{copy:"):   # a copy of the scan under this name
        (tmp_path / arg[6:-1]).write_bytes(scan.read_bytes())
        return str(tmp_path / arg[6:-1])
    if arg.startswith("{link:"):   # a symbolic link to a file that does not exist
        (tmp_path / arg[6:-1]).symlink_to(tmp_path / "elsewhere" / arg[6:-1])
        return str(tmp_path / arg[6:-1])
    if arg == "{syntax}":
        (tmp_path / "broken.py").write_text("def get_config(:\n")
        return str(tmp_path / "broken.py")
    return arg.replace("{tmp}", str(tmp_path)).replace("{scan}", str(scan))


@pytest.mark.parametrize("case", list(CONTRACT_CASES))
def test_every_command_keeps_the_contract(case, tmp_path, scan):
    module, *args = CONTRACT_CASES[case]
    args = [_fill(a, tmp_path, scan) for a in args]
    before = {p: p.lstat().st_mtime_ns for p in tmp_path.rglob("*")}
    scan_bytes = scan.read_bytes()
    result = run_module(module, *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert {p: p.lstat().st_mtime_ns for p in tmp_path.rglob("*")} == before, "it wrote something"
    assert scan.read_bytes() == scan_bytes


def test_shipped_config_by_name_and_a_missing_one_says_where_it_looked(tmp_path):
    result = run_module("launch.train", "--config", "nosuch:tiny", "--workdir", str(tmp_path / "w"),
                        cwd=tmp_path)
    assert str(tmp_path / "nosuch") in result.stderr and str(ROOT / "launch/configs/nosuch.py") in result.stderr
    assert "demo" in result.stderr   # the shipped configs are listed


SIGTERM_WHILE_WRITING = """
import sys, time
from pathlib import Path
from iqt import cli, io_utils

def main(argv):
    with io_utils.atomic_path(Path(sys.argv[1]) / "out.nii.gz") as tmp:
        tmp.write_bytes(b"x" * 4_000_000)
        (Path(sys.argv[1]) / "ready").touch()
        time.sleep(60)

cli.run(main, ["writer"])
"""


def test_sigterm_while_an_output_is_written_leaves_no_temporary_file(tmp_path):
    import signal
    import time

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_WHILE_WRITING, str(tmp_path)], env=env,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "ready").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ready"]


def test_an_error_after_the_checkpoint_opens_is_still_the_only_line(tmp_path):
    """Library warnings (absl, orbax) and shutdown noise never come before or after the error."""
    from tests.random_run import random_run

    run = tmp_path / "run"
    random_run(run)
    blank = tmp_path / "blank.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((24, 24, 4), np.float32), np.diag([1.0, 1.0, 8.0, 1.0])), blank)
    result = run_module("launch.infer", "--workdir", str(run), "--input", str(blank), "--output",
                        str(tmp_path / "out" / "blank.nii.gz"), "--progress=false", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [result.stderr.strip()] and "brain mask" in result.stderr
    assert not (tmp_path / "out").exists()


def test_export_template_keeps_a_file_it_did_not_write_and_reruns_where_it_did(tmp_path, scan):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "t1.nii.gz").write_bytes(scan.read_bytes())
    result = run_module("launch.export_template", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "t1.nii.gz" in result.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["t1.nii.gz"]
    assert (tmp_path / "out" / "t1.nii.gz").read_bytes() == scan.read_bytes()
    for _ in range(2):   # a second run over its own files is fine
        result = run_module("launch.export_template", "--out", str(tmp_path / "fresh"), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "fresh").iterdir()) == ["csf.nii.gz", "gm.nii.gz", "t1.nii.gz",
                                                                      "wm.nii.gz"]
