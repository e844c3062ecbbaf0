"""Speed of the low-field simulator: training batches, and whole volumes against scipy.

    python benchmarks/simulator.py [--reps 5] [--out results.json]

(a) A training batch: 32 HF patches (32, 32, 32 + 2m) with tissue maps → LF
    (32, 32, 4), parameters drawn and LF simulated in one jitted call (×8, T1w
    reference config; also with the contrast on the HF grid and with in-plane
    blur). Milliseconds per batch, median over --reps after a warm-up.
(b) A whole 260 × 311 × 260 volume at 0.7 mm, ×8: the JAX blur + slice sampling
    against scipy (`gaussian_filter1d`, mode 'reflect', truncate 4, then linear
    interpolation at the LF centres r·j + (r − 1)/2, which fall between HF
    slices), and the full reference pipeline (image and 3 maps blurred, contrast,
    Gaussian noise) against the same in numpy/scipy. Seconds, median over --reps.

JSON on stdout (and in --out). Run alone: two benchmarks at once corrupt each other.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import emit  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402

import simulators  # noqa: E402
from simulators import distributions as dist  # noqa: E402

VOLUME_SHAPE = (260, 311, 260)
FACTOR = 8


def timed(fn, reps: int) -> tuple[float, float]:
    """(first call s, median of `reps` later calls s); `fn` must block until done."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def random_tissue(rng, shape) -> np.ndarray:
    maps = rng.random(shape + (3,), dtype=np.float32)
    return maps / maps.sum(-1, keepdims=True)


def smooth_volume(shape) -> np.ndarray:
    """0.5 + 0.4 · a product of slow sinusoids (cheap to build; the timing ignores content)."""
    x, y, z = (np.arange(n, dtype=np.float32) for n in shape)
    return (0.5 + 0.4 * np.sin(x / 7.0)[:, None, None] * np.cos(y / 9.0)[None, :, None]
            * np.sin(z / 5.0)[None, None, :]).astype(np.float32)


