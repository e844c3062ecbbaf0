"""Validation of a whole training config, before any work: every section, every field used.

`check_run_config` is the one validator of a run's config: `launch.train` calls it
before the work directory is touched, and `iqt.config_io.load_config` calls it on
a saved `config.json` (so a damaged file is a clear error in `infer` and
`evaluate` too). Each section is checked by the code that owns it: the simulator
by `simulators.SimulatorSpec.from_config`, the network by `iqt.models.create_model`,
the dataset name by `iqt.data.datasets`, the patch sampler by `iqt.data.pipeline`.
"""
from __future__ import annotations

import math

import ml_collections

from iqt.errors import UserError

SECTIONS = ("data", "sim", "model", "train")
SEED_RANGE = (0, 2**32)  # seeds are uint32 (jax.random.key), like numpy's legacy seeds

# train fields: (smallest allowed value, type); every one must be present.
_TRAIN_INTEGERS = {"batch_size": 1, "num_steps": 1, "log_every": 1, "eval_every": 1,
                   "num_eval_patches": 1, "checkpoint_every": 1, "keep_checkpoints": 1,
                   "max_nonfinite_skips": 0, "warmup_steps": 0}
_TRAIN_REALS = {"learning_rate": False, "lr_decay_rate": True}  # field: whether 0 is allowed


def check_run_config(config, source: str = "the config") -> None:
    """Raises `UserError` naming the first invalid field of a training config (`source`: where it came from)."""
    try:
        _check(config)
    except UserError as e:
        raise UserError(f"{source}: {e}") from None
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as e:
        message = " ".join(str(e).split()) or type(e).__name__
        raise UserError(f"{source} is not a valid training config ({type(e).__name__}: {message})") from None


def check_seed(seed, name: str = "seed") -> int:
    """A seed as an int in [0, 2**32)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not SEED_RANGE[0] <= seed < SEED_RANGE[1]:
        raise UserError(f"{name}={seed!r} must be an integer in [0, {SEED_RANGE[1]})")
    return seed


def _check(config) -> None:
    if not isinstance(config, ml_collections.ConfigDict):
        raise UserError(f"a config must be a mapping of sections, found {type(config).__name__}")
    missing = [s for s in ("seed", *SECTIONS) if s not in config]
    if missing:
        raise UserError(f"the config lacks {', '.join(missing)}; every run config has "
                        f"seed, {', '.join(SECTIONS)}")
    for section in SECTIONS:
        if not isinstance(config[section], ml_collections.ConfigDict):
            raise UserError(f"config section {section!r} must be a mapping, found {config[section]!r}")
    check_seed(config.seed)
    margin = _check_sim(config.sim)
    factor = int(config.sim.factor)
    _check_model(config.model, factor, tuple(config.data.patch_size_hf))
    _check_data(config.data, margin, float(config.sim.hf_voxel_mm))
    _check_train(config.train, config.data)
    _check_bn_calibration(config)


def _check_sim(sim: ml_collections.ConfigDict) -> int:
    """Validates the simulator section; returns its slice margin (HF slices)."""
    import simulators

    try:
        return simulators.SimulatorSpec.from_config(sim).margin
    except simulators.SimulatorInputError as e:
        raise UserError(str(e)) from None


def _check_model(model: ml_collections.ConfigDict, factor: int, patch_size_hf: tuple,
                 name: str = "data.patch_size_hf") -> None:
    from iqt.models import create_model, input_multiple

    create_model(model, factor)
    x, y, z = (int(n) for n in patch_size_hf) if len(patch_size_hf) == 3 else (0, 0, 0)
    if z % factor or min(x, y, z) <= 0:
        raise UserError(f"{name} {tuple(patch_size_hf)} must be three positive sizes, z a multiple of "
                        f"sim.factor={factor}")
    multiple = input_multiple(model, factor)
    if any(n % m for n, m in zip((x, y, z // factor), multiple)):
        raise UserError(f"{name} {patch_size_hf} gives an LF patch {(x, y, z // factor)} that "
                        f"this network (model.levels={model.levels}) cannot take: its sizes must be "
                        f"multiples of {multiple}")


def _check_bn_calibration(config) -> None:
    """`train.bn_calibration_patch_hf` (if set) fits the network; a positive number of patches."""
    patch = tuple(config.train.get("bn_calibration_patch_hf", ()))
    if not patch:
        return
    _check_model(config.model, int(config.sim.factor), patch, "train.bn_calibration_patch_hf")
    count = config.train.get("bn_calibration_patches", 16)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise UserError(f"train.bn_calibration_patches={count!r} must be a positive integer")


def _check_data(data: ml_collections.ConfigDict, margin: int, hf_voxel_mm: float) -> None:
    from iqt.data import datasets, pipeline

    datasets.dataset_and_variant(data)
    pipeline._check_config(data, margin, hf_voxel_mm)  # the sampler owns its checks
    for field in ("worker_count", "worker_threads", "worker_buffer_size", "prefetch_batches", "cache_volumes"):
        value = data[field]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UserError(f"data.{field}={value!r} must be an integer >= 0")


def _check_train(train: ml_collections.ConfigDict, data: ml_collections.ConfigDict) -> None:
    for field, lowest in _TRAIN_INTEGERS.items():
        value = train[field]
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            raise UserError(f"train.{field}={value!r} must be an integer >= {lowest}")
    for field, zero_ok in _TRAIN_REALS.items():
        value = train[field]
        ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
              and (value > 0 or (zero_ok and value == 0)))
        if not ok:
            raise UserError(f"train.{field}={value!r} must be a finite number {'>=' if zero_ok else '>'} 0")
    for field in ("progress_bar", "augment"):
        if not isinstance(train[field], bool):
            raise UserError(f"train.{field}={train[field]!r} must be true or false")
    from iqt.train_step import LR_SCHEDULES, PRNG_IMPLS
    if train.lr_schedule not in LR_SCHEDULES:
        raise UserError(f"train.lr_schedule={train.lr_schedule!r} is not one of {LR_SCHEDULES}")
    if train.get("prng_impl", PRNG_IMPLS[0]) not in PRNG_IMPLS:
        raise UserError(f"train.prng_impl={train.prng_impl!r} is not one of {PRNG_IMPLS}")
    group = data.patches_per_volume * data.volumes_per_shuffle
    if group < train.batch_size:
        raise UserError(f"data.patches_per_volume x data.volumes_per_shuffle = {group} must be at least "
                        f"train.batch_size={train.batch_size}")
