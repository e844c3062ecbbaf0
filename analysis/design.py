"""The randomised, blinded reading plan of the two reader-study experiments.

Experiment 1: each reader sees one image set (LF, IQT or HF) per patient.
The set is given by a randomised cyclic Latin rectangle: with readers,
patients and image types each shuffled, reader i reads patient j as image
type (i + j) mod 3. So every reader sees every patient once, each reader sees
each image type ⌊P/3⌋ or ⌈P/3⌉ times, and each patient is shown as each type
to ⌊R/3⌋ or ⌈R/3⌉ readers.

Experiment 2: each reader sees the three sets of every patient side by side;
the left-to-right order is one of the 6 permutations, again cycled over a
randomised Latin rectangle so that each type takes each position equally
often (up to rounding) for every reader.

Readers see only random case codes; the key (code → patient, image type) is
kept apart. Reading orders are shuffled per reader.
"""
from __future__ import annotations

import itertools
import string

import numpy as np
import pandas as pd

from analysis.scores import IMAGE_TYPES

POSITIONS = ("A", "B", "C")  # left to right in experiment 2
CODE_ALPHABET = np.array(list(sorted(set(string.ascii_uppercase + string.digits) - set("O0I1"))))
CODE_LENGTH = 6


def experiment1_assignment(patients: list[str], readers: list[str],
                           rng: np.random.Generator) -> pd.DataFrame:
    """Which image type each reader sees for each patient.

    Returns columns reader, patient, image_type; one row per reader × patient.
    """
    reader_order = rng.permutation(len(readers))
    patient_order = rng.permutation(len(patients))
    type_order = rng.permutation(len(IMAGE_TYPES))
    rows = [(readers[r], patients[p], IMAGE_TYPES[type_order[(i + j) % len(IMAGE_TYPES)]])
            for i, r in enumerate(reader_order) for j, p in enumerate(patient_order)]
    return pd.DataFrame(rows, columns=["reader", "patient", "image_type"])


def experiment2_layout(patients: list[str], readers: list[str],
                       rng: np.random.Generator) -> pd.DataFrame:
    """The left-to-right order of the three image types per reader and patient.

    Returns columns reader, patient, A, B, C (image types at each position).
    """
    layouts = list(itertools.permutations(IMAGE_TYPES))
    layouts = [layouts[k] for k in rng.permutation(len(layouts))]
    reader_order = rng.permutation(len(readers))
    patient_order = rng.permutation(len(patients))
    rows = [(readers[r], patients[p], *layouts[(i + j) % len(layouts)])
            for i, r in enumerate(reader_order) for j, p in enumerate(patient_order)]
    return pd.DataFrame(rows, columns=["reader", "patient", *POSITIONS])


def blind_codes(n: int, rng: np.random.Generator, taken: set[str] = frozenset()) -> list[str]:
    """`n` distinct random case codes (6 letters/digits, no O/0/I/1), none in `taken`."""
    codes: list[str] = []
    seen = set(taken)
    while len(codes) < n:
        code = "".join(rng.choice(CODE_ALPHABET, CODE_LENGTH))
        if code not in seen:
            seen.add(code)
            codes.append(code)
    return codes


def code_key(patients: list[str], rng: np.random.Generator) -> pd.DataFrame:
    """Random case codes for every image set of both experiments.

    Returns columns experiment, code, patient, image_type; a set has a
    different code in each experiment, so the two cannot be linked.
    """
    sets = [(p, t) for p in patients for t in IMAGE_TYPES]
    codes = blind_codes(2 * len(sets), rng)
    rows = [(experiment, codes[k * len(sets) + s], patient, image_type)
            for k, experiment in enumerate((1, 2)) for s, (patient, image_type) in enumerate(sets)]
    return pd.DataFrame(rows, columns=["experiment", "code", "patient", "image_type"])


def reading_plan(patients: list[str], readers: list[str], seed: int
                 ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The blinded plans of both experiments and their key, from one seed.

    Returns (experiment1, experiment2, key):
      experiment1: reader, reading_order, case;
      experiment2: reader, reading_order, case_A, case_B, case_C;
      key: experiment, code, patient, image_type.
    """
    rng = np.random.default_rng(seed)
    key = code_key(patients, rng)
    code = {(e, p, t): c for e, c, p, t in key.itertuples(index=False)}
    first = experiment1_assignment(patients, readers, rng)
    first["case"] = [code[1, p, t] for p, t in zip(first["patient"], first["image_type"])]
    second = experiment2_layout(patients, readers, rng)
    for position in POSITIONS:
        second[f"case_{position}"] = [code[2, p, t]
                                      for p, t in zip(second["patient"], second[position])]
    first = _shuffle_reading_order(first, readers, rng)[["reader", "reading_order", "case"]]
    second = _shuffle_reading_order(second, readers, rng)[
        ["reader", "reading_order", *(f"case_{p}" for p in POSITIONS)]]
    return first, second, key


def _shuffle_reading_order(plan: pd.DataFrame, readers: list[str], rng: np.random.Generator
                           ) -> pd.DataFrame:
    """Adds reading_order (1…P, a fresh permutation per reader) and sorts by it."""
    plan = plan.copy()
    plan["reading_order"] = 0
    for reader in readers:
        rows = plan.index[plan["reader"] == reader]
        plan.loc[rows, "reading_order"] = rng.permutation(len(rows)) + 1
    rank = {r: i for i, r in enumerate(readers)}
    return plan.sort_values(["reader", "reading_order"], key=lambda c: c.map(rank)
                            if c.name == "reader" else c).reset_index(drop=True)
