"""Test-time adaptation: the trained network fine-tuned on the very scan it enhances (after SMORE).

Why. A network trained on one template learns that template's anatomy: on an
unseen brain it gains far less over cubic splines than on its own template
(docs/results/generalisation_levers.md). Yet each low-field scan carries its own
anatomy at high resolution in-plane (1 mm) and only its slice axis is coarse
(6 mm). Zhao et al. (SMORE, IEEE TMI 2021) train on the scan's in-plane
directions, degraded to look like its slice direction, to super-resolve that
same scan; this module does so for the trained stochastic-IQT network.

Recipe (`enhance_adapted`; a volume's slice axis last, x and y in-plane):

1. Enhance the scan with the trained network: Ŷ on the HF grid, brain-mean scale.
2. Tissue maps of Ŷ: a three-class Gaussian mixture of its brain intensities
   (GM, WM, CSF told apart by the sequence's intensity order), as the
   simulator's contrast model needs them.
3. Training volumes: Ŷ with x, then y, moved to the slice position (`training_volumes`).
   Along their new slice axis lies the scan's own 1 mm in-plane detail; their
   middle axis is the scan's slice axis as the network estimated it.
4. Fine-tune: `steps` Adam steps at a constant `learning_rate` on patches of the
   run's training size from those volumes (at least `MIN_BRAIN_FRACTION` brain), simulated by the run's own
   simulator inside the jitted step (`iqt.train_step.train_step`: θ per sample,
   flips), so input and target go through the same low-field physics as in training.
5. BatchNorm's statistics re-measured on large simulated patches of the volumes,
   when the run calibrates them (`train.bn_calibration_patch_hf`, iqt.bn_calibration).
6. Enhance with the adapted network, its output mapped onto Ŷ's intensities by the
   least-squares affine fit inside the brain: adaptation sharpens structure, while
   the contrast transfer stays the one learnt in training (fine-tuning on its own
   output amplifies it: on Colin27, raw PSNR 1.3 dB lower without the map).

Nothing here changes the run: the adapted weights live for one scan.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from sklearn.mixture import GaussianMixture
from tqdm import tqdm

import simulators
from iqt import bn_calibration, config_io
from iqt.data.normalization import brain_mask
from iqt.data.patches import rng, sample_corners
from iqt.errors import UserError
from iqt.inference import Predictor, make_predict_fn, network_output, restore_variables, with_background
from iqt.interrupts import raise_if_received
from iqt.models import create_model, input_multiple
from iqt.train_step import TrainState, root_key, simulate_pairs, train_step
from iqt.tta import augmented

LEARNING_RATE = 2e-4      # Adam, constant: a tenth of the demo's peak rate
GMM_SAMPLES = 100_000     # brain voxels the tissue mixture is fitted on
MIN_BRAIN_FRACTION = 0.5  # patches at least half brain: the scan's anatomy rather than its border
# Tissues from the darkest to the brightest in each sequence (T1w: CSF < GM < WM).
INTENSITY_ORDER = {"T1w": ("CSF", "GM", "WM"), "T2w": ("WM", "GM", "CSF"), "FLAIR": ("CSF", "WM", "GM")}
TISSUE_COLUMNS = ("GM", "WM", "CSF")   # the simulator's order of tissue maps


@dataclasses.dataclass(frozen=True, eq=False)   # hashed by identity: its compiled steps are cached
class Network:
    """A trained run as fine-tuning needs it: the Flax model, its variables and the run's config."""

    model: object
    variables: dict
    config: ml_collections.ConfigDict

    @classmethod
    def from_run(cls, workdir: str | os.PathLike, checkpoint: str = "best",
                 config: ml_collections.ConfigDict | None = None) -> "Network":
        """The network of a training run's checkpoint (`config`: the run's, if already read)."""
        config = config_io.load_config(workdir) if config is None else config
        model = create_model(config.model, int(config.sim.factor))
        return cls(model, restore_variables(workdir, str(checkpoint), config, model), config)

    def predictor(self, variables: dict) -> Predictor:
        factor = int(self.config.sim.factor)
        return Predictor(make_predict_fn(self.model, variables), factor, input_multiple(self.config.model, factor))


