"""What every IQT dataset shares: the example format, the subject split rule, the builder base.

Storage (TFDS, ArrayRecord, no TensorFlow)
------------------------------------------
TFDS 4.9.10 writes and reads ArrayRecord datasets with numpy alone: a
`GeneratorBasedBuilder` created with `file_format='array_record'` runs
`download_and_prepare` (features are serialised by TFDS's numpy encoders, the
records by the `array_record` package), and `builder.as_data_source(split)` /
`tfds.data_source` / `tfds.builder_from_directory(...).as_data_source(split)`
give random access to decoded examples. None of these import `tensorflow`
(checked by `tests/data/test_datasets.py`). Dataset statistics, which would
need TensorFlow, are not computed (`ComputeStatsMode.SKIP`).

One example is one subject (or one slab of the template), in the format of
`iqt.data.records`.
"""
from __future__ import annotations

import abc
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import tensorflow_datasets as tfds

from iqt.data import records
from iqt.data.nifti import NIFTI_SUFFIXES
from iqt.data.subject import Subject
from iqt.errors import UserError

SPLITS = ("train", "validation", "test")


def features() -> tfds.features.FeaturesDict:
    """The TFDS features of one example (see the module docstring)."""
    zlib = tfds.features.Encoding.ZLIB
    return tfds.features.FeaturesDict({
        "subject_id": tfds.features.Text(),
        "image": tfds.features.Tensor(shape=(None, None, None), dtype=np.float32, encoding=zlib),
        "tissue": tfds.features.Tensor(shape=(None, None, None, 3), dtype=np.uint8, encoding=zlib),
        "scale": tfds.features.Scalar(dtype=np.float32),
        "tissue_means": tfds.features.Tensor(shape=(3,), dtype=np.float32),
        "voxel_sizes_mm": tfds.features.Tensor(shape=(3,), dtype=np.float32),
        "affine": tfds.features.Tensor(shape=(4, 4), dtype=np.float64),
    })


def split_subjects(subject_ids: Iterable[str], num_train: int, num_test: int,
                   validation_fraction: float) -> dict[str, list[str]]:
    """The deterministic subject split: by sorted id, train first, then test.

    With at least `num_train + num_test` subjects, the first `num_train` sorted
    ids are for training and the next `num_test` for testing; the rest are left
    out (`num_train = 0` means "every subject that is not a test subject").
    With fewer, the test share is `round(n * num_test / (num_train + num_test))`
    (at least 1) and the rest train. Validation is the last
    `round(validation_fraction * n_train)` training subjects (at least 1 when
    the fraction is positive and 2 or more subjects train). Empty splits are
    left out of the result.
    """
    ids = sorted(subject_ids)
    n = len(ids)
    if n < 2:
        raise UserError(f"found {n} subject(s); at least 2 are needed (one to train, one to test)")
    if num_train < 0 or num_test < 1 or not 0.0 <= validation_fraction < 1.0:
        raise UserError(f"bad subject split: num_train={num_train} (>= 0), num_test={num_test} "
                        f"(>= 1), validation_fraction={validation_fraction} (in [0, 1))")
    if num_train == 0:
        n_test = min(num_test, n - 1)
        n_train = n - n_test
    elif n >= num_train + num_test:
        n_train, n_test = num_train, num_test
    else:
        n_test = min(max(1, round(n * num_test / (num_train + num_test))), n - 1)
        n_train = n - n_test
    n_val = round(validation_fraction * n_train)
    if validation_fraction > 0 and n_train >= 2:
        n_val = min(max(1, n_val), n_train - 1)
    splits = {"train": ids[:n_train - n_val], "validation": ids[n_train - n_val:n_train],
              "test": ids[n_train:n_train + n_test]}
    return {name: members for name, members in splits.items() if members}


def plan_subject_splits(manual_dir, config, find: Callable[[Path], dict],
                        load: Callable[[object], Subject]) -> dict[str, list]:
    """The `_plan` of a manual-download builder: subjects found in `manual_dir`, split by
    sorted id as the builder config says, each loaded lazily by `load(found[id])`."""
    subjects = find(Path(str(manual_dir)))
    splits = split_subjects(subjects, config.num_train, config.num_test, config.validation_fraction)
    return {split: [(sid, lambda d=subjects[sid]: records.encode(records.normalised(load(d)))) for sid in ids]
            for split, ids in splits.items()}


