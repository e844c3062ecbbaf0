r"""Simulator ablations: train and evaluate every setting of a sweep file with several seeds, and compare.

    python -m launch.sweep --config launch/configs/demo.py \
        --sweep launch/configs/sweeps/stochastic_vs_deterministic.py --workdir runs/sweeps/svd --seeds 0,1,2

Each setting × seed trains (`launch.train`) and is evaluated (`launch.evaluate`) in
WORKDIR/<setting>/seed<k>/. Running the same command again skips finished jobs and
resumes an interrupted one from its checkpoint. At the end, WORKDIR/sweep_table.md
(and .csv, .png; sweep_tests.csv) holds IQT's metrics per setting, mean ± SD over
seeds, and Wilcoxon signed-rank tests between settings. With several devices,
settings run concurrently, --devices_per_setting each. JAX's persistent
compilation cache is WORKDIR/.jax_cache unless one is set.

Robustness of trained runs over a test-time simulator value (no training):

    python -m launch.sweep --evaluate_only --workdirs runs/sweeps/svd/*/seed* --axis snr [--out DIR]

writes robustness_<axis>.md/.csv/.png (PSNR and SSIM against the value, mean ± SD
over seeds, cubic splines beside them) to --out (default: the runs' common folder/robustness).
Axes: snr (0.25-4 × the mean), thickness (3-7 mm), contrast (WM-GM ±30 %), inplane_blur (0-2 mm).
"""
import logging
import os
import re
import sys
from pathlib import Path

from iqt import run_guard

run_guard.defer_sigterm()  # a SIGTERM while starting stops the run cleanly, like a later one
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # GPU workers share the devices' host

from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from iqt import cli, io_utils  # noqa: E402
from iqt.errors import UserError  # noqa: E402

SHIPPED_SWEEPS = Path(__file__).parent / "configs" / "sweeps"
_CONFIG = config_flags.DEFINE_config_file("config", None, "Base training config: path.py[:variant] or a "
                                          "shipped config by name (demo, demo:tiny).")
_SWEEP = flags.DEFINE_string("sweep", None, "Sweep file (launch/configs/sweeps/NAME.py, or NAME).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep folder: one sub-folder per setting and seed, the table.")
_SEEDS = flags.DEFINE_list("seeds", "0,1,2", "Seeds of every setting.")
_DEVICES = flags.DEFINE_integer("devices_per_setting", 1, "Devices per concurrent setting (when there are "
                                "several devices).", lower_bound=1)
_WORKER = flags.DEFINE_string("worker", "", "Internal: I/N, run the I-th of N shares of the unfinished jobs.")
_EVALUATE_ONLY = flags.DEFINE_boolean("evaluate_only", False, "Robustness of trained runs (--workdirs, --axis).")
_WORKDIRS = flags.DEFINE_list("workdirs", [], "Trained runs to evaluate (--evaluate_only).")
_AXIS = flags.DEFINE_enum("axis", "snr", ["snr", "thickness", "contrast", "inplane_blur"],
                          "Test-time simulator value to vary (--evaluate_only).")
_VALUES = flags.DEFINE_list("values", [], "Values of the axis (default: the axis's range).")
_OUT = flags.DEFINE_string("out", None, "Folder of the robustness report (--evaluate_only).")


def _worker() -> tuple[int, int] | None:
    if not _WORKER.value:
        return None
    match = re.fullmatch(r"(\d+)/(\d+)", _WORKER.value)
    if match is None or not int(match.group(1)) < int(match.group(2)):
        raise UserError(f"--worker must be I/N with 0 <= I < N (it is set by the sweep itself), "
                        f"got {_WORKER.value}")
    return int(match.group(1)), int(match.group(2))


def sweep() -> None:
    from iqt.sweep import runner, spec, table

    if _CONFIG.value is None or not _SWEEP.value or not _WORKDIR.value:
        raise UserError("--config, --sweep and --workdir are required (or --evaluate_only)")
    seeds = spec.check_seeds(_SEEDS.value)
    worker = _worker()
    the_sweep = spec.load_sweep(spec.resolve_sweep_file(_SWEEP.value, SHIPPED_SWEEPS))
    spec.check_sweep(the_sweep, _CONFIG.value, seeds)      # every setting × seed, before any folder is made
    workdir = io_utils.make_output_folder(_WORKDIR.value, "--workdir")
    cache_dir = runner.use_compilation_cache(workdir)
    jobs = runner.make_jobs(the_sweep, _CONFIG.value, seeds, workdir)
    if worker is not None:
        left = [j for j in jobs if not j.finished()]
        runner.run_jobs(runner.worker_share(left, *worker), the_sweep.test_settings, cache_dir,
                        prefix=f"sweep worker {worker[0]}")
        return
    print(f"sweep '{the_sweep.name}': {len(the_sweep.settings)} settings × {len(seeds)} seeds in {workdir}; "
          f"compilation cache {cache_dir}", flush=True)
    runner.run_sweep(jobs, the_sweep.test_settings, cache_dir, devices_per_setting=_DEVICES.value,
                     worker_command=lambda i, n: [sys.executable, "-m", "launch.sweep", *sys.argv[1:],
                                                  f"--worker={i}/{n}"])
    paths = table.write_table(jobs, workdir)
    print(paths["markdown"].read_text(), end="", flush=True)
    print("wrote " + ", ".join(str(p) for p in paths.values()), flush=True)


def robustness() -> None:
    from iqt.sweep import robustness as rb

    if not _WORKDIRS.value:
        raise UserError("--evaluate_only needs --workdirs RUN1,RUN2,...")
    missing = [w for w in _WORKDIRS.value if not (Path(w) / "config.json").is_file()]
    if missing:
        raise UserError(f"not a trained run (no config.json): {', '.join(missing)}")
    try:
        values = [float(v) for v in _VALUES.value] or None
    except ValueError:
        raise UserError(f"--values must be numbers, got {','.join(_VALUES.value)}") from None
    rb.check_values(_AXIS.value, values or rb.AXES[_AXIS.value][0])
    out = Path(_OUT.value or Path(os.path.commonpath([str(Path(w).resolve()) for w in _WORKDIRS.value])) / "robustness")
    io_utils.check_output_folder(out, "--out")
    table = rb.evaluate_runs(_WORKDIRS.value, _AXIS.value, values)
    paths = rb.write_report(table, _AXIS.value, out)
    print(paths["markdown"].read_text(), end="", flush=True)
    print("wrote " + ", ".join(str(p) for p in paths.values()), flush=True)


def main(argv):
    del argv
    for name in ("asyncio", "absl"):   # orbax's failed background writes: reported once, below
        logging.getLogger(name).setLevel(logging.CRITICAL)
    if _EVALUATE_ONLY.value:
        return robustness()
    from iqt.checkpointing import CheckpointSaveError
    from iqt.train import TrainingDiverged
    try:
        sweep()
    except (TrainingDiverged, CheckpointSaveError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr, flush=True)
        os._exit(1)


def join_workdirs(argv: list[str]) -> list[str]:
    """`--workdirs RUN1 RUN2 ...` (as a shell glob gives them) as one comma-separated flag value."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in ("--workdirs", "-workdirs"):
            j = i + 1
            while j < len(argv) and not argv[j].startswith("-"):
                j += 1
            out.append(f"--workdirs={','.join(argv[i + 1:j])}")
            i = j
        else:
            out.append(argv[i])
            i += 1
    return out


if __name__ == "__main__":
    sys.argv[:] = join_workdirs(sys.argv)
    cli.run(main, config_dir=Path(__file__).parent / "configs")
