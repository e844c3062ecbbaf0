"""The reader-study scores: one CSV in long format, one row per score.

Columns (docs/reader_study.md): `reader`, `reader_group` (may be
empty), `patient`, `experiment` (1 or 2), `image_type` (LF, IQT, HF),
`sequence` (T1w, T2w, FLAIR), `criterion` (gm_wm, lesion) and `score`
(1 not visible, 2 subtle, 3 clear, 4 very clear; empty = missing).

`load_scores` reads and validates the file; every problem is a `UserError`
naming the file, the line and the reason. Line numbers are those of the file,
the header being line 1.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from analysis.errors import UserError

COLUMNS = ("reader", "reader_group", "patient", "experiment", "image_type",
           "sequence", "criterion", "score")
EXPERIMENTS = (1, 2)
IMAGE_TYPES = ("LF", "IQT", "HF")
SEQUENCES = ("T1w", "T2w", "FLAIR")
CRITERIA = ("gm_wm", "lesion")
CRITERION_NAMES = {"gm_wm": "GM–WM differentiation", "lesion": "lesion definition"}
SCORE_RANGE = (1, 4)
ALL_READERS = "all"
# One score per reader, patient, experiment, image type, sequence and criterion.
SCORE_KEY = ["reader", "patient", "experiment", "image_type", "sequence", "criterion"]


def load_scores(path: str | os.PathLike) -> pd.DataFrame:
    """Reads and validates the long scores CSV.

    Returns one row per score with the columns of `COLUMNS`: `experiment` as
    int, `score` as float (NaN = missing), the rest as str (`reader_group` ""
    when empty). Raises `UserError` for any malformed row.
    """
    path = Path(path)
    table = _read_csv(path)
    return validate_scores(table, source=str(path))


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise UserError(f"scores file {path} does not exist")
    if b"\0" in path.read_bytes():
        raise UserError(f"{path} holds NUL bytes: it is not a text CSV file (damaged, or saved by a "
                        f"spreadsheet in another format)")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise UserError(f"{path} is not a readable CSV file: {reason}") from e


def validate_scores(table: pd.DataFrame, source: str = "scores") -> pd.DataFrame:
    """Checks a table of strings (as read from the CSV) and returns it typed.

    `source` names the file in error messages.
    """
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise UserError(f"{source}: missing column(s) {', '.join(missing)}; "
                        f"expected {', '.join(COLUMNS)}")
    table = table[list(COLUMNS)].reset_index(drop=True).apply(lambda c: c.str.strip())
    if table.empty:
        raise UserError(f"{source}: no scores (the file has a header only)")
    lines = pd.Series(np.arange(len(table)) + 2, index=table.index)

    def reject(bad: pd.Series, reason: Callable[[pd.Series], str]) -> None:
        if bad.any():
            first = bad.to_numpy().nonzero()[0][0]
            raise UserError(f"{source}, line {lines.iloc[first]}: {reason(table.iloc[first])}")

    for column in ("reader", "patient"):
        reject(table[column] == "", lambda row, c=column: f"empty {c}")
    for column, allowed in (("experiment", EXPERIMENTS), ("image_type", IMAGE_TYPES),
                            ("sequence", SEQUENCES), ("criterion", CRITERIA)):
        allowed_text = [str(a) for a in allowed]
        reject(~table[column].isin(allowed_text),
               lambda row, c=column, a=allowed_text:
               f"unknown {c} {row[c]!r}; expected one of {', '.join(a)}")
    scores = pd.to_numeric(table["score"].replace("", np.nan), errors="coerce")
    lo, hi = SCORE_RANGE
    bad_score = (table["score"] != "") & ~(scores.isin(np.arange(lo, hi + 1)))
    reject(bad_score, lambda row: f"score {row['score']!r} is not an integer from {lo} to {hi} "
                                  "(leave it empty when missing)")
    reject(table.duplicated(SCORE_KEY, keep="first"),
           lambda row: "second score for reader {reader}, patient {patient}, experiment "
                       "{experiment}, {image_type} {sequence} {criterion}".format(**row))
    reject(table["reader_group"] == ALL_READERS,
           lambda row: f"reader_group may not be {ALL_READERS!r} (it names all readers pooled)")
    groups = table.groupby("reader")["reader_group"].transform("first")
    reject(table["reader_group"] != groups,
           lambda row: f"reader {row['reader']} is in group {row['reader_group']!r} here but "
                       f"in {groups[row.name]!r} on an earlier line")
    typed = table.assign(experiment=table["experiment"].astype(int), score=scores.astype(float))
    return typed.reset_index(drop=True)


def reader_groups(scores: pd.DataFrame) -> list[str]:
    """The non-empty reader groups of a validated table, in order of first appearance."""
    groups = scores["reader_group"]
    return list(dict.fromkeys(groups[groups != ""]))


def select_group(scores: pd.DataFrame, group: str) -> pd.DataFrame:
    """The scores of one reader group; `ALL_READERS` selects everyone."""
    if group == ALL_READERS:
        return scores
    return scores[scores["reader_group"] == group]


def in_reading_order(table: pd.DataFrame, groups: Sequence[str] = ()) -> pd.DataFrame:
    """Sorts rows by experiment, reader group (in `groups` order), criterion,
    sequence and image type, each in its natural order; values outside the
    natural order (e.g. 'all') come first. Columns that are absent are skipped."""
    orders = {"experiment": list(EXPERIMENTS), "reader_group": list(groups),
              "criterion": list(CRITERIA), "sequence": list(SEQUENCES),
              "image_type": list(IMAGE_TYPES)}
    present = [c for c in orders if c in table.columns]
    ranks = {f"_rank_{c}": table[c].map({v: i for i, v in enumerate(orders[c])}).fillna(-1)
             for c in present}
    ranked = table.assign(**ranks).sort_values(list(ranks), kind="stable")
    return ranked.drop(columns=list(ranks)).reset_index(drop=True)
