"""python -m analysis.reader_study --scores SCORES.csv --out DIR

Reads the long reader-study CSV (docs/reader_study.md) and writes
summary.csv, tests.csv, agreement.csv, figure5.png and report.md into DIR.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from analysis import _cli
from analysis.agreement import agreement_table
from analysis.comparisons import PAIRINGS, signed_rank_tests
from analysis.errors import UserError
from analysis.figure import figure5
from analysis.report import report_markdown
from analysis.scores import ALL_READERS, load_scores, reader_groups
from analysis.signed_rank import ZERO_METHODS
from analysis.summary import summary_table

OUTPUTS = ("summary.csv", "tests.csv", "agreement.csv", "figure5.png", "report.md")


def build_parser() -> argparse.ArgumentParser:
    parser = _cli.ArgumentParser(prog="python -m analysis.reader_study", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scores", required=True, help="long CSV of reader scores")
    parser.add_argument("--out", required=True, help="output folder (created if needed)")
    parser.add_argument("--zero_method", choices=ZERO_METHODS, default="wilcox",
                        help="zero differences in the Wilcoxon test: dropped ('wilcox', "
                             "default), ranked ('pratt') or split ('zsplit')")
    parser.add_argument("--pairing", choices=PAIRINGS, default="design",
                        help="'design' (default): per-patient means over readers in "
                             "experiment 1, same reader and patient in experiment 2; or "
                             "one rule for both experiments")
    parser.add_argument("--groups", default=None,
                        help="comma-separated reader groups to report besides all readers "
                             "pooled (default: every group in the data; '' for none)")
    return parser


def chosen_groups(requested: str | None, available: Sequence[str]) -> list[str]:
    """[ALL_READERS] + the requested reader groups (all available ones by default)."""
    if requested is None:
        return [ALL_READERS, *available]
    names = [name.strip() for name in requested.split(",") if name.strip()]
    unknown = [name for name in names if name not in available and name != ALL_READERS]
    if unknown:
        raise UserError(f"--groups: no reader in group(s) {', '.join(unknown)}; the scores "
                        f"hold {', '.join(available) or 'no groups'}")
    return [ALL_READERS, *(name for name in dict.fromkeys(names) if name != ALL_READERS)]


def analyse(scores: pd.DataFrame, groups: Sequence[str], zero_method: str, pairing: str
            ) -> dict[str, pd.DataFrame]:
    """The three tables of the analysis: summary, tests and agreement."""
    return dict(summary=summary_table(scores, groups),
                tests=signed_rank_tests(scores, groups, zero_method=zero_method, pairing=pairing),
                agreement=agreement_table(scores))


def write_outputs(out_dir: Path, source: str, scores: pd.DataFrame,
                  tables: dict[str, pd.DataFrame], groups: Sequence[str], options: dict
                  ) -> None:
    """Writes the five outputs into `out_dir` (a staging folder)."""
    for name in ("summary", "tests", "agreement"):
        tables[name].to_csv(out_dir / f"{name}.csv", index=False, float_format="%.6g")
    figure5(tables["summary"], out_dir / "figure5.png", groups)
    text = report_markdown(source, scores, tables["summary"], tables["tests"],
                           tables["agreement"], options)
    (out_dir / "report.md").write_text(text, encoding="utf-8")


def check_outputs_free(out_dir: str, scores: str) -> None:
    """No output of the study would replace the scores file or a folder of the same name."""
    for name in OUTPUTS:
        target = Path(out_dir) / name
        if target.is_dir():
            raise UserError(f"--out {out_dir} holds a folder {name} where an output goes; choose another --out")
        if target.exists() and Path(scores).exists() and os.path.samefile(target, scores):
            raise UserError(f"--scores {scores} is where the output {name} goes; choose another --out")


def main(args: argparse.Namespace) -> None:
    _cli.check_output_dir(args.out)
    check_outputs_free(args.out, args.scores)
    scores = load_scores(args.scores)
    groups = chosen_groups(args.groups, reader_groups(scores))
    tables = analyse(scores, groups, args.zero_method, args.pairing)
    options = dict(zero_method=args.zero_method, pairing=args.pairing,
                   groups=",".join(groups))
    with _cli.staged_output_dir(args.out) as staging:
        write_outputs(staging, Path(args.scores).name, scores, tables, groups, options)
    print(f"wrote {', '.join(OUTPUTS)} to {args.out}")


if __name__ == "__main__":
    _cli.run(main, build_parser())
