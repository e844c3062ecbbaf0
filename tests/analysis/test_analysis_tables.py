"""Loading, means, percentages and pairing on a small hand-made table."""
import io
import statistics

import numpy as np
import pandas as pd
import pytest

from analysis.comparisons import paired_scores, signed_rank_tests
from analysis.errors import UserError
from analysis.scores import load_scores, validate_scores
from analysis.summary import summary_table

HEADER = "reader,reader_group,patient,experiment,image_type,sequence,criterion,score\n"
# Experiment 2 (side by side), GM–WM, T1w: readers R1 (HF) and R2 (LF), 3 patients.
EXPERIMENT2 = """\
R1,HF,P1,2,LF,T1w,gm_wm,2
R1,HF,P1,2,IQT,T1w,gm_wm,3
R1,HF,P1,2,HF,T1w,gm_wm,4
R1,HF,P2,2,LF,T1w,gm_wm,1
R1,HF,P2,2,IQT,T1w,gm_wm,3
R1,HF,P2,2,HF,T1w,gm_wm,3
R1,HF,P3,2,LF,T1w,gm_wm,2
R1,HF,P3,2,IQT,T1w,gm_wm,2
R1,HF,P3,2,HF,T1w,gm_wm,4
R2,LF,P1,2,LF,T1w,gm_wm,2
R2,LF,P1,2,IQT,T1w,gm_wm,4
R2,LF,P1,2,HF,T1w,gm_wm,4
R2,LF,P2,2,LF,T1w,gm_wm,3
R2,LF,P2,2,IQT,T1w,gm_wm,
R2,LF,P2,2,HF,T1w,gm_wm,4
R2,LF,P3,2,LF,T1w,gm_wm,1
R2,LF,P3,2,IQT,T1w,gm_wm,2
R2,LF,P3,2,HF,T1w,gm_wm,3
"""
# Experiment 1 (one set per reader and patient), GM–WM, T1w: readers R1–R3.
EXPERIMENT1 = """\
R1,HF,P1,1,LF,T1w,gm_wm,1
R2,LF,P1,1,IQT,T1w,gm_wm,3
R3,LF,P1,1,IQT,T1w,gm_wm,2
R1,HF,P2,1,IQT,T1w,gm_wm,3
R2,LF,P2,1,LF,T1w,gm_wm,2
R3,LF,P2,1,HF,T1w,gm_wm,4
R1,HF,P3,1,HF,T1w,gm_wm,4
R2,LF,P3,1,HF,T1w,gm_wm,3
R3,LF,P3,1,LF,T1w,gm_wm,2
R1,HF,P4,1,IQT,T1w,gm_wm,2
R2,LF,P4,1,LF,T1w,gm_wm,2
R3,LF,P4,1,LF,T1w,gm_wm,3
"""


def _table(body: str) -> pd.DataFrame:
    return validate_scores(pd.read_csv(io.StringIO(HEADER + body), dtype=str,
                                       keep_default_na=False))


@pytest.fixture
def scores() -> pd.DataFrame:
    return _table(EXPERIMENT2 + EXPERIMENT1)


def _row(table, **where):
    mask = np.ones(len(table), bool)
    for column, value in where.items():
        mask &= table[column].to_numpy() == value
    assert mask.sum() == 1, where
    return table[mask].iloc[0]


def test_means_and_percentages_by_hand(scores):
    summary = summary_table(scores, ["all", "HF"])
    # Experiment 2, all readers: LF 2,1,2,2,3,1 → 11/6; IQT 3,3,2,4,2 (one missing) → 14/5;
    # HF 4,3,4,4,4,3 → 22/6. IQT vs LF: (14/5 − 11/6)/(11/6) = 5.8/11 = 52.73 %.
    lf = _row(summary, experiment=2, reader_group="all", image_type="LF")
    iqt = _row(summary, experiment=2, reader_group="all", image_type="IQT")
    hf = _row(summary, experiment=2, reader_group="all", image_type="HF")
    assert (lf["n"], iqt["n"], hf["n"]) == (6, 5, 6)
    assert lf["mean"] == pytest.approx(11 / 6) and iqt["mean"] == pytest.approx(14 / 5)
    assert hf["mean"] == pytest.approx(22 / 6)
    assert lf["sd"] == pytest.approx(statistics.stdev([2, 1, 2, 2, 3, 1]))
    assert (lf["median"], iqt["median"], hf["median"]) == (2, 3, 4)
    assert lf["pct_vs_LF"] == 0
    assert iqt["pct_vs_LF"] == pytest.approx(580 / 11)
    assert hf["pct_vs_LF"] == pytest.approx(100)
    # Experiment 1: LF 1,2,2,2,3 → 2; IQT 3,3,2,2 → 2.5 (+25 %); HF 4,4,3 → 11/3.
    assert _row(summary, experiment=1, reader_group="all", image_type="IQT")["pct_vs_LF"] \
        == pytest.approx(25)
    # HF group (R1 only) in experiment 1: LF 1; IQT 3, 2 → 2.5 (+150 %).
    assert _row(summary, experiment=1, reader_group="HF", image_type="IQT")["pct_vs_LF"] \
        == pytest.approx(150)