def check_steps(steps, source: str | os.PathLike) -> int:
    """`--adapt STEPS` as an int ≥ 0; adapting needs a training run's weights, not an exported file."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise UserError(f"--adapt must be a whole number of steps >= 0, got {steps!r}")
    if steps and not os.path.isdir(source):
        raise UserError(f"--adapt fine-tunes the network, so it needs a training run's work directory, "
                        f"not {source}")
    return int(steps)


def tissue_maps(image: np.ndarray, brain: np.ndarray, sequence: str = "T1w", seed: int = 0) -> np.ndarray:
    """GM, WM, CSF probabilities (x, y, z, 3) of `image` inside `brain` (0 outside), float32.

    A three-component Gaussian mixture of the brain's intensities (fitted on at
    most `GMM_SAMPLES` voxels), its components named by `sequence`'s intensity
    order (`INTENSITY_ORDER`); each voxel's posterior probabilities are its maps.
    """
    if sequence not in INTENSITY_ORDER:
        raise UserError(f"sequence must be one of {', '.join(INTENSITY_ORDER)}, got {sequence!r}")
    values = np.asarray(image[brain], np.float64).reshape(-1, 1)
    if len(values) < 3 * 100:
        raise UserError(f"the brain holds {len(values)} voxels, too few to tell GM, WM and CSF apart")
    gen = np.random.default_rng(seed)
    sample = values[gen.choice(len(values), min(len(values), GMM_SAMPLES), replace=False)]
    mixture = GaussianMixture(3, random_state=seed).fit(sample)
    component = dict(zip(INTENSITY_ORDER[sequence], np.argsort(mixture.means_.ravel())))
    posterior = mixture.predict_proba(values)
    maps = np.zeros(image.shape + (3,), np.float32)
    maps[brain] = posterior[:, [component[t] for t in TISSUE_COLUMNS]]
    return maps


IN_PLANE_TO_SLICES = ((1, 2, 0), (0, 2, 1))   # x, then y, moved last; the slice axis to the middle


def training_volumes(image: np.ndarray, tissue: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, tissue) with each in-plane axis moved to the slice position: (y, z, x) and (x, z, y)."""
    return [(np.ascontiguousarray(image.transpose(order)), np.ascontiguousarray(tissue.transpose(order + (3,))))
            for order in IN_PLANE_TO_SLICES]


