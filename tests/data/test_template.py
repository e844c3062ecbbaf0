"""iqt.data.template: the MNI152 2009a template read from nilearn's shipped files."""
from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from iqt.data import template

SHAPE = (197, 233, 189)


@pytest.fixture(scope="module")
def subject():
    return template.load_template()


@pytest.fixture(scope="module")
def raw():
    """The shipped files read with nibabel directly: t1, gm, wm arrays and the t1 affine."""
    images = {kind: nib.load(template.template_path(kind)) for kind in ("t1", "gm", "wm")}
    arrays = {kind: np.asarray(image.dataobj) for kind, image in images.items()}
    return arrays, images["t1"].affine


def test_files_come_from_the_installed_nilearn_package():
    shipped = {str(f.locate().resolve()) for f in importlib.metadata.files("nilearn")
               if f.name.startswith("mni_icbm152_")}
    for kind in ("t1", "gm", "wm"):
        path = template.template_path(kind)
        assert path.is_file() and str(path.resolve()) in shipped


OFFLINE_LOAD = """
import socket, sys
def refuse(*args, **kwargs):
    raise OSError("network access attempted")
socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse
from iqt.data.template import load_template
print(load_template().image.shape)
print(sorted(m for m in sys.modules if m.split('.')[0] == 'nilearn'))
"""


def test_loads_offline_without_importing_nilearn():
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", OFFLINE_LOAD], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == [str(SHAPE), "[]"]


def test_shapes_dtypes_and_affine(subject, raw):
    _, affine = raw
    assert subject.image.shape == SHAPE and subject.image.dtype == np.float32
    assert subject.tissue.shape == SHAPE + (3,) and subject.tissue.dtype == np.float32
    np.testing.assert_array_equal(subject.affine, affine)
    assert subject.voxel_sizes_mm == (1.0, 1.0, 1.0)
    assert subject.subject_id == template.TEMPLATE_ID


def test_value_ranges_and_tissue_sum_at_most_one(subject):
    assert subject.image.min() == 0.0 and 100.0 < subject.image.max() <= 255.0
    assert subject.tissue.min() >= 0.0 and subject.tissue.max() <= 1.0
    assert subject.tissue.sum(axis=-1).max() <= 1.0 + 1e-6
    for t in range(3):  # every tissue is present with confidence somewhere
        assert subject.tissue[..., t].max() > 0.9


def test_tissue_maps_follow_the_files_and_csf_rule(subject, raw):
    arrays, _ = raw
    gm, wm = arrays["gm"] / 255.0, arrays["wm"] / 255.0
    np.testing.assert_allclose(subject.tissue[..., 0], gm, atol=1e-6)
    np.testing.assert_allclose(subject.tissue[..., 1], wm, atol=1e-6)
    brain = arrays["t1"] > 0
    np.testing.assert_allclose(subject.tissue[..., 2], np.clip(brain - gm - wm, 0, 1), atol=1e-6)
    assert not subject.tissue[..., 2][~brain].any()


def test_load_template_is_cached_and_read_only(subject):
    assert template.load_template() is subject
    with pytest.raises(ValueError):
        subject.image[0, 0, 0] = 1.0


def test_gm_wm_above_one_are_capped_so_the_sum_stays_at_most_one():
    gm = np.array([0.8, 0.3, 0.0, 0.6], np.float32)
    wm = np.array([0.6, 0.3, 0.0, 0.4], np.float32)
    brain = np.array([True, True, True, False])
    capped_gm, capped_wm = template._cap_sum_at_one(gm, wm)
    np.testing.assert_allclose(capped_gm, [0.8 / 1.4, 0.3, 0.0, 0.6], rtol=1e-6)
    np.testing.assert_allclose(capped_wm, [0.6 / 1.4, 0.3, 0.0, 0.4], rtol=1e-6)
    csf = template.csf_from_brain(brain, capped_gm, capped_wm)
    np.testing.assert_allclose(csf, [0.0, 0.4, 1.0, 0.0], atol=1e-6)
    assert (capped_gm + capped_wm + csf).max() <= 1.0 + 1e-6
