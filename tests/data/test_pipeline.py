"""The Grain patch pipeline: format, determinism, restore, background rejection, sharding."""
from __future__ import annotations

import json

import numpy as np
import pytest

import simulators
from iqt.data import patches, pipeline, splits
from iqt.data.datasets import ensure_built
from iqt.errors import UserError

MARGIN = 2
SIM = simulators.default_config("T1w", 4, hf_voxel_mm=1.5)   # for each subject's LF brain means


def _iterator(config, *, batch=4, seed=0, process_index=0, process_count=1):
    return pipeline.make_train_iterator(config, global_batch_size=batch, slice_margin=MARGIN, seed=seed,
                                        sim_config=SIM, process_index=process_index, process_count=process_count)


def _take(iterator, n: int) -> list[dict]:
    return [next(iterator) for _ in range(n)]


def _assert_same(a: list[dict], b: list[dict]):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def _augmented(config, augment: bool = True):
    """A copy of `config` with data.spatial_augment.enabled = `augment`."""
    config = config.copy_and_resolve_references()
    config.spatial_augment.enabled = augment
    return config


def _brain_fraction(tissue: np.ndarray, margin: int = MARGIN) -> np.ndarray:
    """Per patch: share of brain (tissue sum > 0.5) in the target, margin excluded."""
    brain = tissue.sum(axis=-1) > 0.5
    return brain[..., margin:brain.shape[-1] - margin].mean(axis=(1, 2, 3))


def test_a_voxel_size_other_than_the_datas_is_refused(folder_data):
    with pytest.raises(UserError, match="1.5 mm voxels along the slices but sim.hf_voxel_mm=1"):
        pipeline.make_train_iterator(folder_data, global_batch_size=2, slice_margin=0, seed=0,
                                     sim_config=simulators.default_config("T1w", 4, hf_voxel_mm=1.0))


def test_batch_format_is_per_process_share(folder_data):
    (batch,) = _take(_iterator(folder_data, batch=8, process_index=1, process_count=2), 1)
    assert set(batch) == {"hf", "tissue", "tissue_means", "brain_means", "subject"}
    assert batch["hf"].shape == (4, 16, 16, 8 + 2 * MARGIN) and batch["hf"].dtype == np.float32
    assert batch["tissue"].shape == (4, 16, 16, 8 + 2 * MARGIN, 3) and batch["tissue"].dtype == np.float32
    assert batch["tissue_means"].shape == (4, 3) and batch["tissue_means"].dtype == np.float32
    assert 0.0 <= batch["tissue"].min() and batch["tissue"].max() <= 1.0


def test_group_is_a_seeded_shuffle_of_its_visits(folder_data):
    """A group's rows are the visits' windows, in the order of the group's permutation."""
    sampler = _iterator(folder_data, batch=4)._sampler
    group = sampler.group(3)
    windows, tissue = [], []
    for visit in range(3 * sampler.volumes_per_shuffle, 4 * sampler.volumes_per_shuffle):
        volume, corners = sampler.visit_corners(visit)
        for x, y, z in corners:  # reference: plain slicing of the decoded volume
            windows.append(volume.image[x:x + 16, y:y + 16, z:z + 8 + 2 * MARGIN])
            tissue.append(volume.tissue[x:x + 16, y:y + 16, z:z + 8 + 2 * MARGIN])
    order = patches.rng(sampler.seed, sampler.stream, pipeline._GROUP, 3).permutation(len(windows))
    kept = order[:group["hf"].shape[0] * group["hf"].shape[1]]
    expected = np.stack(windows)[kept]
    np.testing.assert_array_equal(group["tissue"].reshape((len(kept),) + tissue[0].shape), np.stack(tissue)[kept])
    np.testing.assert_array_equal(group["hf"].reshape(expected.shape), expected)


def test_same_seed_same_batches(folder_data):
    first = _take(_iterator(folder_data, seed=7), 6)
    _assert_same(first, _take(_iterator(folder_data, seed=7), 6))
    other = _take(_iterator(folder_data, seed=8), 1)
    assert not np.array_equal(first[0]["hf"], other[0]["hf"])


@pytest.mark.parametrize("augment", [False, True])  # data.spatial_augment
@pytest.mark.parametrize("k", [3, 4])  # mid-group and at a group boundary (4 batches per group)
def test_restored_state_continues_exactly(folder_data, k, augment):
    config = _augmented(folder_data, augment)
    iterator = _iterator(config, seed=1)
    reference = _take(iterator, k + 5)
    iterator = _iterator(config, seed=1)
    _take(iterator, k)
    state = json.loads(json.dumps(iterator.get_state()))
    assert state["next_batch"] == k
    restored = _iterator(config, seed=1)
    restored.set_state(state)
    _assert_same(_take(restored, 5), reference[k:])


@pytest.mark.parametrize("processes, threads, augment", [(0, 2, False), (2, 1, False), (0, 2, True)])
def test_parallel_workers_give_the_same_stream(folder_data, processes, threads, augment):
    serial = _augmented(folder_data, augment)
    config = serial.copy_and_resolve_references()
    config.worker_count, config.worker_threads, config.prefetch_batches = processes, threads, 2
    iterator = _iterator(config, seed=2)
    try:
        with_workers = _take(iterator, 6)
        state = iterator.get_state()
    finally:
        iterator.close()
    _assert_same(with_workers, _take(_iterator(serial, seed=2), 6))
    assert state["next_batch"] == 6


def test_state_of_another_pipeline_is_refused(folder_data):
    state = _iterator(folder_data, seed=0).get_state()
    with pytest.raises(UserError, match="seed: saved 0, now 5"):
        _iterator(folder_data, seed=5).set_state(state)


