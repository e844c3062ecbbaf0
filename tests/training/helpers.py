"""Running `launch.train` in subprocesses with a chosen number of CPU devices."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = f"{ROOT}/launch/configs/demo.py:tiny"


def train_env(devices: int) -> dict[str, str]:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = str(ROOT)
    return env


def train_command(workdir: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "launch.train", f"--config={TINY}", f"--workdir={workdir}", *overrides]


def run_train(workdir: Path, *overrides: str, devices: int = 1, timeout: int = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(train_command(workdir, *overrides), cwd=ROOT, env=train_env(devices),
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def train_losses(workdir: Path) -> list[float]:
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if r["split"] == "train"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
