"""What a training run tells people: plain log lines off a terminal, and TensorBoard events
(images, text, hyperparameters, learning rate, the drawn simulator parameters only)."""
import json
import re

import jax
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

import simulators
from simulators import distributions
from iqt.metric_writers import drawn_simulator_parameters
from iqt.train_step import learning_rate_schedule
from launch.configs import demo
from tests.training.helpers import run_train

STEPS, LOG_EVERY, EVAL_EVERY = 6, 2, 3  # the tiny config's steps and validations


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("logs") / "run"
    result = run_train(workdir, f"--config.train.log_every={LOG_EVERY}")  # output piped: not a terminal
    events = EventAccumulator(str(workdir / "tensorboard"), size_guidance={"images": 0, "tensors": 0, "scalars": 0})
    events.Reload()
    return result, events


def test_a_pipe_gets_one_line_per_log_step_and_per_validation(tiny_run):
    result, _ = tiny_run
    assert "\r" not in result.stdout and "\r" not in result.stderr
    steps = [int(s) for s in re.findall(r"^step (\d+)/6  loss [\d.e+-]+  [\d.e+-]+ steps/s  ETA \d+:\d\d:\d\d$",
                                         result.stdout, re.M)]
    assert steps == list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))
    validations = re.findall(r"^step (\d+)/6  validation: loss \S+  psnr \S+  ssim \S+$", result.stdout, re.M)
    assert [int(s) for s in validations] == list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))


def test_tensorboard_holds_the_validation_figure_at_every_evaluation(tiny_run):
    _, events = tiny_run
    images = events.Images("validation/patch")
    assert [i.step for i in images] == list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))
    assert all(i.width > 100 and i.height > 100 and i.encoded_image_string[:4] == b"\x89PNG" for i in images)


def test_tensorboard_holds_the_resolved_config_as_text_and_hyperparameters(tiny_run):
    _, events = tiny_run
    text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    config = json.loads(text.strip().strip("`"))
    assert config["train"]["num_steps"] == STEPS and config["train"]["log_every"] == LOG_EVERY
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["train.batch_size"].number_value == config["train"]["batch_size"]
    assert hparams["sim.noise"].string_value == config["sim"]["noise"]
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} == {"validation/loss", "validation/psnr",
                                                             "validation/ssim"}


def test_tensorboard_holds_the_learning_rate_of_each_logged_step(tiny_run):
    _, events = tiny_run
    train = demo.get_config("tiny").train
    logged = events.Scalars("train/learning_rate")
    assert [s.step for s in logged] == list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))
    schedule = learning_rate_schedule(train)                 # the step's lr: that of its update
    expected = [float(schedule(s.step - 1)) for s in logged]
    np.testing.assert_allclose([s.value for s in logged], expected, rtol=1e-6)


def test_only_the_drawn_simulator_parameters_are_logged(tiny_run):
    _, events = tiny_run
    logged = {t.removeprefix("train/theta_") for t in events.Tags()["scalars"] if t.startswith("train/theta_")}
    assert logged == set(drawn_simulator_parameters(demo.get_config("tiny").sim))


@pytest.mark.parametrize("change", ["default", "published", "thickness", "fixed_snr", "deterministic"])
def test_drawn_parameters_are_exactly_those_that_vary_between_samples(change):
    sim = simulators.default_config("T1w", 8, protocol="design" if change == "default" else "published")
    if change == "thickness":
        sim.parameters.slice_thickness_fraction = distributions.uniform(0.7, 1.0)
    elif change == "fixed_snr":
        sim.snr = distributions.fixed_pair((30.0, 40.0))
    elif change == "deterministic":
        sim.deterministic = True
    theta = simulators.sample_parameters(jax.random.key(0), sim, 16)
    varying = {name for name, values in theta.items() if np.ptp(np.asarray(values)) > 0}
    assert set(drawn_simulator_parameters(sim)) == varying
