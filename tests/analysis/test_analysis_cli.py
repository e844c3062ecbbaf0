"""The command lines: outputs, the error contract, the shipped synthetic example."""
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from analysis import design_study, reader_study
from analysis._cli import run, staged_output_dir
from analysis.example_data import example_scores
from analysis.reader_study import OUTPUTS

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "analysis" / "examples" / "example_scores_synthetic.csv"
HEADER = "reader,reader_group,patient,experiment,image_type,sequence,criterion,score\n"


def _python_m(module: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def _assert_contract(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def _small_scores(tmp_path: Path) -> Path:
    rows = [f"R{r},{'HF' if r == 1 else 'LF'},P{p},{e},{t},{s},{c},{1 + (r + p + i) % 4}"
            for e in (1, 2) for r in (1, 2, 3) for p in (1, 2, 3, 4)
            for i, t in enumerate(("LF", "IQT", "HF")) if e == 2 or (r + p) % 3 == i
            for s in ("T1w", "T2w", "FLAIR") for c in ("gm_wm", "lesion")]
    path = tmp_path / "scores.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n")
    return path


def test_reader_study_writes_all_outputs(tmp_path):
    out = tmp_path / "results"
    result = _python_m("analysis.reader_study", "--scores", str(_small_scores(tmp_path)),
                       "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["reader_group"]) == {"all", "HF", "LF"}
    tests = pd.read_csv(out / "tests.csv")
    assert set(tests["comparison"]) == {"IQT-LF", "IQT-HF"}
    assert list(tests.columns) == ["experiment", "reader_group", "criterion", "sequence",
                                   "comparison", "n_pairs", "statistic", "p_value", "p_holm",
                                   "effect_size"]
    assert (out / "figure5.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Results" in (out / "report.md").read_text(encoding="utf-8")


def test_reader_study_bad_row_follows_contract(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text(HEADER + "R1,HF,P1,1,LF,T1w,gm_wm,3\nR1,HF,P1,1,MF,T1w,gm_wm,3\n")
    out = tmp_path / "results"
    _assert_contract(_python_m("analysis.reader_study", "--scores", str(path), "--out",
                               str(out)), "line 3", "unknown image_type 'MF'")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [path]  # no staging folder left behind


def test_design_study_bad_input_follows_contract(tmp_path):
    (tmp_path / "patients.csv").write_text("patient\nP1\nP2\nP1\n")
    (tmp_path / "readers.csv").write_text("reader\nR1\n")
    out = tmp_path / "plan"
    _assert_contract(_python_m("analysis.design_study", "--patients",
                               str(tmp_path / "patients.csv"), "--readers",
                               str(tmp_path / "readers.csv"), "--seed", "1", "--out",
                               str(out)), "line 4", "'P1' appears twice")
    assert not out.exists()


@pytest.mark.parametrize("argv, fragment", [
    (["--scores", "missing.csv", "--out", "{out}"], "does not exist"),
    (["--scores", "{scores}", "--out", "{out}", "--zero_method", "bogus"], "invalid choice"),
    (["--scores", "{scores}", "--out", "{out}", "--groups", "Z"], "no reader in group(s) Z"),
    (["--scores", "{scores}"], "--out"),
])
def test_reader_study_usage_errors_in_process(tmp_path, capsys, argv, fragment):
    scores, out = _small_scores(tmp_path), tmp_path / "results"
    argv = [a.format(scores=scores, out=out) for a in argv]
    with pytest.raises(SystemExit) as stop:
        run(reader_study.main, reader_study.build_parser(), argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0]
    assert not out.exists()


def _volumes(root: Path, patients, sequences=("T1w",)) -> None:
    for p in patients:
        for t in ("LF", "IQT", "HF"):
            for s in sequences:
                image = nib.Nifti1Image(np.full((3, 3, 2), 1.0, np.float32), np.eye(4))
                image.header["descrip"] = f"{t} scanner".encode()
                (root / p).mkdir(parents=True, exist_ok=True)
                nib.save(image, root / p / f"{t}_{s}.nii.gz")


def test_design_study_with_images(tmp_path, capsys):
    (tmp_path / "patients.csv").write_text("patient\nP1\nP2\n")
    (tmp_path / "readers.csv").write_text("reader,reader_group\nR1,HF\nR2,LF\nR3,LF\n")
    _volumes(tmp_path / "images", ["P1", "P2"])
    out = tmp_path / "study"
    argv = ["--patients", str(tmp_path / "patients.csv"), "--readers",
            str(tmp_path / "readers.csv"), "--seed", "5", "--out", str(out),
            "--images", str(tmp_path / "images")]
    run(design_study.main, design_study.build_parser(), argv)
    key = pd.read_csv(out / "key" / "key.csv")
    assert len(key) == 2 * 2 * 3  # experiments × patients × image types
    copies = sorted((out / "images").rglob("*.nii.gz"))
    assert len(copies) == 12
    assert {c.parent.name for c in copies} == set(key["code"])
    assert all(nib.load(c).header["descrip"].item() == b"" for c in copies)
    assert not list((out / "images").rglob("*.csv")) and not list((out / "plan").rglob("key*"))
    # A second run into the same folder must not mix two plans.
    with pytest.raises(SystemExit):
        run(design_study.main, design_study.build_parser(), argv)
    assert "already holds" in capsys.readouterr().err


def test_design_study_missing_volume(tmp_path, capsys):
    (tmp_path / "patients.csv").write_text("patient\nP1\nP2\n")
    (tmp_path / "readers.csv").write_text("reader\nR1\n")
    _volumes(tmp_path / "images", ["P1"])
    out = tmp_path / "study"
    with pytest.raises(SystemExit):
        run(design_study.main, design_study.build_parser(),
            ["--patients", str(tmp_path / "patients.csv"), "--readers",
             str(tmp_path / "readers.csv"), "--seed", "5", "--out", str(out), "--images",
             str(tmp_path / "images")])
    assert "no volume for patient P2" in capsys.readouterr().err
    assert not out.exists()


def test_shipped_example_is_what_the_generator_writes(tmp_path):
    regenerated = tmp_path / "example.csv"
    example_scores(seed=0).to_csv(regenerated, index=False)
    assert regenerated.read_bytes() == EXAMPLE.read_bytes()
    table = pd.read_csv(EXAMPLE)
    assert table["reader"].str.startswith("synthetic_").all()


def test_staged_output_replaces_only_its_own_files(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "summary.csv").write_text("old")
    with staged_output_dir(out) as staging:
        (staging / "summary.csv").write_text("new")
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "summary.csv").read_text() == "new"
    with pytest.raises(RuntimeError):
        with staged_output_dir(out) as staging:
            (staging / "summary.csv").write_text("partial")
            raise RuntimeError("crash while writing")
    assert (out / "summary.csv").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_analysis_stands_alone():
    code = ("import sys, analysis.reader_study, analysis.design_study, analysis.example_data; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'jax', 'iqt', 'flax', "
            "'tensorflow', 'torch'}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_scores_file_with_nul_bytes_is_refused(tmp_path):
    scores = _small_scores(tmp_path)
    text = scores.read_bytes()
    scores.write_bytes(text[:200] + b"\0\0" + text[200:])
    result = _python_m("analysis.reader_study", "--scores", str(scores), "--out", str(tmp_path / "out"))
    _assert_contract(result, "NUL bytes")
    assert not (tmp_path / "out").exists()


SIGTERM_WHILE_STAGING = """
import os, signal, sys
from analysis._cli import ArgumentParser, run, staged_output_dir

def main(args):
    with staged_output_dir(args.out) as staging:
        (staging / "summary.csv").write_text("partial")
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pause()

parser = ArgumentParser()
parser.add_argument("--out")
run(main, parser, sys.argv[1:])
"""


def test_sigterm_while_staging_leaves_no_staging_folder_and_no_output(tmp_path):
    out = tmp_path / "results"
    result = subprocess.run([sys.executable, "-c", SIGTERM_WHILE_STAGING, "--out", str(out)], cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 143 and result.stderr.strip() == "terminated", result.stderr
    assert list(tmp_path.iterdir()) == []


def test_reader_study_never_replaces_its_scores_or_a_folder_named_like_an_output(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    scores = out / "summary.csv"
    scores.write_bytes(_small_scores(tmp_path).read_bytes())
    kept = scores.read_bytes()
    _assert_contract(_python_m("analysis.reader_study", "--scores", str(scores), "--out", str(out)),
                     "is where the output summary.csv goes")
    assert scores.read_bytes() == kept
    other = tmp_path / "other"
    (other / "report.md").mkdir(parents=True)
    _assert_contract(_python_m("analysis.reader_study", "--scores", str(_small_scores(tmp_path)), "--out",
                               str(other)), "folder report.md")
    assert [p.name for p in other.iterdir()] == ["report.md"]
