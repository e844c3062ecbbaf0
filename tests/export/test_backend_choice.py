"""`--backend auto` on a CPU: every candidate timed once on a probe tile, the fastest kept and cached."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from iqt.export import backend_choice
from iqt.inference import Predictor

DELAYS = {"openvino": 0.03, "jax": 0.0, "onnxruntime": 0.06}   # seconds per call: jax is the fastest


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache" / "cpu_backends.json"
    monkeypatch.setenv(backend_choice.CACHE_ENV, str(path))
    monkeypatch.delenv(backend_choice.CHOICE_ENV, raising=False)
    return path


def counting_build(built: list[str]):
    def build(name: str) -> Predictor:
        built.append(name)

        def predict(lf):
            time.sleep(DELAYS[name])
            return np.repeat(lf, 2, axis=-1)
        return Predictor(predict, 2, (16, 16, 2))
    return build


def test_the_fastest_candidate_is_chosen_and_the_timings_cached(cache):
    built = []
    name, predictor = backend_choice.fastest(list(DELAYS), counting_build(built), {"network": "a"})
    assert name == "jax" and built == list(DELAYS)
    assert predictor.predict_fn(np.ones((1, 16, 16, 2))).shape == (1, 16, 16, 4)
    entry = json.loads(cache.read_text()).popitem()[1]
    assert entry["choice"] == "jax"
    assert entry["probe_lf"] == [128, 128, 8]
    timings = entry["seconds_per_probe"]
    assert timings["jax"] < timings["openvino"] < timings["onnxruntime"]
    assert timings["openvino"] >= DELAYS["openvino"]


def test_a_cached_choice_builds_only_the_winner_and_another_network_is_timed_again(cache):
    backend_choice.fastest(list(DELAYS), counting_build([]), {"network": "a"})
    again = []
    assert backend_choice.fastest(list(DELAYS), counting_build(again), {"network": "a"})[0] == "jax"
    assert again == ["jax"]
    other = []
    backend_choice.fastest(list(DELAYS), counting_build(other), {"network": "b"})
    assert other == list(DELAYS)
    assert len(json.loads(cache.read_text())) == 2


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]", '"text"', "null", "\xff\xfe", '{"k": [1]}'])
def test_a_damaged_cache_is_set_aside_with_a_warning_and_timed_again(cache, damage, caplog):
    cache.parent.mkdir()
    cache.write_bytes(damage.encode("latin-1"))
    built = []
    assert backend_choice.fastest(list(DELAYS), counting_build(built), {"network": "a"})[0] == "jax"
    assert built == list(DELAYS)
    assert json.loads(cache.read_text()).popitem()[1]["choice"] == "jax"
    whole_file_damaged = damage != '{"k": [1]}'   # a bad entry alone is ignored, the rest kept
    aside = cache.with_name(cache.name + ".damaged")
    assert aside.exists() == whole_file_damaged
    if whole_file_damaged:
        assert aside.read_bytes() == damage.encode("latin-1")
        assert sum("damaged" in r.getMessage() for r in caplog.records) == 1


def test_one_candidate_or_a_forced_choice_times_nothing(cache, monkeypatch):
    built = []
    assert backend_choice.fastest(["onnxruntime"], counting_build(built), {})[0] == "onnxruntime"
    monkeypatch.setenv(backend_choice.CHOICE_ENV, "openvino")
    assert backend_choice.fastest(list(DELAYS), counting_build(built), {})[0] == "openvino"
    assert built == ["onnxruntime", "openvino"] and not cache.exists()


@pytest.mark.parametrize("multiple,expected", [((16, 16, 2), (128, 128, 8)), ((48, 48, 3), (144, 144, 9))])
def test_the_probe_tile_is_a_multiple_of_the_network_input(multiple, expected):
    assert backend_choice.probe_shape(multiple) == expected


def test_a_runtime_that_cannot_run_the_network_is_passed_over_but_the_first_error_stops(cache, capsys):
    from iqt.errors import UserError
    working = counting_build([])

    def build(name):
        if name == "onnxruntime":
            raise UserError("does not run with onnxruntime")
        return working(name)
    assert backend_choice.fastest(list(DELAYS), build, {"network": "a"})[0] == "jax"
    assert json.loads(cache.read_text()).popitem()[1]["seconds_per_probe"]["onnxruntime"].startswith("not usable")

    def broken(name):
        raise UserError("RUN holds no checkpoint")
    capsys.readouterr()
    with pytest.raises(UserError, match="no checkpoint"):
        backend_choice.fastest(list(DELAYS), broken, {"network": "b"})
    assert capsys.readouterr().err == ""   # the error is the command's only line
    assert len(json.loads(cache.read_text())) == 1
