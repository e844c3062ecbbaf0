"""SYNTHETIC reader-study scores, to try `analysis.reader_study` on.

python -m analysis.example_data --out analysis/examples/example_scores_synthetic.csv

These scores are invented by a seeded random model; they are not the data of
any study. The layout mimics the published one (docs/method.md §7): 12
patients (8 lesional), 7 readers (2 HF experts, 5 LF generalists),
experiment 1 with one image set per reader and patient (the Latin-rectangle
plan of `analysis.design`), experiment 2 with all three sets; lesion scores
only for lesional patients; about 3 % of scores missing.

Model: score = clip(round(level[criterion, sequence, image type]
+ patient effect + reader effect + noise), 1, 4), with effects N(0, 0.35²)
and noise N(0, 0.45²).
"""
from __future__ import annotations

import argparse
import numpy as np
import pandas as pd

from analysis import _cli
from analysis.design import experiment1_assignment
from analysis.scores import COLUMNS, CRITERIA, IMAGE_TYPES, SEQUENCES

# Invented mean levels (criterion → sequence → LF, IQT, HF), roughly the shape
# of the published findings: IQT helps GM–WM in T1w/T2w, less so elsewhere.
LEVELS = {"gm_wm": {"T1w": (2.2, 2.8, 3.4), "T2w": (2.5, 2.9, 3.3), "FLAIR": (2.6, 2.4, 3.2)},
          "lesion": {"T1w": (2.3, 2.0, 3.1), "T2w": (2.6, 2.3, 3.3), "FLAIR": (2.8, 2.7, 3.5)}}
MISSING_FRACTION = 0.03


def example_scores(seed: int = 0, n_patients: int = 12, n_lesional: int = 8,
                   readers_per_group: dict[str, int] | None = None) -> pd.DataFrame:
    """A synthetic long scores table (columns `analysis.scores.COLUMNS`)."""
    rng = np.random.default_rng(seed)
    readers_per_group = readers_per_group or {"HF": 2, "LF": 5}
    readers = {f"synthetic_R{k + 1}": group for k, group in
               enumerate(g for g, n in readers_per_group.items() for _ in range(n))}
    patients = [f"synthetic_P{k + 1:02d}" for k in range(n_patients)]
    lesional = set(rng.choice(patients, n_lesional, replace=False))
    patient_effect = dict(zip(patients, rng.normal(0, 0.35, n_patients)))
    reader_effect = dict(zip(readers, rng.normal(0, 0.35, len(readers))))
    shown = experiment1_assignment(patients, list(readers), rng)
    seen_in_1 = set(zip(shown["reader"], shown["patient"], shown["image_type"]))
    rows = []
    for experiment in (1, 2):
        for reader, group in readers.items():
            for patient in patients:
                for image_type in IMAGE_TYPES:
                    if experiment == 1 and (reader, patient, image_type) not in seen_in_1:
                        continue
                    for sequence in SEQUENCES:
                        for criterion in CRITERIA:
                            if criterion == "lesion" and patient not in lesional:
                                continue
                            level = LEVELS[criterion][sequence][IMAGE_TYPES.index(image_type)]
                            latent = (level + patient_effect[patient] + reader_effect[reader]
                                      + rng.normal(0, 0.45))
                            score = int(np.clip(np.round(latent), 1, 4))
                            missing = rng.random() < MISSING_FRACTION
                            rows.append((reader, group, patient, experiment, image_type,
                                         sequence, criterion, None if missing else score))
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table["score"] = table["score"].astype("Int64")
    return table


def main(args: argparse.Namespace) -> None:
    table = example_scores(seed=args.seed)
    with _cli.atomic_file(args.out) as tmp:
        table.to_csv(tmp, index=False)
    print(f"wrote {len(table)} synthetic scores to {args.out}")


def build_parser() -> argparse.ArgumentParser:
    parser = _cli.ArgumentParser(prog="python -m analysis.example_data", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="CSV file to write")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    return parser


if __name__ == "__main__":
    _cli.run(main, build_parser())
