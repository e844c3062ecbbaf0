"""Test-time adaptation (`iqt.adaptation`): its pieces against hand computations, and the whole
recipe on a tiny network (zero steps is plain enhancement; the same seed, the same output)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from iqt import adaptation
from iqt.errors import UserError
from iqt.infer_files import enhance_files
from iqt.inference import enhance_lf, load_predictor
from tests.cli_helpers import assert_user_error
from tests.random_run import random_run

ROOT = Path(__file__).resolve().parents[2]


def _three_tissues(seed: int = 0):
    """An image of three intensity classes (labels 0 GM, 1 WM, 2 CSF) inside a brain, and the labels."""
    gen = np.random.default_rng(seed)
    labels = gen.integers(0, 3, (30, 30, 30))
    brain = np.zeros(labels.shape, bool)
    brain[3:-3, 3:-3, 3:-3] = True
    return labels, brain, gen


@pytest.mark.parametrize("sequence, means", [("T1w", (0.7, 1.0, 0.3)), ("T2w", (0.7, 0.4, 1.2)),
                                             ("FLAIR", (0.9, 0.6, 0.1))])
def test_tissue_maps_name_the_mixture_components_by_the_sequences_intensity_order(sequence, means):
    labels, brain, gen = _three_tissues()
    image = np.asarray(means)[labels] + 0.03 * gen.standard_normal(labels.shape)
    image[~brain] = 0
    maps = adaptation.tissue_maps(image, brain, sequence)
    assert maps.shape == image.shape + (3,) and maps.dtype == np.float32
    assert np.mean(maps[brain].argmax(-1) == labels[brain]) > 0.99
    np.testing.assert_allclose(maps[brain].sum(-1), 1.0, atol=1e-5)
    assert not maps[~brain].any()


def test_tissue_maps_refuse_an_unknown_sequence_and_a_brain_too_small_to_split():
    labels, brain, _ = _three_tissues()
    with pytest.raises(UserError, match="PD"):
        adaptation.tissue_maps(labels.astype(float), brain, "PD")
    with pytest.raises(UserError, match="too few"):
        adaptation.tissue_maps(labels.astype(float), np.zeros_like(brain), "T1w")


def test_training_volumes_move_each_in_plane_axis_to_the_slice_position():
    image = np.random.default_rng(1).standard_normal((5, 6, 7)).astype(np.float32)
    tissue = np.random.default_rng(2).random((5, 6, 7, 3)).astype(np.float32)
    (along_x, tissue_x), (along_y, tissue_y) = adaptation.training_volumes(image, tissue)
    assert along_x.shape == (6, 7, 5) and along_y.shape == (5, 7, 6)
    for i, j, k in [(0, 0, 0), (4, 5, 6), (2, 3, 1)]:
        assert along_x[j, k, i] == image[i, j, k] and along_y[i, k, j] == image[i, j, k]
        np.testing.assert_array_equal(tissue_x[j, k, i], tissue[i, j, k])
        np.testing.assert_array_equal(tissue_y[i, k, j], tissue[i, j, k])


def test_a_small_volume_is_padded_with_background_to_hold_a_whole_patch():
    image = np.arange(4 * 10 * 6, dtype=np.float32).reshape(4, 10, 6) + 1
    tissue = np.ones((4, 10, 6, 3), np.float32)
    padded, padded_tissue = adaptation.pad_for_patches(image, tissue, (7, 8, 9))
    assert padded.shape == (8, 10, 10) and padded_tissue.shape == (8, 10, 10, 3)
    np.testing.assert_array_equal(padded[2:6, :, 2:8], image)        # centred; the long axis untouched
    assert padded.sum() == image.sum() and padded_tissue.sum() == tissue.sum()   # the rest is background
    same, _ = adaptation.pad_for_patches(image, tissue, (4, 10, 6))
    assert same.shape == image.shape


def test_intensity_fit_finds_the_affine_map_between_two_images():
    reference = np.random.default_rng(3).random(500) + 0.5
    changed = 2.5 * reference - 0.7
    slope, intercept = adaptation.intensity_fit(changed, reference)
    assert slope == pytest.approx(1 / 2.5) and intercept == pytest.approx(0.7 / 2.5)


@pytest.mark.parametrize("steps", [-1, True, 2.5, "3"])
def test_check_steps_refuses_what_is_not_a_whole_number_of_steps(steps, tmp_path):
    with pytest.raises(UserError, match="--adapt"):
        adaptation.check_steps(steps, tmp_path)


def test_check_steps_refuses_an_exported_network(tmp_path):
    network = tmp_path / "model.onnx"
    network.write_bytes(b"onnx")
    with pytest.raises(UserError, match="work directory"):
        adaptation.check_steps(3, network)
    assert adaptation.check_steps(0, network) == 0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("adapt") / "run"
    random_run(workdir)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in (40, 40, 6)], indexing="ij"))
    texture = np.cos(9 * grid[0]) * np.sin(7 * grid[1] + 5 * grid[2])
    lf = np.where((grid ** 2).sum(0) < 0.9, 60 + 25 * texture, 0).astype(np.float32)
    return adaptation.Network.from_run(workdir), load_predictor(workdir)[0], lf, workdir


def test_zero_steps_is_plain_enhancement(tiny):
    network, predictor, lf, _ = tiny
    plain = enhance_lf(lf, predictor, progress=False)
    np.testing.assert_allclose(adaptation.enhance_adapted(lf, predictor, network, 0, progress=False), plain,
                               atol=1e-5 * float(np.abs(plain).max()))


def test_a_few_steps_change_the_output_and_the_same_seed_repeats_it(tiny):
    network, predictor, lf, _ = tiny
    lines = []
    first = adaptation.enhance_adapted(lf, predictor, network, 2, progress=False, report=lines.append)
    again = adaptation.enhance_adapted(lf, predictor, network, 2, progress=False)
    assert np.array_equal(first, again)
    plain = enhance_lf(lf, predictor, progress=False)
    assert first.shape == plain.shape and np.isfinite(first).all() and (first >= 0).all()
    assert np.abs(first - plain).max() > 1e-4 * np.abs(plain).max()   # float noise: 1e-7 of it
    beyond = np.repeat(~ndimage.binary_dilation(lf > 0, np.ones((1, 1, 3), bool)), 8, axis=-1)
    np.testing.assert_array_equal(first[beyond], plain[beyond])   # the background is not the network's
    assert lines and "2 steps" in lines[0]


def test_launch_infers_files_are_enhanced_by_the_adapted_network_and_by_tta(tiny, tmp_path, capsys):
    _, _, lf, workdir = tiny
    affine = np.diag([-1.0, 1.0, 8.0, 1.0])
    nib.save(nib.Nifti1Image(lf, affine), tmp_path / "lf.nii.gz")
    for name, steps, tta in (("plain", 0, "none"), ("adapted", 2, "none"), ("tta", 0, "flips")):
        enhance_files([str(tmp_path / "lf.nii.gz")], str(tmp_path / f"{name}.nii.gz"), workdir, backend="jax",
                      progress=False, adapt_steps=steps, tta=tta)
    plain, adapted, averaged = (nib.load(tmp_path / f"{n}.nii.gz") for n in ("plain", "adapted", "tta"))
    for other in (adapted, averaged):
        assert other.shape == plain.shape == (40, 40, 48)
        np.testing.assert_allclose(other.affine, plain.affine)
        assert not np.allclose(other.get_fdata(), plain.get_fdata())
    out = capsys.readouterr().out
    assert "adapted to the scan in 2 steps" in out and "averaged over its 8 flips" in out


def test_launch_infer_refuses_to_adapt_an_exported_network_in_one_line(tmp_path):
    network = tmp_path / "model.onnx"
    network.write_bytes(b"not read")
    nib.save(nib.Nifti1Image(np.ones((8, 8, 2), np.float32), np.diag([1.0, 1.0, 8.0, 1.0])), tmp_path / "lf.nii.gz")
    result = subprocess.run([sys.executable, "-m", "launch.infer", "--model", str(network), "--adapt", "3",
                             "--input", str(tmp_path / "lf.nii.gz"), "--output", str(tmp_path / "out.nii.gz")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert_user_error(result, "--adapt", "work directory")
    assert not (tmp_path / "out.nii.gz").exists()
