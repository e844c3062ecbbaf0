"""Running a sweep: every setting × seed trains, then is evaluated, in DIR/<setting>/seed<k>/.

A job (one setting, one seed) is finished when its marker `sweep_done.json` exists;
the marker is written atomically after the evaluation, so a re-run skips finished
jobs and resumes an interrupted one from its last checkpoint (the training's own
resume; the evaluation is redone). With several local devices (GPUs, or forced
CPU devices) and several jobs left, jobs run concurrently in worker processes, one
per device group; otherwise (one device, or several hosts under `jax.distributed`,
where each job uses every host) one after another in this process. JAX's persistent
compilation cache (DIR/.jax_cache unless one is set) compiles each program once:
the seeds of a setting share their training step (the seed's key is an argument),
and the evaluation's programs are shared by every setting of the same shapes.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Callable, Sequence

import jax
import ml_collections

from iqt import checkpoint_reading, config_io
from iqt.cli import Terminated
from iqt.errors import UserError
from iqt.io_utils import atomic_write_text
from iqt.marker_files import read_json_object
from iqt.metric_writers import read_jsonl
from iqt.sweep.spec import Setting, Sweep

MARKER = "sweep_done.json"
CACHE_DIR = ".jax_cache"
EVALUATION_DIR = "evaluation"


@dataclasses.dataclass(frozen=True)
class Job:
    """One setting with one seed, trained and evaluated in `workdir`."""

    setting: Setting
    seed: int
    workdir: Path
    config: ml_collections.ConfigDict

    @property
    def label(self) -> str:
        return f"setting '{self.setting.name}' seed {self.seed}"

    def fingerprint(self) -> str:
        return hashlib.sha256(config_io.to_json(self.config).encode()).hexdigest()[:16]

    def finished(self) -> bool:
        """Whether the marker exists; a marker of another config is an error, not a skip; a damaged
        marker is set aside (`iqt.marker_files`), so the job's evaluation runs again."""
        record = read_json_object(self.workdir / MARKER)
        if record is None:
            return False
        if record.get("config_sha256") != self.fingerprint():
            raise UserError(f"{self.workdir} was finished with a different config; use a new --workdir "
                            f"or delete that folder")
        return True


def make_jobs(sweep: Sweep, base: ml_collections.ConfigDict, seeds: Sequence[int], workdir: Path) -> list[Job]:
    """Settings in file order, each with every seed."""
    return [Job(s, seed, workdir / s.name / f"seed{seed}", sweep.config(base, s, seed))
            for s in sweep.settings for seed in seeds]


def use_compilation_cache(workdir: Path) -> str:
    """JAX's persistent compilation cache: the one already set, else DIR/.jax_cache; returns it."""
    current = jax.config.jax_compilation_cache_dir or os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if not current:
        current = str(workdir / CACHE_DIR)
        jax.config.update("jax_compilation_cache_dir", current)
    return current


def _cache_entries(cache_dir: str) -> int:
    path = Path(cache_dir)
    return sum(1 for _ in path.iterdir()) if path.is_dir() else 0


