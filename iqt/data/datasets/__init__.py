"""TFDS datasets of HF volumes with tissue maps, built on first use.

`ensure_built(data_config)` returns a prepared builder for `data_config.dataset`:

| dataset | source | splits |
| --- | --- | --- |
| `iqt_template` | the MNI152 2009a template shipped in nilearn (builds in seconds) | y slabs (`iqt_template.SLABS_Y`) |
| `hcp` | HCP structural folders (manual download; config t1w or t2w) | sorted ids, 60/10 by default |
| `lemon` | MPI-LEMON FLAIR with SPM12 maps (manual download) | sorted ids, 60/10 by default |
| `nifti_folder` | a CSV manifest `subject,image,gm,wm,csf,split` | the manifest's column |

Builds live in `data_config.data_dir/<dataset>/<config>/<version>/` (ArrayRecord
files, dataset_info.json, metadata.json). A build records its source (manual
folder or manifest); asking for the same dataset from another source in the
same data_dir is an error rather than a silent reuse. Reading needs only
numpy (see `common`).
"""
from __future__ import annotations

import contextlib
import fcntl
import io
from pathlib import Path
from typing import Iterator

import ml_collections
import tensorflow_datasets as tfds
import tqdm

from iqt.data.datasets import common, hcp, lemon, nifti_folder
from iqt.data.datasets.hcp import Hcp
from iqt.data.datasets.iqt_template import IqtTemplate
from iqt.data.datasets.lemon import Lemon
from iqt.data.datasets.nifti_folder import NiftiFolder
from iqt.errors import UserError

DATASETS = {"iqt_template": IqtTemplate, "hcp": Hcp, "lemon": Lemon, "nifti_folder": NiftiFolder}
MANUAL_DATASETS = ("hcp", "lemon", "nifti_folder")
TEMPLATE_SOURCE = "nilearn MNI152 2009a"


def data_dir(data_config: ml_collections.ConfigDict) -> Path:
    """Where builds are stored (`data_config.data_dir`, `~` expanded)."""
    return Path(data_config.data_dir).expanduser().resolve()


def manual_dir(data_config: ml_collections.ConfigDict) -> Path:
    """The manual-download folder: `data_config.manual_dir`, or `<data_dir>/manual/<dataset>`."""
    if data_config.manual_dir:
        return Path(data_config.manual_dir).expanduser().resolve()
    return data_dir(data_config) / "manual" / dataset_and_variant(data_config)[0]


def dataset_and_variant(data_config: ml_collections.ConfigDict) -> tuple[str, str]:
    """(dataset name, builder config) from `data.dataset` ('hcp' or 'hcp/t2w') and `data.builder_config`."""
    name, _, variant = data_config.dataset.partition("/")
    if variant and data_config.builder_config and variant != data_config.builder_config:
        raise UserError(f"data.dataset {data_config.dataset!r} and data.builder_config "
                        f"{data_config.builder_config!r} disagree; give the config once")
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return name, variant or data_config.builder_config


def _builder_config(data_config: ml_collections.ConfigDict):
    name, variant = dataset_and_variant(data_config)
    split_args = (data_config.num_train_subjects, data_config.num_test_subjects,
                  data_config.validation_fraction)
    if name == "hcp":
        modalities = {"t1w": "T1w", "t2w": "T2w", "": "T1w"}
        if variant.lower() not in modalities:
            raise UserError(f"data.builder_config {variant!r} is not a hcp config; use t1w or t2w")
        return hcp.make_config(modalities[variant.lower()], *split_args)
    if variant not in ("", *_names(DATASETS[name])):
        raise UserError(f"data.builder_config {variant!r} is not a {name} config; leave it empty "
                        f"or use one of: {', '.join(_names(DATASETS[name])) or '(none)'}")
    if name == "lemon":
        return lemon.make_config(*split_args)
    if name == "nifti_folder":
        return nifti_folder.make_config(manual_dir(data_config))
    return None


def _names(builder_cls) -> list[str]:
    return [c.name for c in builder_cls.BUILDER_CONFIGS]


