"""report.md: the results written as a paper's results section, then the tables."""
from __future__ import annotations

import math

import pandas as pd

from analysis.agreement import ALPHA, KAPPA
from analysis.comparisons import COMPARISONS
from analysis.scores import ALL_READERS, CRITERIA, CRITERION_NAMES

ALPHA_LEVEL = 0.05


def format_p(p: float) -> str:
    """A p-value as a paper quotes it: 'p = 0.012', 'p < 0.001', 'p = n/a'."""
    if p is None or math.isnan(p):
        return "p = n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def format_signed(value: float, digits: int = 2) -> str:
    """A signed number with a true minus sign: '+0.86', '−1.00', 'n/a'."""
    if value is None or math.isnan(value):
        return "n/a"
    text = f"{value:+.{digits}f}"
    return text.replace("-", "−")


def format_change(percent: float) -> str:
    """A percentage change in words: '28 % higher', '7 % lower', 'equal'."""
    if percent is None or math.isnan(percent):
        return "n/a"
    rounded = round(percent)
    if rounded == 0:
        return "equal (±0 %)"
    return f"{abs(rounded)} % {'higher' if rounded > 0 else 'lower'}"


def markdown_table(table: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame as a GitHub markdown table, floats to `digits` decimals."""
    def cell(value) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.{digits}f}"
        return str(value)
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in table.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |"
            for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def comparison_sentence(summary: pd.DataFrame, tests: pd.DataFrame, experiment: int,
                        group: str, criterion: str, comparison: str) -> str | None:
    """'Compared with LF, IQT scored 28 % higher for T1w (2.43 vs 1.89; p = …), …'."""
    first, second = COMPARISONS[comparison]
    at = ((summary["experiment"] == experiment) & (summary["reader_group"] == group)
          & (summary["criterion"] == criterion))
    means = summary[at].set_index(["sequence", "image_type"])["mean"]
    chosen = tests[(tests["experiment"] == experiment) & (tests["reader_group"] == group)
                   & (tests["criterion"] == criterion) & (tests["comparison"] == comparison)]
    clauses = []
    for test in chosen.itertuples():
        if (test.sequence, first) not in means or (test.sequence, second) not in means:
            continue
        a, b = means[test.sequence, first], means[test.sequence, second]
        clauses.append(f"{format_change((a - b) / b * 100)} for {test.sequence} "
                       f"({a:.2f} vs {b:.2f}; {format_p(test.p_value)}, Holm "
                       f"{format_p(test.p_holm)}, r = {format_signed(test.effect_size)}, "
                       f"n = {test.n_pairs})")
    if not clauses:
        return None
    listed = ", ".join(clauses[:-1]) + " and " + clauses[-1] if len(clauses) > 1 else clauses[0]
    return f"compared with {second}, {first} scored {listed}"


def results_section(scores: pd.DataFrame, summary: pd.DataFrame, tests: pd.DataFrame) -> str:
    """The prose: one paragraph per experiment and reader group."""
    lines = []
    for (experiment, group), family in tests.groupby(["experiment", "reader_group"],
                                                     sort=False):
        readers = scores if group == ALL_READERS else scores[scores["reader_group"] == group]
        readers = readers[readers["experiment"] == experiment]
        who = "all readers" if group == ALL_READERS else f"{group} readers"
        lines.append(f"**Experiment {experiment}, {who}** ({readers['reader'].nunique()} "
                     f"readers, {readers['patient'].nunique()} patients).")
        for criterion in CRITERIA:
            sentences = [s for s in (comparison_sentence(summary, tests, experiment, group,
                                                         criterion, comparison)
                                     for comparison in COMPARISONS) if s]
            if sentences:
                name = CRITERION_NAMES[criterion]
                lines.append(f"- {name[0].upper() + name[1:]}: "
                             + "; ".join(sentences) + ".")
        lines.append(_significance_sentence(family) + "\n")
    return "\n".join(lines)


def _significance_sentence(family: pd.DataFrame) -> str:
    tested = family.dropna(subset=["p_holm"])
    significant = tested[tested["p_holm"] < ALPHA_LEVEL]
    if significant.empty:
        return (f"None of the {len(tested)} differences was significant after Holm's "
                f"correction (α = {ALPHA_LEVEL}).")
    listed = ", ".join(f"{r.comparison} {CRITERION_NAMES[r.criterion]} {r.sequence} "
                       f"(Holm {format_p(r.p_holm)})" for r in significant.itertuples())
    return (f"{len(significant)} of {len(tested)} differences were significant after Holm's "
            f"correction (α = {ALPHA_LEVEL}): {listed}.")


def report_markdown(source: str, scores: pd.DataFrame, summary: pd.DataFrame,
                    tests: pd.DataFrame, agreement: pd.DataFrame, options: dict) -> str:
    """The whole report.md text."""
    kappas = agreement[agreement["measure"] == KAPPA]
    kappa_summary = (kappas.groupby(["experiment", "criterion"])["value"]
                     .agg(pairs="count", median="median", min="min", max="max").reset_index())
    settings = ", ".join(f"`{k}={v}`" for k, v in options.items())
    return "\n\n".join([
        "# Reader-study results",
        f"Scores: `{source}` — {scores['score'].notna().sum()} scores "
        f"({scores['score'].isna().sum()} missing) from {scores['reader'].nunique()} readers on "
        f"{scores['patient'].nunique()} patients. Settings: {settings}.",
        "Means pool patients and readers (missing scores excluded); percentages are "
        "differences of IQT means against LF or HF means. Tests are two-sided Wilcoxon "
        "signed-rank tests on n pairs (experiment 1: per-patient means over readers; "
        "experiment 2: the same reader and patient, unless --pairing says otherwise); "
        "r is the matched-pairs rank-biserial correlation (positive: IQT "
        "scored higher); Holm's correction runs over all tests of one experiment and reader "
        "group.",
        "## Results", results_section(scores, summary, tests),
        "![Figure 5](figure5.png)",
        "## Mean scores (summary.csv)", markdown_table(summary, digits=2),
        "## Wilcoxon signed-rank tests (tests.csv)", markdown_table(tests),
        "## Inter-reader agreement (agreement.csv)",
        "Krippendorff's alpha (ordinal), units = patients:",
        markdown_table(agreement[agreement["measure"] == ALPHA]
                       .drop(columns=["measure", "reader_a", "reader_b"])),
        "Quadratic-weighted Cohen's kappa over reader pairs (all pairs in agreement.csv):",
        markdown_table(kappa_summary),
    ]) + "\n"
