"""`nifti_folder`: the user's own HF data, listed in a CSV manifest.

The manifest has a header and one row per subject:

    subject,image,gm,wm,csf,split
    s01,s01/t1.nii.gz,s01/c1t1.nii,s01/c2t1.nii,s01/c3t1.nii,train

`image` is a skull-stripped HF image; `gm`, `wm`, `csf` its probability maps on
the same grid (in [0, 1], or 0-255 integers); `split` is train, validation or
test; no other column is allowed, and a subject id is a plain name (letters,
digits, ., _, -). Relative paths are relative to the manifest's folder. `--manual_dir`
names the manifest file itself or a folder holding `manifest.csv`.

Every problem is reported with the manifest line (the header is line 1), the
subject, the column and the file. The built dataset is stored under a builder
config named after a hash of the manifest and of its files' sizes and
modification times, so editing either makes a new build.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import re
from pathlib import Path

import tensorflow_datasets as tfds

from iqt.data import records
from iqt.data.datasets import common
from iqt.data.subject import load_subject
from iqt.errors import UserError

MANIFEST_NAME = "manifest.csv"
COLUMNS = ("subject", "image", "gm", "wm", "csf", "split")
SUBJECT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
FILE_COLUMNS = ("image", "gm", "wm", "csf")


@dataclasses.dataclass(frozen=True)
class Row:
    """One manifest row, its files resolved to absolute paths."""

    line: int
    subject: str
    files: dict[str, Path]
    split: str


def manifest_path(manual_dir: str | Path) -> Path:
    """The manifest named by `--manual_dir` (the CSV itself, or a folder holding manifest.csv)."""
    path = Path(manual_dir).expanduser()
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise UserError(f"manifest {path} not found: the nifti_folder dataset needs a CSV with "
                        f"columns {','.join(COLUMNS)} (pass its path, or its folder, as --manual_dir)")
    return path.resolve()


def _check_row(raw: dict, line: int, where: str, base: Path) -> Row:
    prefix = f"{where}, line {line}"
    blank = [c for c in COLUMNS if not (raw.get(c) or "").strip()]
    if blank:
        raise UserError(f"{prefix}: empty {', '.join(blank)} (every row needs {','.join(COLUMNS)})")
    if raw.get(None):   # csv.DictReader's key for fields beyond the header
        raise UserError(f"{prefix}: {len(raw[None])} field(s) more than the header's {len(COLUMNS)}")
    subject = raw["subject"].strip()
    if not SUBJECT_PATTERN.fullmatch(subject):
        raise UserError(f"{prefix}: subject id {subject!r} is not a plain name (letters, digits, '.', '_', "
                        f"'-', starting with a letter or digit; it names the subject in the dataset)")
    split = raw["split"].strip()
    if split not in common.SPLITS:
        raise UserError(f"{prefix} (subject {subject}): split {split!r} is not one of "
                        f"{', '.join(common.SPLITS)}")
    files = {}
    for column in FILE_COLUMNS:
        path = (base / raw[column].strip()).expanduser()
        if not path.is_file():
            raise UserError(f"{prefix} (subject {subject}): {column} file {path} does not exist")
        if not path.name.endswith(common.NIFTI_SUFFIXES):
            raise UserError(f"{prefix} (subject {subject}): {column} file {path} is not .nii or .nii.gz")
        files[column] = path
    return Row(line=line, subject=subject, files=files, split=split)


def read_manifest(path: Path) -> list[Row]:
    """Parses and checks the manifest (columns, splits, duplicates, files exist)."""
    where = f"manifest {path}"
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in COLUMNS if c not in header]
            unknown = [c for c in header if c not in COLUMNS]
            if missing or unknown:
                fault = (f"lacks column(s) {', '.join(missing)}" if missing
                         else f"has unknown column(s) {', '.join(unknown)}")
                raise UserError(f"{where}, line 1: header {fault}; expected {','.join(COLUMNS)}, "
                                f"found {','.join(header) or 'nothing'}")
            reader.fieldnames = header
            rows, seen = [], {}
            for raw in reader:
                if not any((v or "").strip() for v in raw.values() if isinstance(v, str)):
                    continue  # a blank line
                row = _check_row(raw, reader.line_num, where, path.parent)
                if row.subject in seen:
                    raise UserError(f"{where}, line {row.line}: subject {row.subject} is listed "
                                    f"again (first on line {seen[row.subject]})")
                seen[row.subject] = row.line
                rows.append(row)
    except (UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{where} is not a readable CSV file ({e})") from None
    for split, why in (("train", "to train on"), ("validation", "for training's validation")):
        if not any(r.split == split for r in rows):
            raise UserError(f"{where} has no row with split '{split}'; at least one is needed {why}")
    return rows


def manifest_fingerprint(path: Path, rows: list[Row]) -> str:
    """A short hash of the manifest and of its files' sizes and modification times."""
    digest = hashlib.sha256(path.read_bytes())
    for row in rows:
        for file in row.files.values():
            stat = file.stat()
            digest.update(f"{file}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:12]


def load_example(row: Row, where: str) -> dict:
    """Loads and encodes one row; a bad file is reported with the row's line."""
    try:
        subject = load_subject(row.subject, *(row.files[c] for c in FILE_COLUMNS))
        return records.encode(records.normalised(subject))
    except UserError as e:
        raise UserError(f"{where}, line {row.line}: {e}") from None


def make_config(manual_dir: str | Path) -> tfds.core.BuilderConfig:
    """The builder config of one manifest (named by its fingerprint)."""
    path = manifest_path(manual_dir)
    rows = read_manifest(path)
    return tfds.core.BuilderConfig(name=f"manifest_{manifest_fingerprint(path, rows)}",
                                   description=f"built from {path}")


class NiftiFolder(common.IqtBuilder):
    """Any HF NIfTI images with tissue maps, listed in a CSV manifest."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__

    def _plan(self, dl_manager):
        del dl_manager
        path = manifest_path(self.source)
        rows = read_manifest(path)
        where = f"manifest {path}"
        return {split: [(r.subject, lambda r=r: load_example(r, where)) for r in rows if r.split == split]
                for split in common.SPLITS}
