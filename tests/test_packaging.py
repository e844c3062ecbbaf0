"""The installed environment matches setup.cfg's exact pins and holds no TF/PyTorch."""
import configparser
import importlib.metadata as md
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PINNED = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain", "tensorflow-datasets", "array-record")


def _requirements() -> dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    reqs = {}
    for line in cfg["options"]["install_requires"].strip().splitlines():
        name, _, version = line.strip().partition("==")
        reqs[name.lower()] = version
    return reqs


def test_fast_moving_apis_are_pinned_exactly():
    reqs = _requirements()
    for name in PINNED:
        assert reqs.get(name), f"{name} must be pinned with == in setup.cfg"


@pytest.mark.parametrize("name", PINNED)
def test_installed_versions_match_the_pins(name):
    assert md.version(name) == _requirements()[name]


@pytest.mark.parametrize("forbidden", ["tensorflow", "tensorflow-cpu", "tf-nightly", "torch"])
def test_runtime_pulls_neither_tensorflow_nor_pytorch(forbidden):
    with pytest.raises(md.PackageNotFoundError):
        md.version(forbidden)