def test_pairing_by_reader_and_patient_in_experiment_2(scores):
    stratum = scores[scores["experiment"] == 2]
    iqt, lf = paired_scores(stratum, "IQT", "LF", "reader_patient")
    # (R1,P1) 3−2, (R1,P2) 3−1, (R1,P3) 2−2, (R2,P1) 4−2, (R2,P3) 2−1;
    # (R2,P2) has no IQT score.
    assert sorted(iqt - lf) == [0, 1, 1, 2, 2]


def test_pairing_by_patient_means_in_experiment_1(scores):
    stratum = scores[scores["experiment"] == 1]
    iqt, lf = paired_scores(stratum, "IQT", "LF", "patient_mean")
    # P1: IQT (3+2)/2 vs LF 1; P2: 3 vs 2; P3 has no IQT; P4: IQT 2 vs LF (2+3)/2.
    assert list(iqt) == [2.5, 3, 2] and list(lf) == [1, 2, 2.5]


def test_tests_table_by_hand(scores):
    tests = signed_rank_tests(scores, ["all"])
    e2_lf = _row(tests, experiment=2, comparison="IQT-LF")
    # d = 1, 2, 0, 2, 1 → zero dropped; ranks 1.5, 3.5, 3.5, 1.5 all positive:
    # T = min(10, 0) = 0, r = +1, exact p = 2 · (1/16).
    assert (e2_lf["n_pairs"], e2_lf["statistic"], e2_lf["effect_size"]) == (5, 0, 1)
    assert e2_lf["p_value"] == pytest.approx(0.125)
    e2_hf = _row(tests, experiment=2, comparison="IQT-HF")
    # d = −1, 0, −2, 0, −1 → ranks 1.5, 3, 1.5 all negative: r = −1, p = 2 · (1/8).
    assert (e2_hf["n_pairs"], e2_hf["statistic"], e2_hf["effect_size"]) == (5, 0, -1)
    assert e2_hf["p_value"] == pytest.approx(0.25)
    # Holm over the family of experiment 2: 0.125 · 2 = 0.25 and max(0.25, 0.25 · 1).
    assert (e2_lf["p_holm"], e2_hf["p_holm"]) == pytest.approx((0.25, 0.25))
    e1_lf = _row(tests, experiment=1, comparison="IQT-LF")
    # Patient means: d = 1.5, 1, −0.5 → ranks 3, 2, 1: R+ = 5, R− = 1, r = 4/6;
    # no ties, exact p = 2 · P(R− ≤ 1) = 2 · 2/8.
    assert (e1_lf["n_pairs"], e1_lf["statistic"]) == (3, 1)
    assert e1_lf["effect_size"] == pytest.approx(4 / 6)
    assert e1_lf["p_value"] == pytest.approx(0.5)


def test_zero_method_and_pairing_options(scores):
    pratt = _row(signed_rank_tests(scores, ["all"], zero_method="pratt"),
                 experiment=2, comparison="IQT-LF")
    # Pratt ranks the zero: |d| 0 → 1; 1, 1 → 2.5; 2, 2 → 4.5; r = 14 / 15.
    assert pratt["effect_size"] == pytest.approx(14 / 15)
    by_patient = _row(signed_rank_tests(scores, ["all"], pairing="patient_mean"),
                      experiment=2, comparison="IQT-LF")
    assert by_patient["n_pairs"] == 3  # P1, P2, P3 means over R1 and R2


@pytest.mark.parametrize("line, fix, message", [
    (2, "R1,HF,P1,2,MF,T1w,gm_wm,2", "line 2: unknown image_type 'MF'"),
    (3, "R1,HF,P1,2,IQT,T3w,gm_wm,3", "line 3: unknown sequence 'T3w'"),
    (4, "R1,HF,P1,2,HF,T1w,contrast,4", "line 4: unknown criterion 'contrast'"),
    (5, "R1,HF,P2,2,LF,T1w,gm_wm,5", "line 5: score '5' is not an integer from 1 to 4"),
    (6, "R1,HF,P2,2,IQT,T1w,gm_wm,2.5", "line 6: score '2.5'"),
    (7, "R1,HF,P1,2,LF,T1w,gm_wm,3", "line 7: second score for reader R1, patient P1"),
    (8, "R1,HF,P3,3,LF,T1w,gm_wm,3", "line 8: unknown experiment '3'"),
    (9, "R1,LF,P3,2,IQT,T1w,gm_wm,3", "line 9: reader R1 is in group 'LF' here but in 'HF'"),
])
def test_bad_rows_are_named_by_line(tmp_path, line, fix, message):
    rows = EXPERIMENT2.splitlines()
    rows[line - 2] = fix
    path = tmp_path / "scores.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n")
    with pytest.raises(UserError, match=message.replace("(", r"\(")) as error:
        load_scores(path)
    assert str(path) in str(error.value)


def test_bad_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_scores(tmp_path / "nope.csv")
    (tmp_path / "cols.csv").write_text("reader,patient,score\nR1,P1,3\n")
    with pytest.raises(UserError, match="missing column"):
        load_scores(tmp_path / "cols.csv")
    (tmp_path / "empty.csv").write_text(HEADER)
    with pytest.raises(UserError, match="no scores"):
        load_scores(tmp_path / "empty.csv")