def pad_for_patches(image: np.ndarray, tissue: np.ndarray, window: Sequence[int]):
    """(image, tissue) zero-padded (background) on both sides of every axis shorter than `window`,
    to at least its length: a small scan still yields whole patches."""
    widths = [(0, 0) if n >= w else ((w - n + 1) // 2, (w - n + 1) // 2) for n, w in zip(image.shape, window)]
    return (np.pad(image, widths), np.pad(tissue, widths + [(0, 0)]))


@dataclasses.dataclass(frozen=True)
class PatchSource:
    """Training volumes with what the simulator needs of each (its tissue and LF brain means)."""

    volumes: list
    tissue_means: list
    brain_means: list
    margin: int
    min_fraction: float

    @classmethod
    def of(cls, volumes, sim_config: ml_collections.ConfigDict, margin: int, min_fraction: float,
           largest_patch: Sequence[int]) -> "PatchSource":
        """`volumes` padded for patches up to `largest_patch` (HF voxels, margins excluded)."""
        window = (largest_patch[0], largest_patch[1], largest_patch[2] + 2 * margin)
        volumes = [pad_for_patches(v, t, window) for v, t in volumes]
        return cls(volumes, [simulators.tissue_means(v, t) for v, t in volumes],
                   [simulators.brain_means_by_tissue(v, t, sim_config) for v, t in volumes], margin, min_fraction)

    def batch(self, gen: np.random.Generator, patch_size: Sequence[int], count: int) -> dict:
        """`count` patches (target `patch_size` plus the slice margins), shared evenly between the volumes."""
        parts = []
        for i, (image, tissue) in enumerate(self.volumes):
            n = count // len(self.volumes) + (i < count % len(self.volumes))
            corners, _ = sample_corners(gen, tissue.sum(-1) > 0.5, patch_size, self.margin, self.min_fraction,
                                        n, name="the scan's training volume")
            for x, y, z in corners:
                window = (slice(x, x + patch_size[0]), slice(y, y + patch_size[1]),
                          slice(z, z + patch_size[2] + 2 * self.margin))
                parts.append((image[window], tissue[window], self.tissue_means[i], self.brain_means[i]))
        hf, tissue, tissue_means, brain_means = (np.stack(p) for p in zip(*parts))
        return {"hf": hf, "tissue": tissue, "tissue_means": tissue_means, "brain_means": brain_means,
                "subject": np.zeros(count, np.int32)}


@functools.lru_cache(maxsize=4)
def _compiled_step(network: Network, learning_rate: float, seed: int):
    """(optimizer, jitted `train_step`) of `network`, compiled once for every scan it adapts to."""
    optimizer = optax.adam(learning_rate)
    sim = network.config.sim
    return optimizer, jax.jit(functools.partial(train_step, model=network.model, optimizer=optimizer,
                                                sim_config=sim, root_key=root_key(seed), flips=True,
                                                spec=simulators.SimulatorSpec.from_config(sim)))


def fine_tune(network: Network, source: PatchSource, steps: int, *, learning_rate: float = LEARNING_RATE,
              seed: int = 0, progress: bool = True) -> dict:
    """The network's variables after `steps` steps on `source` (and BatchNorm calibration, if the run has it)."""
    config, model = network.config, network.model
    optimizer, step = _compiled_step(network, float(learning_rate), int(seed))
    params = network.variables["params"]
    state = TrainState(jnp.int32(0), params, network.variables.get("batch_stats", {}), optimizer.init(params),
                       jnp.int32(0))
    gen, size, patch = rng(seed), int(config.train.batch_size), tuple(config.data.patch_size_hf)
    for _ in tqdm(range(steps), desc="adapt", unit="step", disable=not progress, leave=False):
        state, _ = step(state, source.batch(gen, patch, size))
        raise_if_received()
    calibration = tuple(config.train.get("bn_calibration_patch_hf", ()))
    if calibration and state.batch_stats:
        count = -(-int(config.train.bn_calibration_patches) // size) * size
        spec = simulators.SimulatorSpec.from_config(config.sim)
        key = jax.random.fold_in(root_key(seed), bn_calibration.CALIBRATION_DRAWS)
        lf = jax.jit(lambda b, k: simulate_pairs(k, b, config.sim, k, spec)[0])(
            source.batch(gen, calibration, count), key)
        state = bn_calibration.make_calibrate(model, lf, size)(state)
    return {"params": state.params, "batch_stats": state.batch_stats}


def intensity_fit(adapted: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of the least-squares affine map of `adapted`'s values onto `reference`'s."""
    slope, intercept = np.polyfit(np.ravel(adapted).astype(np.float64), np.ravel(reference).astype(np.float64), 1)
    return float(slope), float(intercept)


def enhance_adapted(lf: np.ndarray, predictor: Predictor, network: Network, steps: int, *,
                    mask: np.ndarray | None = None, sequence: str = "T1w", learning_rate: float = LEARNING_RATE,
                    seed: int = 0, tta: str = "none", progress: bool = True,
                    report: Callable[[str], None] = lambda line: None, **enhance_options) -> np.ndarray:
    """`enhance_lf` of a network fine-tuned for `steps` steps on this scan (module docstring).

    lf (x, y, z_lf) in the scanner's units, slice axis last; `mask` its brain
    (default: `brain_mask`, the voxels > 0); `predictor` runs the trained network for step 1 (any
    runtime), `network` is the same network for fine-tuning; `tta`: the adapted network's
    test-time augmentation (`iqt.tta`; give `predictor` the same). Returns (x, y, z_lf · r).
    """
    start = time.perf_counter()
    lf = np.asarray(lf, np.float32)
    mask = brain_mask(lf) if mask is None else np.asarray(mask, bool)
    trained, scale = network_output(lf, predictor, mask, progress=progress, **enhance_options)
    brain = np.repeat(mask, predictor.factor, axis=-1)
    estimate = np.where(brain, np.maximum(trained, 0.0), 0.0).astype(np.float32)   # Ŷ, brain-mean scale
    volumes = training_volumes(estimate, tissue_maps(estimate, brain, sequence, seed))
    config = network.config
    patch = np.max([config.data.patch_size_hf, config.train.get("bn_calibration_patch_hf") or (0, 0, 0)], axis=0)
    source = PatchSource.of(volumes, config.sim, simulators.SimulatorSpec.from_config(config.sim).margin,
                            MIN_BRAIN_FRACTION, patch)
    variables = fine_tune(network, source, steps, learning_rate=learning_rate, seed=seed, progress=progress)
    adapted, scale = network_output(lf, augmented(network.predictor(variables), tta), mask, progress=progress,
                                    **enhance_options)
    slope, intercept = intensity_fit(adapted[brain], trained[brain])   # onto the trained network's intensities
    report(f"adapted to the scan in {steps} steps, {time.perf_counter() - start:.0f} s")
    return with_background(np.maximum(slope * adapted + intercept, 0.0) * scale, lf, mask, predictor.factor)


@dataclasses.dataclass(frozen=True)
class ScanAdaptation:
    """`launch.infer --adapt STEPS`: every scan enhanced by the network fine-tuned on it."""

    network: Network
    steps: int
    sequence: str = "T1w"
    tta: str = "none"

    def enhance(self, lf: np.ndarray, predictor: Predictor, mask: np.ndarray | None = None, *,
                progress: bool = True, **enhance_options) -> np.ndarray:
        """`enhance_adapted` of this network, with `enhance_lf`'s arguments."""
        return enhance_adapted(lf, predictor, self.network, self.steps, mask=mask, sequence=self.sequence,
                               tta=self.tta, progress=progress, report=lambda line: print(line, flush=True),
                               **enhance_options)