def make_builder(data_config: ml_collections.ConfigDict) -> common.IqtBuilder:
    """The builder `data_config` describes (not necessarily prepared)."""
    name, _ = dataset_and_variant(data_config)
    source = str(manual_dir(data_config)) if name in MANUAL_DATASETS else TEMPLATE_SOURCE
    config = _builder_config(data_config)
    if config is not None and config.name in _names(DATASETS[name]):
        config = config.name  # TFDS wants the registered configs by name
    return DATASETS[name](data_dir=str(data_dir(data_config)), config=config,
                          file_format="array_record", source=source)


def _check_source(builder: common.IqtBuilder) -> None:
    built_from = (builder.info.metadata or {}).get("source", "")
    if built_from != builder.source:
        raise UserError(f"{builder.data_dir} was built from {built_from}, not {builder.source}; "
                        f"use another --data_dir or delete that folder to rebuild")


def _is_built(builder: common.IqtBuilder) -> bool:
    return (Path(builder.data_dir) / "dataset_info.json").is_file()


@contextlib.contextmanager
def _build_lock(builder: common.IqtBuilder) -> Iterator[None]:
    """An exclusive lock beside the build, so concurrent processes build it once."""
    path = Path(builder.data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_built(data_config: ml_collections.ConfigDict, *, progress: bool = False) -> common.IqtBuilder:
    """Builds the dataset unless already built; returns the prepared builder.

    `progress` shows a tqdm bar (one step per subject). The manual datasets
    raise `UserError` with their download instructions when the source is
    missing. Processes sharing `data_dir` build once (a file lock); the others wait.
    """
    builder = make_builder(data_config)
    if not _is_built(builder):
        _check_manual_source(builder)   # before the lock: a refusal leaves no folder behind
        with _build_lock(builder):
            builder = make_builder(data_config)  # another process may have built it meanwhile
            if not _is_built(builder):
                _build(builder, progress)
    _check_source(builder)
    return builder


def check_source(data_config: ml_collections.ConfigDict) -> None:
    """Before any work: an unbuilt hcp/lemon dataset's download folder exists and holds something."""
    builder = make_builder(data_config)
    if not _is_built(builder):
        _check_manual_source(builder)


def _check_manual_source(builder: common.IqtBuilder) -> None:
    """The manual-download folder of hcp/lemon exists and holds something (their instructions otherwise)."""
    if builder.name in ("hcp", "lemon"):
        common.nonempty_dir(Path(builder.source), f"{builder.name} manual-download",
                            builder.MANUAL_DOWNLOAD_INSTRUCTIONS)


def _build(builder: common.IqtBuilder, progress: bool) -> None:
    source = Path(builder.source)
    tfds.display_progress_bar(False)
    download_config = tfds.download.DownloadConfig(
        manual_dir=str(source) if source.is_dir() else None,
        compute_stats=tfds.download.ComputeStatsMode.SKIP)
    # The bar shows on a terminal only and is erased when done, so that an error is the only line
    # left; TFDS's own "Downloading and preparing" note on stdout is dropped (the command summarises).
    with tqdm.tqdm(desc=f"building {builder.name}", unit="subject", disable=None if progress else True,
                   leave=False) as bar, contextlib.redirect_stdout(io.StringIO()):
        builder.progress = bar
        try:
            builder.download_and_prepare(download_config=download_config)
        finally:
            builder.progress = None


def directory_size_bytes(path: str | Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def describe(builder: common.IqtBuilder) -> dict:
    """A summary of a prepared build: subjects per split, voxel sizes, shapes, size on disk."""
    metadata = builder.info.metadata or {}
    return {
        "dataset": builder.name,
        "config": builder.builder_config.name if builder.builder_config else "",
        "path": str(builder.data_dir),
        "subjects": {s: int(info.num_examples) for s, info in builder.info.splits.items()},
        "voxel_sizes_mm": sorted({tuple(v) for v in metadata.get("voxel_sizes_mm", {}).values()}),
        "shapes": sorted({tuple(v) for v in metadata.get("shapes", {}).values()}),
        "size_bytes": directory_size_bytes(builder.data_dir),
    }


__all__ = ["DATASETS", "data_dir", "manual_dir", "make_builder", "check_source", "ensure_built", "describe"]
