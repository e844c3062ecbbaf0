"""The GPU benchmarks' CPU paths: the PyTorch comparison refuses in one line where it cannot
run, and `gpu_check.sh` runs every part at toy sizes (without the peer), each writing its JSON."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from iqt.export.backends import BACKENDS
from tests.conftest import slow

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "IQT_PEER_DIR"}
    return {**env, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", **extra}


def _train_step(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "benchmarks/train_step.py", *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=120)


def test_the_torch_peer_is_refused_in_one_line_without_its_folder_or_a_gpu(tmp_path):
    missing = _train_step("--peer", "torch", "--peer_dir", str(tmp_path))
    (tmp_path / "torch_aniso_unet_gpu.py").write_text("raise SystemExit('never run')\n")
    no_gpu = _train_step("--peer", "torch", "--peer_dir", str(tmp_path), "--out", str(tmp_path / "r.json"))
    for result, words in ((missing, "torch_aniso_unet_gpu.py not found"), (no_gpu, "backend here is cpu")):
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
        assert words in result.stderr
    assert not (tmp_path / "r.json").exists()


@slow   # about 2 minutes: it compiles the whole training step six times
def test_gpu_check_runs_every_part_at_toy_sizes(tmp_path):
    result = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, capture_output=True, text=True,
                            env=_env(OUT=str(tmp_path / "out"), TINY="1", PYTHON=sys.executable),
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    out = tmp_path / "out"
    status = {p.name.split(".")[0]: json.loads(p.read_text())["rc"] for p in out.glob("*.status.json")}
    assert status == {"environment": 0, "first_step": 0, "train_step_gpu": 0, "train_step_gpu_cpu_fast": 0,
                      "inference_gpu": 0}
    assert set(json.loads((out / "environment.json").read_text())["launch_infer_auto_backends"]) <= set(BACKENDS)
    first = json.loads((out / "first_step.json").read_text())
    assert first["cold"]["persistent_cache_hits"] < first["warm"]["persistent_cache_hits"]
    assert first["warm"]["whole_step"]["loss"] == first["cold"]["whole_step"]["loss"]
    sweep = json.loads((out / "train_step_gpu.json").read_text())["jax_sweep"]
    assert [(r["part"], r["compute_dtype"]) for r in sweep] == [
        ("model_step", "float32"), ("whole_step", "float32"), ("model_step", "bfloat16"), ("whole_step", "bfloat16")]
    assert all(r["batch"] == 2 and r["time_to_first_step_s"] >= r["compile_s"] > 0 and r["patches_per_s"] > 0
               for r in sweep)
    alt = json.loads((out / "train_step_gpu_cpu_fast.json").read_text())["jax_sweep"]
    assert [(r["part"], r["batch"], r["compute_dtype"]) for r in alt] == [("model_step", 2, "bfloat16")]