def batch_benchmark(reps: int) -> dict:
    variants = {"reference": {}, "contrast_on_hf_grid": {"contrast_grid": "hf"},
                "with_inplane_blur": {}}
    results = {}
    rng = np.random.default_rng(0)
    for name, fields in variants.items():
        config = simulators.default_config("T1w", FACTOR)
        config.update(fields)
        if name == "with_inplane_blur":
            config.parameters.inplane_fwhm_mm = dist.uniform(0.0, 1.4)
        m = simulators.required_margin(config)
        shape = (32, 32, 32, 32 + 2 * m)
        hf = jnp.asarray(rng.random(shape, dtype=np.float32))
        tissue = jnp.asarray(random_tissue(rng, shape))
        means = jnp.tile(jnp.float32([0.6, 0.9, 0.3]), (32, 1))

        @jax.jit
        def step(key, hf, tissue, means):
            params_key, noise_key = jax.random.split(key)
            params = simulators.sample_parameters(params_key, config, 32)
            return simulators.simulate_batch(noise_key, hf, tissue, means, params, config)

        key = jax.random.key(0)
        first, median = timed(lambda: step(key, hf, tissue, means).block_until_ready(), reps)
        results[name] = {"hf_shape": list(shape), "lf_shape": [32, 32, 32, 32 // FACTOR],
                         "margin": m, "ms_per_batch_median": 1e3 * median,
                         "first_call_incl_compile_s": first}
    return results


def lf_centres_linear(blurred: np.ndarray, n_lf: int) -> np.ndarray:
    """Linear interpolation at r·j + (r − 1)/2 (half-way between two HF slices for even r)."""
    centres = simulators.lf_slice_centres(n_lf, FACTOR)
    below = np.floor(centres).astype(int)
    frac = (centres - below).astype(np.float32)
    return (1 - frac) * blurred[..., below] + frac * blurred[..., below + 1]


def scipy_blur_and_sample(volume: np.ndarray, sigma_voxels: float, n_lf: int) -> np.ndarray:
    blurred = ndi.gaussian_filter1d(volume, sigma_voxels, axis=-1, mode="reflect", truncate=4.0)
    return lf_centres_linear(blurred, n_lf)


def scipy_reference_pipeline(hf, tissue, means, params, sigma_voxels, n_lf, rng) -> np.ndarray:
    lf = scipy_blur_and_sample(hf, sigma_voxels, n_lf)
    maps = [scipy_blur_and_sample(np.ascontiguousarray(tissue[..., t]), sigma_voxels, n_lf)
            for t in range(3)]
    sigma = means[0] / params["snr_gm"]
    k = params["snr_wm"] * sigma / means[1]
    lf = (maps[0] + k * maps[1] + maps[2]) * lf
    return lf + sigma * rng.standard_normal(lf.shape, dtype=np.float32)


def volume_benchmark(reps: int) -> dict:
    rng = np.random.default_rng(1)
    hf = smooth_volume(VOLUME_SHAPE)
    tissue = random_tissue(rng, VOLUME_SHAPE)
    n_lf = VOLUME_SHAPE[-1] // FACTOR
    # The published protocol (fixed widths, no in-plane blur), as scipy computes it: no background
    # removal, so that the two pipelines compute the same thing.
    reference = simulators.default_config("T1w", FACTOR, protocol="published")
    reference.lf_brain_threshold = 0.0
    blur_only = simulators.default_config("T1w", FACTOR, protocol="published")
    blur_only.contrast, blur_only.noise = "none", "none"
    thickness = reference.parameters.slice_thickness_fraction.value * FACTOR * reference.hf_voxel_mm
    sigma_voxels = thickness / reference.hf_voxel_mm / (2 * np.sqrt(2 * np.log(2)))
    means = simulators.tissue_means(hf, tissue, 0.5)
    params = {k: v[0] for k, v in simulators.mean_parameters(reference, 1).items()}
    hf_dev, tissue_dev = jnp.asarray(hf), jnp.asarray(tissue)
    key = jax.random.key(0)

    def jax_run(config, tissue_arg):
        return lambda: simulators.simulate_volume(
            key, hf_dev, tissue_arg, params, config, tissue_means=means).block_until_ready()

    jax_blur = timed(jax_run(blur_only, None), reps)
    jax_full = timed(jax_run(reference, tissue_dev), reps)
    scipy_blur = timed(lambda: scipy_blur_and_sample(hf, sigma_voxels, n_lf), reps)
    host_params = {k: float(v) for k, v in params.items()}
    scipy_full = timed(lambda: scipy_reference_pipeline(
        hf, tissue, means, host_params, sigma_voxels, n_lf, rng), reps)
    jax_lf = np.asarray(simulators.simulate_volume(key, hf_dev, None, params, blur_only,
                                                   tissue_means=means))
    difference = np.abs(jax_lf - scipy_blur_and_sample(hf, sigma_voxels, n_lf)).max()
    return {
        "volume_shape": list(VOLUME_SHAPE), "hf_voxel_mm": 0.7, "factor": FACTOR,
        "lf_shape": [*VOLUME_SHAPE[:2], n_lf],
        "blur_and_sampling": {
            "jax_s_median": jax_blur[1], "jax_first_call_incl_compile_s": jax_blur[0],
            "scipy_s_median": scipy_blur[1], "speedup_scipy_over_jax": scipy_blur[1] / jax_blur[1],
            "max_abs_difference_vs_scipy_linear": float(difference),   # smooth volume in [0.1, 0.9]
        },
        "reference_pipeline_image_and_3_maps": {
            "jax_s_median": jax_full[1], "jax_first_call_incl_compile_s": jax_full[0],
            "scipy_numpy_s_median": scipy_full[1],
            "speedup_scipy_over_jax": scipy_full[1] / jax_full[1],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = {
        "benchmark": "simulator",
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(), "cpu_count": os.cpu_count(),
        "jax": jax.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
        "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
        "reps": args.reps,
        "batch_of_32_patches": batch_benchmark(args.reps),
        "whole_volume": volume_benchmark(max(1, min(args.reps, 3))),
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
