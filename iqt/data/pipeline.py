"""The Grain patch pipeline: random HF patches, background rejection, batches for the devices.

Sampling: `iqt.data.patches` (windows of `patch_size_hf` plus the slice margin m
inside the volume; background rejection at `min_brain_fraction`). With
`spatial_augment.enabled`, each training patch is resampled from its volume
through a random warp about its window's centre (`iqt.data.spatial_augment`;
corners and rejection unchanged, on the un-warped window); the warps of visit v
come from their own seeded stream, so groups stay pure functions of (seed,
process, group). Evaluation batches are never warped.

Order. The training stream is a sequence of volume visits: visit v reads
subject `epoch_permutation(v // n)[v % n]` of this process's n subjects and
draws `patches_per_volume` patches from it. `volumes_per_shuffle` consecutive
visits form a group; the group's patches are shuffled and cut into batches (the
remainder is dropped). Every group is a pure function of (seed, process index,
group index), so batch k is the same whatever the parallelism, and restoring
the state `{'next_batch': k}` recomputes group k // batches_per_group and
continues exactly.

Parallelism. `worker_threads` threads (in each of `worker_count` Grain
processes) compute whole groups; each process keeps its last `cache_volumes`
decoded volumes, so a volume is decoded once per visit (once per process for a
one-subject dataset); a thread of the caller makes batches float32 ahead
(`prefetch_batches`). On 2 cores, threads beat processes
(benchmarks/data_pipeline.py): zlib decoding and numpy copies release the GIL,
while processes pay for moving every patch through shared memory.

Multi-host: process p of P reads the records p, p + P, ... of the split, a
disjoint share, with its own random stream; when the split has fewer records
than processes (the one-subject template), every process computes the global
batches of a single-process run and keeps its own rows, so a run gives the same
batches on any number of hosts. Batches hold
`global_batch_size // P` patches in the format of docs/architecture.md.
"""
from __future__ import annotations

import collections
import dataclasses
import threading
from typing import Any

import grain
from absl import flags
import ml_collections
import numpy as np

from iqt.data import splits
from iqt.data.patches import empty_patches, extract_into, rng, sample_corners, sampling_subject, to_float_batch
from iqt.data.spatial_augment import SpatialAugment, Warp, WarpSource, check_config as check_spatial_augment, warp_into
from iqt.data.subject import Subject
from iqt.errors import UserError

_NO_END = 2 ** 62
_EPOCH, _VISIT, _GROUP, _EVAL, _WARP = 1, 2, 3, 4, 5  # stream tags of the random draws


