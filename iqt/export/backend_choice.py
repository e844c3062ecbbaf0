"""`--backend auto` on a CPU: the installed runtimes timed once on this machine, the fastest kept.

Which runtime is fastest depends on the CPU. On a 2-core Intel Xeon with AVX-512
and AMX, OpenVINO enhanced a 512 × 512 × 28 scan ×8 3.6× faster than JAX, and
JAX trained at half the speed of TensorFlow; on a 2-core AMD EPYC with AVX2
only, JAX ran level with TensorFlow (benchmarks/README.md). An order measured on
one kind of CPU can be wrong on another, so the first `auto` on a machine runs
each installed candidate on one probe tile (`PROBE_LF`) of the network at hand,
after compiling it, and keeps the fastest. The timings are cached in
`cache_path()` under a key naming the CPU (model, vector extensions, usable
cores), the runtimes' versions, the precision, the thread cap and the network,
so later calls build the winner alone. `$IQT_CPU_BACKEND=NAME` skips the timing.

The probe is small: timing all three runtimes on the published ×8 network
cost 10 s once (`launch.infer` on a 64 × 64 × 8 scan: 14.0 s the first time,
4.1 s with the choice cached, 2-core Intel Xeon). It ranked the runtimes as
whole 512 × 512 × 28 scans did there (benchmarks/README.md), but runtimes
within about 15 % of each other may swap places on a whole scan.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Callable

import numpy as np

from iqt.errors import UserError
from iqt.inference import Predictor
from iqt.marker_files import read_json_object

PROBE_LF = (128, 128, 8)   # LF voxels of the probe tile, rounded up to the network's input multiple
CACHE_ENV = "IQT_CPU_BACKEND_CACHE"   # a JSON file instead of the default (`cache_path`)
CHOICE_ENV = "IQT_CPU_BACKEND"        # a backend name: no timing


def cpu_description() -> dict:
    """CPU model, vector extensions (from /proc/cpuinfo on Linux) and the cores this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": platform.processor() or platform.machine(), "usable_cores": cores}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    return {"model": fields.get("model name", "?"), "logical_cpus": os.cpu_count(), "usable_cores": cores,
            "avx2": "avx2" in flags, "avx512f": "avx512f" in flags, "avx512_bf16": "avx512_bf16" in flags,
            "amx": sorted(f for f in flags if f.startswith("amx")) or False}


def cache_path() -> Path:
    """`$IQT_CPU_BACKEND_CACHE`, else `cpu_backends.json` beside JAX's compilation cache folder."""
    from iqt import compile_cache
    return Path(os.environ.get(CACHE_ENV) or compile_cache.default_dir().parent / "cpu_backends.json")


def probe_shape(multiple: tuple[int, int, int]) -> tuple[int, int, int]:
    """`PROBE_LF` rounded up to a multiple of the network's input multiple."""
    return tuple(-(-p // m) * m for p, m in zip(PROBE_LF, multiple))


def seconds_per_call(predictor: Predictor, lf: np.ndarray, repeats: int = 2) -> float:
    """The fastest of `repeats` calls on `lf` (1, X, Y, Z), after one call that compiles."""
    np.asarray(predictor.predict_fn(lf))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.asarray(predictor.predict_fn(lf))
        times.append(time.perf_counter() - start)
    return min(times)


def _read(path: Path) -> dict:
    """The cache's entries that are objects; a damaged file is set aside (`iqt.marker_files`)."""
    cache = read_json_object(path) or {}
    return {key: entry for key, entry in cache.items() if isinstance(entry, dict)}


def _write(path: Path, cache: dict) -> None:
    """Atomically; a cache that cannot be written is only a cache."""
    from iqt.io_utils import atomic_write_text
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(cache, indent=1) + "\n")
    except OSError:
        pass


def fastest(candidates: list[str], build: Callable[[str], Predictor], key: dict) -> tuple[str, Predictor]:
    """(backend, its Predictor): the cached choice for `key`, else every candidate timed on a probe tile.

    `build(name)` makes a candidate's Predictor; `key` names the runtimes' versions, the precision,
    the thread cap and the network (the CPU is added here).
    """
    forced = os.environ.get(CHOICE_ENV)
    if forced in candidates or len(candidates) == 1:
        name = forced if forced in candidates else candidates[0]
        return name, build(name)
    key = json.dumps({**key, "cpu": cpu_description(), "candidates": sorted(candidates)}, sort_keys=True)
    path = cache_path()
    cache = _read(path)
    known = cache.get(key, {}).get("choice")
    if known in candidates:
        return known, build(known)
    timings, best = {}, None
    for name in candidates:
        try:
            predictor = build(name)   # the first one's errors are the network's: they stop the command
        except UserError as e:
            if best is None:
                raise
            timings[name] = f"not usable: {e}"
            continue
        if best is None:
            print(f"--backend auto: timing {', '.join(candidates)} once on this CPU (cached in {path})",
                  flush=True)
        lf = np.random.default_rng(0).random((1, *probe_shape(predictor.multiple)), dtype=np.float32)
        timings[name] = round(seconds_per_call(predictor, lf), 4)
        if best is None or timings[name] < timings[best[0]]:
            best = (name, predictor)
    cache[key] = {"choice": best[0], "seconds_per_probe": timings, "probe_lf": list(lf.shape[1:])}
    _write(path, cache)
    print(f"--backend auto: {best[0]} (seconds per probe tile: {json.dumps(timings)})", flush=True)
    return best
