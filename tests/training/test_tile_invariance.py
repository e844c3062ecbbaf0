"""A trained network enhances a volume alike whatever the tiles and the batch (issue: seams)."""
from __future__ import annotations

import jax
import numpy as np
import pytest

import simulators
from iqt import evaluation, inference, metrics
from iqt.data import splits
from iqt.train import train_and_evaluate
from iqt.interpolation import interpolate_slices
from launch.configs import demo
from tests.conftest import slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """demo:tiny on 4-slice patches, trained for 60 steps (seconds): about as good as cubic splines."""
    config = demo.get_config("tiny")
    config.model.base_features = 4
    config.data.patch_size_hf = (16, 16, 32)
    config.train.num_steps, config.train.eval_every, config.train.checkpoint_every = 60, 60, 60
    workdir = tmp_path_factory.mktemp("tile_run")
    train_and_evaluate(config, workdir)
    return inference.load_predictor(workdir, "latest")


def _test_slab(config):
    subject = splits.load_split_subjects(config.data, config.data.test_split)[0]
    image, tissue = subject.image[60:132, :, 40:136], subject.tissue[60:132, :, 40:136]   # 72 x 72 x 96
    sim = evaluation.setting_config("mean", config.sim)
    lf = simulators.simulate_volume(jax.random.key(0), image, tissue, evaluation.setting_parameters(sim), sim,
                                    tissue_means=subject.tissue_means)
    return np.asarray(lf), np.asarray(simulators.hf_object(image, tissue, sim.lf_brain_threshold))


@slow   # trains a network (about 45 s); tests/inference/test_end_to_end.py checks tiling with a random one
def test_tile_thickness_and_batch_size_do_not_change_the_enhanced_volume(trained):
    predictor, config = trained
    lf, truth = _test_slab(config)
    assert lf.shape[-1] == 12
    results = {}
    for slices in (4, 8, 12):
        for batch_size in (1, 3):
            hf = inference.enhance_lf(lf, predictor, tile_lf=(32, 32, slices), margin_lf=(3, 3, 1),
                                      batch_size=batch_size, progress=False)
            results[slices, batch_size] = hf
    for slices in (4, 8, 12):   # the batch only groups tiles: identical to float rounding
        np.testing.assert_allclose(results[slices, 1], results[slices, 3], atol=1e-5)
    psnr = {s: float(metrics.psnr(truth, results[s, 1])) for s in (4, 8, 12)}
    assert max(psnr.values()) - min(psnr.values()) < 0.3, psnr
    cubic = float(metrics.psnr(truth, interpolate_slices(lf, predictor.factor, 3)))
    assert min(psnr.values()) > cubic - 1.5, (psnr, cubic)    # trained: not far from cubic splines
    assert all(hf.min() >= 0.0 for hf in results.values())