@dataclasses.dataclass
class PatchSampler:
    """Computes groups of batches; picklable (each Grain worker opens its own reader and cache)."""

    dataset_dir: str
    split: str
    records: tuple[int, ...]
    patch_size: tuple[int, int, int]
    margin: int
    min_brain_fraction: float
    patches_per_volume: int
    volumes_per_shuffle: int
    batch_size: int
    seed: int
    stream: int
    cache_volumes: int
    sim_config: dict                 # the `sim` section, for each subject's LF brain means
    rows: tuple[int, int] = (0, -1)  # this process's rows [start, stop) of each batch (-1: all)
    spatial_augment: SpatialAugment | None = None  # the warps' distribution (None: plain windows)

    _LOCAL = ("_source", "_cache", "_lock", "_record_locks")  # per process, not pickled

    def __post_init__(self):
        self._source, self._cache = None, collections.OrderedDict()
        self._lock = threading.Lock()
        self._record_locks = collections.defaultdict(threading.Lock)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in self._LOCAL}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__post_init__()

    @property
    def batches_per_group(self) -> int:
        return self.patches_per_volume * self.volumes_per_shuffle // self.batch_size

    def volume(self, record: int) -> Subject:
        """The decoded record, from this process's cache when possible (thread-safe;
        threads asking for the same record wait for one decode)."""
        return self._decoded(record)[0]

    def _decoded(self, record: int) -> tuple[Subject, WarpSource | None]:
        """The cached record, with what warping it needs (computed once per decode) if augmenting."""
        with self._lock:
            record_lock = self._record_locks[record]
        with record_lock:
            with self._lock:
                if record in self._cache:
                    self._cache.move_to_end(record)
                    return self._cache[record]
                if self._source is None:
                    import tensorflow_datasets as tfds  # here: only opening the records needs it
                    self._source = tfds.builder_from_directory(self.dataset_dir).as_data_source(self.split)
            subject = sampling_subject(self._source[record], self.sim_config)
            decoded = (subject, WarpSource.of(subject) if self.spatial_augment else None)
            with self._lock:
                self._cache[record] = decoded
                while len(self._cache) > max(self.cache_volumes, 0):
                    self._cache.popitem(last=False)
        return decoded

    def visit_record(self, visit: int) -> int:
        """The record read by visit `visit`: each epoch visits every record once, in a seeded order."""
        epoch, position = divmod(visit, len(self.records))
        order = rng(self.seed, self.stream, _EPOCH, epoch).permutation(len(self.records))
        return self.records[order[position]]

    def visit_corners(self, visit: int) -> tuple[Subject, np.ndarray]:
        """The volume of visit `visit` and the corners of its patches."""
        volume, _, corners = self._visit(visit)
        return volume, corners

    def visit_warps(self, visit: int) -> list[Warp]:
        """The warps of visit `visit`'s patches (in corner order), drawn from the stream
        (seed, stream, _WARP, visit); [] when not augmenting."""
        if self.spatial_augment is None:
            return []
        volume = self.volume(self.visit_record(visit))
        window = (self.patch_size[0], self.patch_size[1], self.patch_size[2] + 2 * self.margin)
        return self.spatial_augment.draw(rng(self.seed, self.stream, _WARP, visit), self.patches_per_volume,
                                         window, volume.voxel_sizes_mm)

    def _visit(self, visit: int) -> tuple[Subject, WarpSource | None, np.ndarray]:
        volume, source = self._decoded(self.visit_record(visit))
        corners, _ = sample_corners(rng(self.seed, self.stream, _VISIT, visit), volume.brain,
                                    self.patch_size, self.margin, self.min_brain_fraction,
                                    self.patches_per_volume, name=f"subject {volume.subject_id}")
        return volume, source, corners

    def group(self, index: int) -> dict:
        """Group `index`: arrays (batches_per_group, batch_size, ...), shuffled across its visits.

        Output row j holds patch order[j] of the group's visits (in visit order),
        order being a seeded permutation; patches past the last full batch are dropped.
        """
        k, n = self.patches_per_volume, self.batches_per_group * self.batch_size
        order = rng(self.seed, self.stream, _GROUP, index).permutation(self.volumes_per_shuffle * k)
        row_of_patch = np.full(order.size, -1)
        row_of_patch[order[:n]] = np.arange(n)
        out = empty_patches(n, self.patch_size, self.margin)
        for i in range(self.volumes_per_shuffle):
            visit = index * self.volumes_per_shuffle + i
            volume, source, corners = self._visit(visit)
            rows = row_of_patch[i * k:(i + 1) * k]
            kept = rows >= 0
            if self.spatial_augment is None:
                extract_into(out, rows[kept], volume, corners[kept], self.patch_size, self.margin)
            else:
                warps = [w for w, keep in zip(self.visit_warps(visit), kept) if keep]
                warp_into(out, rows[kept], volume, source, corners[kept], warps, self.patch_size, self.margin,
                          self.spatial_augment.elastic_spacing_mm)
        start, stop = self.rows
        return {key: value.reshape((self.batches_per_group, self.batch_size) + value.shape[1:])
                [:, start:None if stop < 0 else stop] for key, value in out.items()}


class _SplitGroup(grain.experimental.FlatMapTransform):
    def __init__(self, batches_per_group: int):
        self.max_fan_out = batches_per_group

    def flat_map(self, group):
        return [{key: value[j] for key, value in group.items()} for j in range(self.max_fan_out)]


