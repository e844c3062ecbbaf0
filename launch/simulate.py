"""Simulate a low-field volume from a high-field one.

    python -m launch.simulate --input HF.nii.gz [--gm GM.nii.gz --wm WM.nii.gz --csf CSF.nii.gz] \
        --output LF.nii.gz --config launch/configs/simulate.py[:FLAIR] --seed N [--slice_axis 2]

Simulates on the given intensities (nothing is normalised). Thick slices are
stacked along --slice_axis (default 2); the HF voxel size is the input's along
that axis, and the slice thickness and gap follow it (fractions of the slice
spacing r × voxel size). The tissue maps (all three or
none) are needed by every contrast model but `--config.sim.contrast=none`. The
LF volume is written with the slice convention's affine
(`iqt.data.nifti.lf_affine_from_hf`); the factor, the HF voxel size used and the
parameters drawn are printed as one JSON line.
The same seed gives the same output.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import jax
import numpy as np
from absl import flags
from ml_collections import config_flags

import simulators
from iqt import cli
from iqt.config_check import check_seed
from iqt.data import nifti
from iqt.errors import UserError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Simulator config: a file, or a shipped one by name, e.g. simulate:FLAIR.")
_INPUT = flags.DEFINE_string("input", None, "High-field NIfTI volume.")
_OUTPUT = flags.DEFINE_string("output", None, "Low-field NIfTI volume to write.")
_MAPS = {t: flags.DEFINE_string(t, None, f"{t.upper()} probability map on the input's grid.")
         for t in ("gm", "wm", "csf")}
_SEED = flags.DEFINE_integer("seed", 0, "Random seed of the parameters and the noise.")
_SLICE_AXIS = flags.DEFINE_integer("slice_axis", 2, "Array axis along which to simulate thick "
                                   "slices.", lower_bound=0, upper_bound=2)


def _load_tissue(hf: nifti.Volume) -> np.ndarray | None:
    given = {t: f.value for t, f in _MAPS.items() if f.value}
    if not given:
        return None
    if len(given) != 3:
        missing = sorted(set(_MAPS) - set(given))
        raise UserError(f"give all three tissue maps or none: --{' --'.join(missing)} missing")
    maps = {f"--{t}": nifti.load_volume(path, name=f"--{t}") for t, path in given.items()}
    nifti.check_same_grid(hf, maps)
    return np.stack([v.data for v in maps.values()], axis=-1)


def main(argv: Sequence[str]) -> None:
    del argv
    if not _INPUT.value or not _OUTPUT.value or _CONFIG.value is None:
        raise UserError("--input, --output and --config are required")
    try:
        _simulate(_CONFIG.value.sim)
    except simulators.SimulatorInputError as e:
        raise UserError(str(e)) from None


def _simulate(config) -> None:
    simulators.SimulatorSpec.from_config(config)   # a bad config fails before any file is read
    check_seed(_SEED.value, "--seed")
    nifti.check_nifti_output(_OUTPUT.value, "--output", {"--input": _INPUT.value,
                                                         **{f"--{t}": f.value for t, f in _MAPS.items()}})
    hf = nifti.load_volume(_INPUT.value, name="--input")
    tissue = _load_tissue(hf)
    axis = nifti.find_slice_axis(hf.voxel_sizes_mm, _SLICE_AXIS.value)
    config.hf_voxel_mm = hf.voxel_sizes_mm[axis]
    image = np.moveaxis(hf.data, axis, -1)
    if tissue is not None:
        tissue = np.moveaxis(tissue, axis, -2)
    theta_key, noise_key = jax.random.split(jax.random.key(_SEED.value))
    theta = jax.jit(lambda key: simulators.sample_parameters(key, config, 1))(theta_key)
    lf = simulators.simulate_volume(noise_key, image, tissue, theta, config)
    lf = np.moveaxis(np.asarray(lf), -1, axis)
    nifti.save_volume(_OUTPUT.value, lf, nifti.lf_affine_from_hf(hf.affine, config.factor, axis),
                      hf.header)
    drawn = {k: round(float(v[0]), 6) for k, v in sorted(theta.items())}
    print(json.dumps({"factor": config.factor, "hf_voxel_mm": config.hf_voxel_mm, **drawn}))


if __name__ == "__main__":
    cli.run(main, config_dir=Path(__file__).parent / "configs")
