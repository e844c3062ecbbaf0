"""setup.cfg holds compatible ranges, constraints.txt the tested versions; no TF/PyTorch at run time."""
import configparser
import importlib.metadata as md
import os
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
JAX_ECOSYSTEM = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain")
# Set when the suite runs against the newest versions the ranges admit, not the pinned ones.
NEWEST = bool(os.environ.get("IQT_TEST_NEWEST_VERSIONS"))


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-")


def _requirements() -> dict[str, Requirement]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options"]["install_requires"].strip().splitlines()
    for extra in cfg["options.extras_require"].values():
        lines += extra.strip().splitlines()
    reqs = [Requirement(line) for line in lines if line.strip() and not line.strip().startswith("#")]
    return {_canonical(r.name): r for r in reqs}


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[_canonical(name)] = version
    return pins


def test_every_requirement_is_a_range_not_a_pin():
    for name, req in _requirements().items():
        ops = {spec.operator for spec in req.specifier}
        assert ">=" in ops and "==" not in ops, f"{name}: {req.specifier}"


@pytest.mark.parametrize("name", JAX_ECOSYSTEM)
def test_jax_ecosystem_is_capped_below_a_minor_release(name):
    caps = [Version(s.version) for s in _requirements()[name].specifier if s.operator == "<"]
    assert caps and all(v.micro == 0 for v in caps), f"{name} needs an upper bound X.Y (a minor release)"


def test_the_constraints_pin_every_requirement_inside_its_range():
    reqs, pins = _requirements(), _constraints()
    assert set(reqs) <= set(pins)
    for name, req in reqs.items():
        assert Version(pins[name]) in req.specifier, f"{name}=={pins[name]} is outside {req.specifier}"


def test_the_ranges_admit_what_gpu_images_ship():
    reqs = _requirements()
    assert Version("0.11.2") in reqs["jax"].specifier and Version("0.11.2") in reqs["jaxlib"].specifier
    assert Version("0.12.10") in reqs["flax"].specifier


@pytest.mark.skipif(NEWEST, reason="running against the newest versions the ranges admit")
@pytest.mark.parametrize("name", sorted(_constraints()))
def test_installed_versions_equal_the_constraints(name):
    assert md.version(name) == _constraints()[name]


@pytest.mark.parametrize("forbidden", ["tensorflow", "tensorflow-cpu", "tf-nightly", "torch"])
def test_runtime_pulls_neither_tensorflow_nor_pytorch(forbidden):
    with pytest.raises(md.PackageNotFoundError):
        md.version(forbidden)
