"""python -m analysis.design_study --patients P.csv --readers R.csv --seed N --out DIR
                                  [--images IMAGES]

Writes the randomised, blinded reading plan of both reader-study experiments:

  DIR/plan/experiment1.csv   reader, reading_order, case         (one set per patient)
  DIR/plan/experiment2.csv   reader, reading_order, case_A, case_B, case_C
                             (the three sets of one patient, left to right)
  DIR/key/key.csv            experiment, code, patient, image_type  (keep apart!)
  DIR/images/experiment{1,2}/CODE/SEQUENCE.nii.gz   (with --images)

P.csv needs a `patient` column; R.csv a `reader` column (`reader_group`
optional). With --images, volumes are read from
IMAGES/PATIENT/IMAGETYPE_SEQUENCE.nii.gz (or .nii), e.g. IMAGES/P01/LF_T1w.nii.gz,
and copied with every header field that could reveal the scanner removed.
The same seed gives the same plan.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from analysis import _cli
from analysis.anonymise import copy_anonymised
from analysis.design import reading_plan
from analysis.errors import UserError
from analysis.scores import SEQUENCES

OUTPUT_FOLDERS = ("plan", "key", "images")


def build_parser() -> argparse.ArgumentParser:
    parser = _cli.ArgumentParser(prog="python -m analysis.design_study", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", required=True, help="CSV with a `patient` column")
    parser.add_argument("--readers", required=True, help="CSV with a `reader` column")
    parser.add_argument("--seed", required=True, type=int, help="random seed (integer ≥ 0)")
    parser.add_argument("--out", required=True, help="output folder (must not hold a plan)")
    parser.add_argument("--images", default=None,
                        help="folder of IMAGES/PATIENT/IMAGETYPE_SEQUENCE.nii[.gz] volumes")
    return parser


def read_ids(path: str | Path, column: str) -> list[str]:
    """The distinct, non-empty ids in `column` of a CSV, in file order."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not a readable CSV file: {' '.join(str(e).split())}") from e
    if column not in table.columns:
        raise UserError(f"{path}: no `{column}` column (columns: {', '.join(table.columns)})")
    ids = table[column].str.strip()
    for line, value in zip(range(2, len(ids) + 2), ids):
        if value == "":
            raise UserError(f"{path}, line {line}: empty {column}")
    repeated = ids[ids.duplicated()]
    if not repeated.empty:
        raise UserError(f"{path}, line {repeated.index[0] + 2}: {column} {repeated.iloc[0]!r} "
                        "appears twice")
    if ids.empty:
        raise UserError(f"{path}: no {column}s listed")
    return list(ids)


def find_volumes(images: Path, patient: str, image_type: str) -> dict[str, Path]:
    """The volumes of one image set: {sequence: path}; `UserError` if there is none."""
    found = {}
    for sequence in SEQUENCES:
        for suffix in (".nii.gz", ".nii"):
            path = images / patient / f"{image_type}_{sequence}{suffix}"
            if path.is_file():
                found[sequence] = path
                break
    if not found:
        raise UserError(f"no volume for patient {patient}, {image_type}: expected "
                        f"{images / patient / f'{image_type}_SEQUENCE.nii.gz'} with SEQUENCE "
                        f"one of {', '.join(SEQUENCES)}")
    return found


def copy_images(images: Path, key: pd.DataFrame, out_dir: Path) -> int:
    """Anonymised copies of every image set under its code; returns the file count."""
    if not images.is_dir():
        raise UserError(f"--images {images} is not a folder")
    count = 0
    for experiment, code, patient, image_type in key.itertuples(index=False):
        for sequence, source in find_volumes(images, patient, image_type).items():
            copy_anonymised(source, out_dir / f"experiment{experiment}" / code
                            / f"{sequence}.nii.gz")
            count += 1
    return count


def main(args: argparse.Namespace) -> None:
    _cli.check_output_dir(args.out)
    if args.seed < 0:
        raise UserError(f"--seed must be a non-negative integer, got {args.seed}")
    patients = read_ids(args.patients, "patient")
    readers = read_ids(args.readers, "reader")
    first, second, key = reading_plan(patients, readers, args.seed)
    with _cli.staged_output_dir(args.out, must_not_contain=OUTPUT_FOLDERS) as staging:
        (staging / "plan").mkdir()
        (staging / "key").mkdir()
        first.to_csv(staging / "plan" / "experiment1.csv", index=False)
        second.to_csv(staging / "plan" / "experiment2.csv", index=False)
        key.to_csv(staging / "key" / "key.csv", index=False)
        copied = 0 if args.images is None else copy_images(Path(args.images), key,
                                                            staging / "images")
    print(f"wrote the plan for {len(readers)} readers and {len(patients)} patients to "
          f"{args.out}/plan, the key to {args.out}/key"
          + (f", {copied} anonymised volumes to {args.out}/images" if copied else ""))


if __name__ == "__main__":
    _cli.run(main, build_parser())