class PatchIterator(grain.DatasetIterator):
    """Training batches forever; `get_state()` is `{'next_batch': k, ...}` (JSON)."""

    def __init__(self, sampler: PatchSampler, data_config: ml_collections.ConfigDict, identity: dict):
        super().__init__()
        self._sampler, self._config, self._identity = sampler, data_config, identity
        self._next_batch, self._batches = 0, None

    def _start(self):
        group, skip = divmod(self._next_batch, self._sampler.batches_per_group)
        ds = grain.MapDataset.range(group, _NO_END).map(self._sampler.group)
        threads, buffer = self._config.worker_threads, self._config.worker_buffer_size
        ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=threads,
                                                  prefetch_buffer_size=max(buffer, threads) if threads else 0))
        if self._config.worker_count > 0:
            if not flags.FLAGS.is_parsed():  # Grain's worker setup reads its absl flags
                flags.FLAGS.mark_as_parsed()
            ds = ds.mp_prefetch(grain.MultiprocessingOptions(
                num_workers=self._config.worker_count, per_worker_buffer_size=max(buffer, 1)))
        ds = grain.experimental.FlatMapIterDataset(ds, _SplitGroup(self._sampler.batches_per_group))
        ds = ds.map(to_float_batch)
        if self._config.prefetch_batches > 0:
            ds = grain.experimental.ThreadPrefetchIterDataset(
                ds, prefetch_buffer_size=self._config.prefetch_batches)
        self._batches = iter(ds)
        for _ in range(skip):
            next(self._batches)

    def __next__(self) -> dict:
        if self._batches is None:
            self._start()
        batch = next(self._batches)
        self._next_batch += 1
        return batch

    def get_state(self) -> dict[str, Any]:
        return {"next_batch": self._next_batch, **self._identity}

    def set_state(self, state: dict[str, Any]) -> None:
        differ = {k: (state.get(k), v) for k, v in self._identity.items() if state.get(k) != v}
        if differ:
            shown = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in differ.items())
            raise UserError(f"the saved data-iterator state belongs to another pipeline ({shown})")
        self.close_batches()
        self._next_batch = int(state["next_batch"])

    def close_batches(self) -> None:
        if self._batches is not None and hasattr(self._batches, "close"):
            self._batches.close()
        self._batches = None

    def close(self) -> None:
        self.close_batches()
        super().close()


def _check_config(c: ml_collections.ConfigDict, slice_margin: int, hf_voxel_mm: float | None = None) -> None:
    size = tuple(c.patch_size_hf)
    if len(size) != 3 or any(int(s) != s or s < 1 for s in size):
        raise UserError(f"data.patch_size_hf must be 3 positive integers, got {size}")
    if not 0.0 <= c.min_brain_fraction <= 1.0:
        raise UserError(f"data.min_brain_fraction must be in [0, 1], got {c.min_brain_fraction}")
    if slice_margin < 0:
        raise UserError(f"the slice margin must be >= 0, got {slice_margin}")
    for field in ("patches_per_volume", "volumes_per_shuffle"):
        if c[field] < 1:
            raise UserError(f"data.{field} must be >= 1, got {c[field]}")
    check_spatial_augment(c.get("spatial_augment"), hf_voxel_mm)


def process_records(num_records: int, process_index: int, process_count: int) -> tuple[int, ...]:
    """The records process `process_index` reads: every P-th, or all if there are fewer than P."""
    if not 0 <= process_index < process_count:
        raise UserError(f"process index {process_index} is not in [0, {process_count})")
    if num_records < process_count:
        return tuple(range(num_records))
    return tuple(range(process_index, num_records, process_count))