def nifti_stem(path: Path) -> str:
    """A NIfTI file name without its .nii / .nii.gz suffix."""
    for suffix in NIFTI_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[:-len(suffix)]
    return path.stem


def spm_maps(image_path: Path) -> list[Path] | None:
    """SPM12's c1/c2/c3 (GM, WM, CSF) maps of `image_path`, found beside it, or None.

    SPM12 names the segmentation of `name.nii` as `c1name.nii`, `c2name.nii`,
    `c3name.nii` (gzipped copies are accepted too).
    """
    stem = nifti_stem(image_path)
    found = []
    for k in (1, 2, 3):
        candidates = [image_path.parent / f"c{k}{stem}{s}" for s in NIFTI_SUFFIXES]
        existing = [c for c in candidates if c.is_file()]
        if not existing:
            return None
        found.append(existing[0])
    return found


def fraction_tag(fraction: float) -> str:
    return f"{int(round(100 * fraction))}"


# One example to write: (key, a function that loads the subject's example).
PendingExample = tuple[str, Callable[[], dict]]


class LocalDatasetInfo(tfds.core.DatasetInfo):
    """The `DatasetInfo` of a dataset built from local files only.

    TFDS looks for pre-computed metadata of an unbuilt dataset on Google Cloud
    Storage, and first makes an empty `tmp*tfds` folder in the system's
    temporary folder that it never removes (one per process and builder), even
    with GCS disabled; these datasets have no such metadata.
    """

    def initialize_from_bucket(self) -> None:
        pass


class IqtBuilder(tfds.core.GeneratorBasedBuilder, abc.ABC):
    """Shared base: the features, the metadata and the example generator.

    Subclasses implement `_plan(dl_manager) -> {split: [(key, load_example)]}`.
    The metadata (`info.metadata`, saved as metadata.json beside the records)
    records the source, the subject ids per split, and each subject's voxel
    sizes and shape, so a summary needs no decoding.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}

    def __init__(self, *, source: str = "", **kwargs):
        self.source = source
        self.progress = None  # an optional tqdm bar, advanced once per subject
        super().__init__(**kwargs)

    # TFDS prints "Downloading and preparing dataset Unknown size ..." and "... downloaded
    # and prepared" for every build; these builds download nothing (the sources are local),
    # and launch.build_data prints its own summary.
    def _log_download_bytes(self) -> None:
        pass

    def _log_download_done(self) -> None:
        pass

    def _info(self) -> tfds.core.DatasetInfo:
        return LocalDatasetInfo(builder=self, description=self.__doc__, features=features(),
                                metadata=tfds.core.MetadataDict())

    @abc.abstractmethod
    def _plan(self, dl_manager) -> dict[str, list[PendingExample]]:
        """The examples of each split, not yet loaded."""

    def _split_generators(self, dl_manager):
        plan = {split: items for split, items in self._plan(dl_manager).items() if items}
        if self.progress is not None:
            self.progress.reset(total=sum(len(items) for items in plan.values()))
        metadata = self.info.metadata
        metadata.update(source=self.source, subjects={}, voxel_sizes_mm={}, shapes={})
        return {split: self._generate_examples(split, items) for split, items in plan.items()}

    def _generate_examples(self, split: str, items: list[PendingExample]) -> Iterator[tuple[str, dict]]:
        metadata = self.info.metadata
        metadata["subjects"][split] = [key for key, _ in items]
        for key, load_example in items:
            example = load_example()
            metadata["voxel_sizes_mm"][key] = [round(float(v), 6) for v in example["voxel_sizes_mm"]]
            metadata["shapes"][key] = list(example["image"].shape)
            if self.progress is not None:
                self.progress.set_postfix_str(key, refresh=False)
                self.progress.update(1)
            yield key, example


def nonempty_dir(path: Path, what: str, instructions: str) -> Path:
    """Checks that the manual-download folder exists and holds something."""
    if not path.is_dir():
        raise UserError(f"{what} folder {path} does not exist. {instructions}")
    if not any(path.iterdir()):
        raise UserError(f"{what} folder {path} is empty. {instructions}")
    return path
