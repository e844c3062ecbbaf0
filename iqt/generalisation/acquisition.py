"""An independent forward model of a real 2-D multi-slice low-field (LF) acquisition.

numpy/scipy only, sharing no code with the training simulator (`simulators/`), so a network trained
on that simulator is tested on physics it did not see. Volumes are (x, y, z) arrays, slice axis last;
high-field (HF) voxels are isotropic, `hf_voxel_mm` wide; the LF slice spacing is `factor *
hf_voxel_mm` and LF slice j is centred at HF index `factor*j + (factor-1)/2`. `acquire` applies,
in the physical order:

1. `contrast_map`     tissue contrast at low field (a property of the object);
2. `bias_field`       receive-coil sensitivity multiplying the object (HF grid, mask = brain);
3. `truncate_kspace`  the in-plane k-space actually sampled (Gibbs ringing);
4. `slice_weights`, `acquire_slices`  slice selection by the RF pulse's slice profile;
5. `crosstalk_steps`  interleaved slices partly saturated by their neighbours' pulses;
6. `rician_noise`     complex Gaussian receiver noise (optionally correlated in-plane), magnitude;
7. skull stripping: zero outside the LF brain mask (the slice-weighted HF mask >= 0.5).

References: [Pauly91] J. Pauly, P. Le Roux, D. Nishimura, A. Macovski, "Parameter relations for the
Shinnar-Le Roux selective excitation pulse design algorithm", IEEE TMI 10(1):53-65, 1991.
[Bernstein04] M. A. Bernstein, K. F. King, X. J. Zhou, Handbook of MRI Pulse Sequences, Elsevier
2004, ch. 2 (RF pulse shapes: windowed sinc) and ch. 3 (slice-selective excitation).
[Haacke99] E. M. Haacke, R. W. Brown, M. R. Thompson, R. Venkatesan, Magnetic Resonance Imaging:
Physical Principles and Sequence Design, Wiley 1999, ch. 13 (truncation artefacts, Gibbs ringing).
[Gudbjartsson95] H. Gudbjartsson, S. Patz, "The Rician distribution of noisy MRI data", Magn Reson
Med 34:910-914, 1995. [Sled98] J. G. Sled, A. P. Zijdenbos, A. C. Evans, "A nonparametric method
for automatic correction of intensity nonuniformity in MRI data", IEEE TMI 17(1):87-97, 1998.
[Kucharczyk88] W. Kucharczyk, A. P. Crawley, W. M. Kelly, R. M. Henkelman, "Effect of multislice
interference on image contrast in T2- and T1-weighted MR images", AJNR 9:443-451, 1988.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
from scipy import ndimage, optimize

PROFILES = ("rect", "gaussian", "windowed_sinc")
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))    # 2.3548
_REACH = {"rect": 0.5, "gaussian": 4.0 / FWHM_PER_SIGMA, "windowed_sinc": 1.5}   # x thickness
_PULSE_SAMPLES = 2001     # quadrature points over the normalised RF pulse duration
_SUBSAMPLES = 32          # midpoint-rule samples per HF voxel for the smooth profiles


@dataclasses.dataclass(frozen=True)
class Acquisition:
    """One 2-D multi-slice acquisition of a known HF brain; `validate()` runs on construction.

    name, description: labels (name non-empty). profile: 'rect' (ideal slab), 'gaussian' or
    'windowed_sinc' (Hann-windowed sinc RF pulse). thickness_fraction: slice thickness (the
    profile's FWHM) / slice spacing, in (0, 1.5]. time_bandwidth: windowed_sinc's time-bandwidth
    product, >= 2 (sharper when larger) [Pauly91]. snr: mean of the noiseless LF over the LF brain
    / noise SD per channel, > 0; None = noiseless. noise_correlation_fwhm_mm: in-plane noise
    correlation, Gaussian FWHM in mm, >= 0. bias_amplitude: a in [0, 0.5], field in [1-a, 1+a]
    over the brain. kspace_fraction: share of in-plane k-space kept along x and y, in (0, 1].
    contrast_gamma: power on the HF brain's intensities, in (0, 3]; < 1 lowers GM/WM contrast.
    crosstalk: odd LF slices scaled by (1 - crosstalk), in [0, 0.5]. All fractions dimensionless.
    """
    name: str
    description: str
    profile: str = "rect"
    thickness_fraction: float = 5 / 6
    time_bandwidth: float = 4.0
    snr: float | None = None
    noise_correlation_fwhm_mm: float = 0.0
    bias_amplitude: float = 0.0
    kspace_fraction: float = 1.0
    contrast_gamma: float = 1.0
    crosstalk: float = 0.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first field out of its range."""
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Acquisition.name must be a non-empty string, got {self.name!r}")
        _check_profile(self.profile)
        for field, low, high, closed in (("thickness_fraction", 0, 1.5, False), ("time_bandwidth", 2, math.inf, True),
                                         ("noise_correlation_fwhm_mm", 0, math.inf, True),
                                         ("bias_amplitude", 0, 0.5, True), ("kspace_fraction", 0, 1, False),
                                         ("contrast_gamma", 0, 3, False), ("crosstalk", 0, 0.5, True)):
            _check_range(f"Acquisition.{field}", getattr(self, field), low, high, closed)
        if self.snr is not None:
            _check_range("Acquisition.snr", self.snr, 0, math.inf, False)


def _check_range(name: str, value, low: float, high: float, low_closed: bool) -> None:
    """ValueError unless `value` is a finite real number in (low, high] ([low, high] if low_closed)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value >= low if low_closed else value > low) and value <= high
    if not ok:
        bounds = f"{'[' if low_closed else '('}{low}, {high}{']' if math.isfinite(high) else ')'}"
        raise ValueError(f"{name} must be a finite number in {bounds}, got {value!r}")


def _check_int(name: str, value, minimum: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")


def _pulse_spectrum(frequency: np.ndarray, time_bandwidth: float) -> np.ndarray:
    """|integral over s in [-1/2, 1/2] of p(s) exp(-2 pi i f s) ds| (trapezoid rule), p(s) = sinc(TBW s)
    * Hann(s), f in cycles per pulse duration: the small-tip slice profile [Pauly91, Bernstein04 ch. 2]."""
    s = np.linspace(0.0, 0.5, _PULSE_SAMPLES // 2 + 1)    # p is even: 2 x the cosine integral over [0, 1/2]
    weights = np.full(s.size, 2.0 * (s[1] - s[0]))
    weights[[0, -1]] /= 2.0
    pulse = np.sinc(time_bandwidth * s) * 0.5 * (1.0 + np.cos(2.0 * np.pi * s)) * weights
    flat = np.asarray(frequency, dtype=np.float64).ravel()
    out = np.empty(flat.size)
    for start in range(0, flat.size, 2048):
        out[start:start + 2048] = np.abs(np.cos(2.0 * np.pi * np.outer(flat[start:start + 2048], s)) @ pulse)
    return out.reshape(np.shape(frequency))


@functools.lru_cache(maxsize=64)
def _sinc_peak_and_half_frequency(time_bandwidth: float) -> tuple[float, float]:
    """(the spectrum's peak, the frequency where it first falls to half of it), refined by a bounded
    maximisation (passband ripple) and brentq; the passband spans |f| <= TBW/2 (FWHM_f 2.39 at TBW 2, ~TBW above)."""
    def spectrum(f: float) -> float:
        return float(_pulse_spectrum(np.array([f]), time_bandwidth)[0])
    grid = np.linspace(0.0, time_bandwidth, 4001)
    values = _pulse_spectrum(grid, time_bandwidth)
    i = int(np.argmax(values))
    peak = values[i]
    if 0 < i < grid.size - 1:
        best = optimize.minimize_scalar(lambda f: -spectrum(f), bounds=(grid[i - 1], grid[i + 1]), method="bounded")
        peak = max(peak, -best.fun)
    j = int(np.argmax(values < peak / 2.0))
    half = optimize.brentq(lambda f: spectrum(f) - peak / 2.0, grid[j - 1], grid[j], xtol=1e-13)
    return float(peak), float(half)


def slice_profile(profile: str, z_mm: np.ndarray, thickness_mm: float, time_bandwidth: float = 4.0) -> np.ndarray:
    """Relative excitation (float64, shape of `z_mm`) at offsets `z_mm` (mm) from the slice centre.

    'rect': 1 for |z| <= t/2 else 0. 'gaussian': exp(-z^2 / 2 sigma^2) with FWHM t (peak 1).
    'windowed_sinc': |Fourier transform of the Hann-windowed sinc pulse| (small-tip approximation;
    side lobes included, >= 0), z scaled so that the FWHM is exactly t, peak 1 [Pauly91, Bernstein04].
    thickness_mm = t > 0; time_bandwidth >= 2 (used by windowed_sinc only).
    """
    _check_profile(profile)
    _check_range("thickness_mm", thickness_mm, 0, math.inf, False)
    z = np.asarray(z_mm, dtype=np.float64)
    if profile == "rect":
        return (np.abs(z) <= thickness_mm / 2.0).astype(np.float64)
    if profile == "gaussian":
        return np.exp(-0.5 * (z * FWHM_PER_SIGMA / thickness_mm) ** 2)
    _check_range("time_bandwidth", time_bandwidth, 2, math.inf, True)
    peak, half = _sinc_peak_and_half_frequency(float(time_bandwidth))
    return _pulse_spectrum(z * (2.0 * half / thickness_mm), float(time_bandwidth)) / peak


def slice_weights(n_hf: int, factor: int, hf_voxel_mm: float, profile: str, thickness_mm: float,
                  time_bandwidth: float = 4.0) -> np.ndarray:
    """(n_hf, n_hf // factor) float64: column j = LF slice j's profile integrated over each HF voxel.

    HF voxel k covers [k-1/2, k+1/2] * hf_voxel_mm; slice j is centred at (factor*j + (factor-1)/2) *
    hf_voxel_mm. 'rect': the exact overlap length of the slab with each voxel; the others: midpoint
    rule, 32 samples per voxel, within the profile's reach (gaussian +-4 sigma, windowed_sinc +-1.5 t;
    beyond it the profile is dropped). Voxels outside [0, n_hf) are dropped and each column is
    renormalised to sum 1. n_hf >= factor >= 1 (ints); hf_voxel_mm, thickness_mm > 0 (mm).
    """
    _check_int("factor", factor, 1)
    _check_int("n_hf", n_hf, factor)
    _check_range("hf_voxel_mm", hf_voxel_mm, 0, math.inf, False)
    _check_profile(profile)
    _check_range("thickness_mm", thickness_mm, 0, math.inf, False)
    reach_mm = _REACH[profile] * thickness_mm
    reach = int(math.ceil(reach_mm / hf_voxel_mm)) + 1
    offsets = np.arange(-reach, factor + reach)                      # HF index - factor*j
    lower = (offsets - 0.5 - (factor - 1) / 2.0) * hf_voxel_mm       # voxels' lower edges - centre, mm
    if profile == "rect":
        kernel = np.clip(np.minimum(lower + hf_voxel_mm, thickness_mm / 2) - np.maximum(lower, -thickness_mm / 2),
                         0.0, None)
    else:
        z = lower[:, None] + (np.arange(_SUBSAMPLES) + 0.5) * (hf_voxel_mm / _SUBSAMPLES)
        values = slice_profile(profile, z, thickness_mm, time_bandwidth) * (np.abs(z) <= reach_mm)
        kernel = values.mean(axis=1) * hf_voxel_mm
    weights = np.zeros((n_hf, n_hf // factor))
    for j in range(weights.shape[1]):
        rows = factor * j + offsets
        keep = (rows >= 0) & (rows < n_hf)
        weights[rows[keep], j] = kernel[keep]
    return weights / weights.sum(axis=0, keepdims=True)


def acquire_slices(hf: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(x, y, n_hf) -> (x, y, n_lf) float64: each LF slice the weighted sum of HF slices (`hf @ weights`)."""
    if np.ndim(hf) != 3 or np.ndim(weights) != 2 or np.shape(hf)[2] != np.shape(weights)[0]:
        raise ValueError(f"need hf (x, y, n_hf) and weights (n_hf, n_lf), got {np.shape(hf)}, {np.shape(weights)}")
    return np.asarray(hf, dtype=np.float64) @ weights


def truncate_kspace(image: np.ndarray, fraction: float) -> np.ndarray:
    """Keep the central `fraction` in (0, 1] of k-space along x and y of every slice; magnitude, float64.

    Along an axis of N samples, K = max(1, round(fraction * N)) frequencies are kept (Python's round,
    half to even): in fftshift order the indices [N//2 - K//2, N//2 - K//2 + K), i.e. the signed
    frequencies -(K//2) ... (K-1)//2, so for even K the extra bin is the most negative frequency.
    No window: the sinc point-spread function rings at edges (Gibbs, ~9 % overshoot) [Haacke99].
    image: (x, y, ...) real or complex.
    """
    _check_range("fraction", fraction, 0, 1, False)
    image = np.asarray(image)
    if image.ndim < 2:
        raise ValueError(f"image needs at least the axes (x, y), got shape {image.shape}")
    spectrum = np.fft.fftshift(np.fft.fft2(image, axes=(0, 1)), axes=(0, 1))
    keep = [np.zeros(n, dtype=bool) for n in image.shape[:2]]
    for axis_keep, n in zip(keep, image.shape[:2]):
        k = max(1, int(round(fraction * n)))
        axis_keep[n // 2 - k // 2:n // 2 - k // 2 + k] = True
    spectrum *= np.outer(keep[0], keep[1]).reshape(image.shape[:2] + (1,) * (image.ndim - 2))
    return np.abs(np.fft.ifft2(np.fft.ifftshift(spectrum, axes=(0, 1)), axes=(0, 1)))


def bias_field(shape: tuple[int, int, int], voxel_mm: tuple[float, float, float], amplitude: float,
               rng: np.random.Generator, mask: np.ndarray | None = None, length_mm: float = 100.0) -> np.ndarray:
    """A smooth positive multiplicative field (receive-coil sensitivity [Sled98]), float64 of `shape`.

    8 random plane cosines (wavelengths in [length_mm, 2 length_mm], random directions, phases and
    amplitudes) are summed, scaled to u in [0, 1] over `mask` (default: everywhere; clamped to [0, 1]
    outside it) and bent by monotone quadratics u -> u + c u (1 - u), |c| <= 1, until u's mean over
    the mask is 1/2; field = 1 - a + 2 a u. Over the mask: min = 1 - a and max = 1 + a (to rounding),
    mean = 1 within 1e-9. amplitude a in [0, 0.5] (0: ones, no draw); voxel_mm, length_mm > 0 (mm).
    ValueError if the field is constant over the mask (e.g. a single voxel).
    """
    _check_range("amplitude", amplitude, 0, 0.5, True)
    _check_range("length_mm", length_mm, 0, math.inf, False)
    for size in voxel_mm:
        _check_range("voxel_mm", size, 0, math.inf, False)
    mask = np.ones(shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != tuple(shape):
        raise ValueError(f"mask shape {mask.shape} differs from shape {tuple(shape)}")
    if amplitude == 0.0:
        return np.ones(shape)
    field = _random_cosines(shape, voxel_mm, rng, length_mm)
    low, high = field[mask].min(initial=np.inf), field[mask].max(initial=-np.inf)
    if not high > low:
        raise ValueError("bias_field needs a mask with at least two voxels of different field values")
    u = np.clip((field - low) / (high - low), 0.0, 1.0)
    for _ in range(200):
        gap = 0.5 - u[mask].mean()
        if abs(gap) < 1e-12:
            break
        u = u + np.clip(gap / np.mean(u[mask] * (1.0 - u[mask])), -1.0, 1.0) * u * (1.0 - u)
    return 1.0 - amplitude + 2.0 * amplitude * u


def _random_cosines(shape, voxel_mm, rng: np.random.Generator, length_mm: float, n_waves: int = 8) -> np.ndarray:
    x, y, z = np.meshgrid(*[(np.arange(n) - (n - 1) / 2.0) * v for n, v in zip(shape, voxel_mm)],
                          indexing="ij", sparse=True)
    directions = rng.normal(size=(n_waves, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    frequencies = rng.uniform(0.5, 1.0, n_waves) / length_mm        # cycles per mm
    phases, amplitudes = rng.uniform(0.0, 2.0 * np.pi, n_waves), rng.normal(size=n_waves)
    field = np.zeros(shape)
    for d, f, phase, amp in zip(directions, frequencies, phases, amplitudes):
        field += amp * np.cos(2.0 * np.pi * f * (d[0] * x + d[1] * y + d[2] * z) + phase)
    return field


def contrast_map(image: np.ndarray, brain: np.ndarray, gamma: float) -> np.ndarray:
    """m * sign(x) |x / m|**gamma inside `brain` (m = mean of image there, > 0), unchanged outside; float64.

    Two tissues' intensity ratio g/w becomes (g/w)**gamma: gamma < 1 mimics the lower GM/WM T1
    contrast at low field. gamma in (0, 3]; brain: a non-empty mask of image's shape.
    """
    _check_range("gamma", gamma, 0, 3, False)
    image, brain = np.asarray(image, dtype=np.float64), np.asarray(brain, dtype=bool)
    if brain.shape != image.shape or not brain.any():
        raise ValueError("brain must be a non-empty mask of the image's shape")
    m = image[brain].mean()
    if not m > 0:
        raise ValueError(f"the image's mean over the brain must be > 0, got {m}")
    out = image.copy()
    out[brain] = m * np.sign(image[brain]) * np.abs(image[brain] / m) ** gamma
    return out


def crosstalk_steps(lf: np.ndarray, amplitude: float) -> np.ndarray:
    """Odd LF slices (last axis) scaled by (1 - amplitude), amplitude in [0, 0.5]; float64. In an interleaved
    acquisition the second pass is partly saturated by the first pass's profile tails [Kucharczyk88]."""
    _check_range("amplitude", amplitude, 0, 0.5, True)
    out = np.array(lf, dtype=np.float64)
    out[..., 1::2] *= 1.0 - amplitude
    return out


def _noise_field(shape: tuple[int, ...], sigma: float, rng: np.random.Generator, fwhm_vox: float = 0.0) -> np.ndarray:
    """Gaussian noise of SD `sigma`; for fwhm_vox > 0 smoothed along axes 0, 1 by a normalised Gaussian kernel
    w (truncated at 4 sigma, as scipy's gaussian_filter), drawn on a grid padded by the kernel's radius and
    cropped so every voxel sees distinct samples, then divided by the exact SD factor sqrt(sum w^2)^2."""
    if fwhm_vox == 0.0:
        return rng.normal(0.0, sigma, size=shape)
    kernel_sigma = fwhm_vox / FWHM_PER_SIGMA
    radius = int(4.0 * kernel_sigma + 0.5)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / kernel_sigma) ** 2)
    kernel /= kernel.sum()
    noise = rng.normal(0.0, 1.0, size=(shape[0] + 2 * radius, shape[1] + 2 * radius) + tuple(shape[2:]))
    for axis in (0, 1):
        noise = ndimage.correlate1d(noise, kernel, axis=axis, mode="constant")
    return noise[radius:radius + shape[0], radius:radius + shape[1]] * (sigma / np.sum(kernel ** 2))


def rician_noise(image: np.ndarray, sigma: float, rng: np.random.Generator,
                 correlation_fwhm_vox: float = 0.0) -> np.ndarray:
    """|image + n_re + i n_im|, n Gaussian with SD `sigma` >= 0 per channel [Gudbjartsson95]; float64.

    correlation_fwhm_vox >= 0 (voxels): each noise field smoothed in-plane (x, y) by a Gaussian of that
    FWHM (correlation as from k-space filtering or parallel imaging) and rescaled by the kernel's exact
    SD factor, so its SD stays sigma. Needs image.ndim >= 2 when correlated.
    """
    _check_range("sigma", sigma, 0, math.inf, True)
    _check_range("correlation_fwhm_vox", correlation_fwhm_vox, 0, math.inf, True)
    image = np.asarray(image, dtype=np.float64)
    if correlation_fwhm_vox > 0 and image.ndim < 2:
        raise ValueError(f"correlated noise needs an image with axes (x, y, ...), got shape {image.shape}")
    real = _noise_field(image.shape, sigma, rng, correlation_fwhm_vox)
    return np.hypot(image + real, _noise_field(image.shape, sigma, rng, correlation_fwhm_vox))


def acquire(hf: np.ndarray, brain: np.ndarray, acquisition: Acquisition, factor: int, hf_voxel_mm: float,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The whole chain (the module docstring's order) -> (lf (x, y, z // factor) float32, lf_brain bool).

    hf: (x, y, z) finite, brain-extracted HF image; brain: its non-empty mask, same shape; both cropped
    to (z // factor) * factor slices. factor: int >= 1, <= z; hf_voxel_mm > 0 (mm, isotropic). Two
    generators spawned from np.random.default_rng(seed) drive the bias field (first) and the noise
    (second): the same seed gives the same LF, and the noise does not depend on the bias settings.
    Noise SD = mean of the noiseless LF over the LF brain / snr.
    """
    hf, brain, a = np.asarray(hf), np.asarray(brain), acquisition
    _check_inputs(hf, brain, a, factor, hf_voxel_mm)
    n_hf = (hf.shape[2] // factor) * factor
    hf, brain = hf[..., :n_hf].astype(np.float64), brain[..., :n_hf].astype(bool)
    bias_rng, noise_rng = np.random.default_rng(seed).spawn(2)
    image = contrast_map(hf, brain, a.contrast_gamma) if a.contrast_gamma != 1.0 else hf
    image = image * bias_field(hf.shape, (hf_voxel_mm,) * 3, a.bias_amplitude, bias_rng, mask=brain)
    if a.kspace_fraction < 1.0:
        image = truncate_kspace(image, a.kspace_fraction)
    weights = slice_weights(n_hf, factor, hf_voxel_mm, a.profile, a.thickness_fraction * factor * hf_voxel_mm,
                            a.time_bandwidth)
    lf = crosstalk_steps(acquire_slices(image, weights), a.crosstalk)
    lf_brain = acquire_slices(brain.astype(np.float64), weights) >= 0.5
    if a.snr is not None:
        if not lf_brain.any():
            raise ValueError("the LF brain mask is empty: the noise level cannot be set from the SNR")
        lf = rician_noise(lf, lf[lf_brain].mean() / a.snr, noise_rng, a.noise_correlation_fwhm_mm / hf_voxel_mm)
    return np.where(lf_brain, lf, 0.0).astype(np.float32), lf_brain


def _check_inputs(hf: np.ndarray, brain: np.ndarray, acquisition: Acquisition, factor, hf_voxel_mm) -> None:
    if not isinstance(acquisition, Acquisition):
        raise ValueError(f"acquisition must be an Acquisition, got {type(acquisition).__name__}")
    acquisition.validate()
    _check_int("factor", factor, 1)
    _check_range("hf_voxel_mm", hf_voxel_mm, 0, math.inf, False)
    if hf.ndim != 3 or brain.shape != hf.shape:
        raise ValueError(f"hf and brain must be 3-D of the same shape, got {hf.shape} and {brain.shape}")
    if hf.shape[2] < factor:
        raise ValueError(f"hf has {hf.shape[2]} slices, fewer than factor {factor}")
    if not np.all(np.isfinite(hf)) or not brain.astype(bool).any():
        raise ValueError("hf must be finite and the brain mask non-empty")
