"""What every benchmark shares: timing repeated calls, and handing back one JSON object,
printed and (with --out) written atomically, so that a killed run never leaves half a file."""
from __future__ import annotations

import json
import resource
import time


def timed(fn, warmup: int, steps: int, cpu: dict | None = None) -> list[float]:
    """Seconds of `steps` calls after `warmup` untimed ones; `fn` must block until done.

    `cpu`, if given, receives the process's user and system CPU seconds per timed call.
    """
    for _ in range(warmup):
        fn()
    times = []
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF)
    if cpu is not None and steps:
        cpu["cpu_user_s_per_call"] = (after.ru_utime - before.ru_utime) / steps
        cpu["cpu_sys_s_per_call"] = (after.ru_stime - before.ru_stime) / steps
    return times


def emit(result: dict, out: str | None = None) -> dict:
    """Prints `result` as indented JSON and, if `out` is given, writes the same text there."""
    text = json.dumps(result, indent=2)
    print(text, flush=True)
    if out:
        from iqt.io_utils import atomic_write_text   # the benchmark has put the repository on sys.path
        atomic_write_text(out, text + "\n")
    return result


def command_line(argv: list[str], peer_dir: str = "") -> str:
    """The command as run, with the peer folder (a path on this machine only) as `$IQT_PEER_DIR`."""
    text = " ".join(argv)
    return text.replace(peer_dir, "$IQT_PEER_DIR") if peer_dir else text