def test_rejection_keeps_only_brain_patches_at_the_expected_rate():
    shape, patch, margin, threshold = (30, 28, 26), (8, 8, 6), 1, 0.3
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"))
    brain = np.sum(((grid - np.array([12, 14, 13])[:, None, None, None]) / 9.0) ** 2, axis=0) < 1
    # Reference: the brain fraction at every candidate corner, by brute force.
    high = np.array(shape) - np.array([8, 8, 6 + 2 * margin]) + 1
    fractions = np.array([[[brain[x:x + 8, y:y + 8, z + margin:z + margin + 6].mean()
                            for z in range(high[2])] for y in range(high[1])] for x in range(high[0])])
    p_keep = float(np.mean(fractions >= threshold))
    assert 0.1 < p_keep < 0.9
    corners, drawn = patches.sample_corners(patches.rng(0), brain, patch, margin, threshold, 3000,
                                             name="phantom")
    assert all(fractions[tuple(c)] >= threshold for c in corners)
    rate = 3000 / drawn
    assert abs(rate - p_keep) < 4 * np.sqrt(p_keep * (1 - p_keep) / drawn)


def test_training_patches_meet_the_brain_threshold(folder_data):
    config = folder_data.copy_and_resolve_references()
    config.min_brain_fraction = 0.6
    for batch in _take(_iterator(config, batch=8), 4):
        assert np.all(_brain_fraction(batch["tissue"]) >= 0.6)


def test_impossible_threshold_is_a_user_error(folder_data):
    config = folder_data.copy_and_resolve_references()
    config.patch_size_hf = (30, 34, 20)  # the whole volume: about half brain
    config.min_brain_fraction = 0.99
    with pytest.raises(UserError, match=r"subject s0\d: only 0 of \d+ random patches hold at least 0.99"):
        next(pipeline.make_train_iterator(config, global_batch_size=2, slice_margin=0, seed=0, sim_config=SIM))


def _subject_of_means(config) -> dict[tuple, str]:
    return {tuple(s.tissue_means): s.subject_id for s in splits.load_split_subjects(config, "train")}


def test_processes_read_disjoint_shares_covering_all_subjects(folder_data):
    subject_of = _subject_of_means(folder_data)
    assert len(subject_of) == 5  # every subject has its own tissue means
    source = ensure_built(folder_data).as_data_source("train")
    record_subject = [source[r]["subject_id"].decode() for r in range(len(source))]
    seen = []
    for p in range(2):
        batches = _take(_iterator(folder_data, batch=8, process_index=p, process_count=2), 8)
        subjects = {subject_of[tuple(m)] for b in batches for m in b["tissue_means"]}
        share = {record_subject[r] for r in pipeline.process_records(5, p, 2)}
        assert subjects == share
        seen.append(subjects)
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(record_subject)


def test_process_records_partition():
    for n in (3, 5, 7):
        for count in (1, 2, 3):
            shares = [set(pipeline.process_records(n, p, count)) for p in range(count)]
            assert set().union(*shares) == set(range(n))
            assert sum(len(s) for s in shares) == n
    assert pipeline.process_records(1, 1, 2) == (0,)  # fewer records than processes: all


def test_eval_batch_is_fixed_and_interleaves_subjects(folder_data):
    batch = pipeline.make_eval_batch(folder_data, split="train", num_patches=7, slice_margin=MARGIN, seed=3,
                                     sim_config=SIM)
    again = pipeline.make_eval_batch(folder_data, split="train", num_patches=7, slice_margin=MARGIN, seed=3,
                                     sim_config=SIM)
    _assert_same([batch], [again])
    assert batch["hf"].shape == (7, 16, 16, 8 + 2 * MARGIN)
    assert np.all(_brain_fraction(batch["tissue"]) >= folder_data.min_brain_fraction)
    source = ensure_built(folder_data).as_data_source("train")
    for i, means in enumerate(batch["tissue_means"]):
        np.testing.assert_array_equal(means, source[i % 5]["tissue_means"])


def test_split_subjects_are_the_stored_volumes(folder_data):
    (subject,) = splits.load_split_subjects(folder_data, "test")
    (example,) = [e for e in ensure_built(folder_data).as_data_source("test")]
    assert subject.subject_id == example["subject_id"].decode()
    np.testing.assert_array_equal(subject.image, example["image"])
    np.testing.assert_allclose(subject.tissue, example["tissue"] / 255.0, atol=1e-7)
    assert subject.voxel_sizes_mm == pytest.approx((1.2, 1.0, 1.5))
    assert subject.scale == pytest.approx(float(example["scale"]))


def test_bad_requests_are_user_errors(folder_data):
    with pytest.raises(UserError, match="global batch size 7 must be a positive multiple of the process count 2"):
        _iterator(folder_data, batch=7, process_count=2)
    with pytest.raises(UserError, match="has no 'valid' split; it has train, validation, test"):
        pipeline.make_eval_batch(folder_data, split="valid", num_patches=2, slice_margin=0, seed=0,
                                 sim_config=SIM)
    config = folder_data.copy_and_resolve_references()
    config.patch_size_hf = (32, 32, 32)
    with pytest.raises(UserError, match=r"subject s0\d \(train\) has shape \(30, 34, 40\), smaller"):
        _iterator(config)


def test_template_feeds_the_demo(template_data):
    config, _ = template_data
    sim = simulators.default_config("T1w", 6, hf_voxel_mm=1.0)   # the template's 1 mm voxels
    (batch,) = _take(pipeline.make_train_iterator(config, global_batch_size=2, slice_margin=4, seed=0,
                                                       sim_config=sim), 1)
    assert batch["hf"].shape == (2, 32, 32, 40)
    assert np.all(_brain_fraction(batch["tissue"], 4) >= config.min_brain_fraction)