def _share(num_records: int, global_batch_size: int, process_index: int, process_count: int) -> dict:
    """How process p samples: its own records and stream, or (fewer records than
    processes) the single-process stream of global batches, keeping its rows."""
    records = process_records(num_records, process_index, process_count)
    batch_size = global_batch_size // process_count
    if num_records >= process_count:
        return dict(records=records, batch_size=batch_size, stream=process_index)
    rows = (process_index * batch_size, (process_index + 1) * batch_size)
    return dict(records=records, batch_size=global_batch_size, stream=0, rows=rows)


def make_train_iterator(data_config: ml_collections.ConfigDict, *, global_batch_size: int,
                        slice_margin: int, seed: int, sim_config: ml_collections.ConfigDict,
                        process_index: int = 0, process_count: int = 1) -> PatchIterator:
    """This process's training batches: hf (b, X, Y, Z+2m), tissue (..., 3), tissue_means (b, 3)."""
    _check_config(data_config, slice_margin, float(sim_config.hf_voxel_mm))
    if global_batch_size < 1 or global_batch_size % process_count:
        raise UserError(f"the global batch size {global_batch_size} must be a positive multiple "
                        f"of the process count {process_count}")
    batch_size = global_batch_size // process_count
    group_size = data_config.patches_per_volume * data_config.volumes_per_shuffle
    if group_size < batch_size:
        raise UserError(f"data.patches_per_volume x data.volumes_per_shuffle = {group_size} must be "
                        f"at least the per-process batch size {batch_size}")
    builder = splits.built_with_split(data_config, data_config.train_split)
    splits.check_shapes(builder, data_config.train_split, data_config.patch_size_hf, slice_margin)
    splits.check_voxel_sizes(builder, data_config.train_split, float(sim_config.hf_voxel_mm))
    num_records = builder.info.splits[data_config.train_split].num_examples
    sampler = PatchSampler(
        dataset_dir=str(builder.data_dir), split=data_config.train_split,
        patch_size=tuple(int(s) for s in data_config.patch_size_hf), margin=int(slice_margin),
        min_brain_fraction=float(data_config.min_brain_fraction),
        patches_per_volume=int(data_config.patches_per_volume),
        volumes_per_shuffle=int(data_config.volumes_per_shuffle), seed=int(seed),
        cache_volumes=int(data_config.cache_volumes), sim_config=sim_config.to_dict(),
        spatial_augment=SpatialAugment.from_config(data_config.get("spatial_augment")),
        **_share(num_records, global_batch_size, process_index, process_count))
    identity = {"dataset": str(builder.data_dir), "seed": int(seed), "batch_size": batch_size,
                "process_index": process_index, "process_count": process_count,
                "slice_margin": int(slice_margin), "patch_size_hf": list(sampler.patch_size)}
    return PatchIterator(sampler, data_config, identity)


def make_eval_batch(data_config: ml_collections.ConfigDict, *, split: str, num_patches: int,
                    slice_margin: int, seed: int, sim_config: ml_collections.ConfigDict) -> dict:
    """A fixed, seeded batch of `num_patches` patches of `split` (patch i from record i mod n)."""
    _check_config(data_config, slice_margin)
    if num_patches < 1:
        raise UserError(f"the number of evaluation patches must be >= 1, got {num_patches}")
    source = splits.open_split(data_config, split)
    size = tuple(int(s) for s in data_config.patch_size_hf)
    n = min(len(source), num_patches)
    parts = []
    for record in range(n):
        volume = sampling_subject(source[record], sim_config.to_dict())
        corners, _ = sample_corners(rng(seed, record, _EVAL), volume.brain, size, slice_margin,
                                    data_config.min_brain_fraction, len(range(record, num_patches, n)),
                                    name=f"subject {volume.subject_id}")
        part = empty_patches(len(corners), size, slice_margin)
        extract_into(part, range(len(corners)), volume, corners, size, slice_margin)
        parts.append(part)
    first = np.cumsum([0] + [len(p["hf"]) for p in parts[:-1]])
    i = np.arange(num_patches)
    take = first[i % n] + i // n  # patch i is the (i // n)-th of record i mod n
    return to_float_batch({key: np.concatenate([p[key] for p in parts])[take] for key in parts[0]})