def first_step_timing(workdir: Path) -> dict[str, float]:
    """From the run's metrics.jsonl: seconds of the first logged window (compilation included),
    the same window at the steady rate of the later windows, and their difference (≈ compile time)."""
    train = [r for r in read_jsonl(workdir / "metrics.jsonl") if r.get("split") == "train"]
    if len(train) < 2:
        return {}
    first_window_s = train[0]["step"] / train[0]["steps_per_s"]
    steady = sorted(r["steps_per_s"] for r in train[1:])[len(train[1:]) // 2]
    return {"first_window_s": first_window_s, "first_window_steps": train[0]["step"],
            "first_window_at_steady_rate_s": train[0]["step"] / steady,
            "compile_s": first_window_s - train[0]["step"] / steady}


def run_job(job: Job, test_settings: Sequence[str], cache_dir: str) -> dict:
    """Trains (or resumes) and evaluates one job; writes its marker last; returns the marker's record."""
    from iqt.evaluation import evaluate_run
    from iqt.train import train_and_evaluate

    entries_before, t0 = _cache_entries(cache_dir), time.time()
    train_and_evaluate(job.config, job.workdir)
    _, steps = checkpoint_reading.resolve_checkpoint(job.workdir, "latest")
    if steps[0] < job.config.train.num_steps:   # stopped by a signal: checkpoint saved, no evaluation
        raise Terminated
    t1 = time.time()
    evaluate_run(job.workdir, settings=test_settings, out_dir=job.workdir / EVALUATION_DIR, progress=False)
    record = {"setting": job.setting.name, "seed": job.seed, "config_sha256": job.fingerprint(),
              "train_s": round(t1 - t0, 2), "evaluate_s": round(time.time() - t1, 2),
              "cache_entries_before": entries_before, **first_step_timing(job.workdir),
              "finished": datetime.datetime.now().isoformat(timespec="seconds")}
    atomic_write_text(job.workdir / MARKER, json.dumps(record, indent=1) + "\n")
    return record


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


def run_jobs(jobs: Sequence[Job], test_settings: Sequence[str], cache_dir: str, *,
             log: Callable[[str], None] = print, prefix: str = "sweep") -> None:
    """Runs the unfinished jobs one after another, with progress lines and the ETA of those left."""
    todo = [j for j in jobs if not j.finished()]
    for job in jobs:
        if job not in todo:
            log(f"{prefix}: skip {job.label}: finished ({job.workdir / MARKER})")
    start, settings = time.time(), list(dict.fromkeys(j.setting.name for j in jobs))
    for done, job in enumerate(todo):
        elapsed = time.time() - start
        eta = f"ETA {_clock(elapsed / done * (len(todo) - done))}" if done else "ETA after the first job"
        resumed = " (resuming)" if (job.workdir / config_io.CONFIG_NAME).exists() else ""
        log(f"{prefix}: job {done + 1}/{len(todo)}: {job.label}{resumed} "
            f"(setting {settings.index(job.setting.name) + 1}/{len(settings)}) "
            f"elapsed {_clock(elapsed)} {eta}")
        record = run_job(job, test_settings, cache_dir)
        log(f"{prefix}: finished {job.label}: train {record['train_s']:.0f} s, "
            f"evaluation {record['evaluate_s']:.0f} s")


# --- concurrent jobs on device groups -------------------------------------------------------

def device_groups(devices_per_setting: int) -> list[list[int]]:
    """This host's devices cut into groups of `devices_per_setting` (ids local to the host)."""
    ids = list(range(jax.local_device_count()))
    return [ids[i:i + devices_per_setting] for i in range(0, len(ids) - devices_per_setting + 1,
                                                          devices_per_setting)]


def worker_env(group: Sequence[int], cache_dir: str) -> dict[str, str] | None:
    """The environment that shows a worker only its devices; None where the platform has no such switch."""
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=cache_dir)
    platform = jax.default_backend()
    if platform == "gpu":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        physical = visible.split(",") if visible else [str(i) for i in range(jax.local_device_count())]
        env["CUDA_VISIBLE_DEVICES"] = ",".join(physical[i] for i in group)
    elif platform == "cpu":
        flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", env.get("XLA_FLAGS", ""))
        env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={len(group)}".strip()
    else:
        return None
    return env


def run_workers(command: Callable[[int, int], list[str]], groups: Sequence[Sequence[int]], cache_dir: str,
                log: Callable[[str], None] = print) -> bool:
    """Runs `command(i, n)` for each device group concurrently; False where the platform cannot split
    its devices (the caller then runs the jobs itself). A failed worker is a UserError naming it."""
    envs = [worker_env(g, cache_dir) for g in groups]
    if any(e is None for e in envs):
        log(f"sweep: {jax.default_backend()} devices cannot be split between processes here; "
            f"jobs run one after another")
        return False
    log(f"sweep: {len(groups)} workers, devices {' | '.join(','.join(map(str, g)) for g in groups)}")
    workers = [subprocess.Popen(command(i, len(groups)), env=env, stderr=subprocess.PIPE, text=True)
               for i, env in enumerate(envs)]
    failures = []
    for i, worker in enumerate(workers):
        _, err = worker.communicate()
        if worker.returncode:
            last = (err.strip().splitlines() or ["no message"])[-1]
            failures.append(f"worker {i} (exit {worker.returncode}): {last.removeprefix('error: ')}")
    if failures:
        raise UserError("; ".join(failures))
    return True


def worker_share(jobs: Sequence[Job], worker: int, workers: int) -> list[Job]:
    """The jobs of worker `worker` of `workers`: every workers-th, starting at `worker`."""
    return list(jobs[worker::workers])


def run_sweep(jobs: Sequence[Job], test_settings: Sequence[str], cache_dir: str, *, devices_per_setting: int,
              worker_command: Callable[[int, int], list[str]] | None = None,
              log: Callable[[str], None] = print) -> None:
    """All jobs: concurrently on device groups where this one host has several (and `worker_command`),
    else here, one after another (under `jax.distributed`: each job on every host's devices together)."""
    left = [j for j in jobs if not j.finished()]
    groups = device_groups(devices_per_setting)[:len(left)]
    if worker_command is not None and len(groups) > 1 and jax.process_count() == 1:   # one host: workers
        if run_workers(worker_command, groups, cache_dir, log):
            return
    run_jobs(jobs, test_settings, cache_dir, log=log)
