"""The level schedule of the ANISO U-Net: pools, skip upsampling and widths.

The encoder works on the low-field (LF) grid and the decoder on the high-field
(HF) grid, so each level l (1 = full resolution, L = bottleneck) has two slice
counts: the HF one, `Z_hf / P_l`, where `P_l` is the product of the in-plane
pooling factors above level l, and the encoder's, which keeps the LF slice
count until the HF count at that level would be smaller:

    z_enc(l) = min(Z_lf, Z_hf / P_l)

The encoder pools z only where z_enc shrinks; the skip of level l upsamples
the slice axis by `s_l = (Z_hf / P_l) / z_enc(l)` with a (1, 1, s_l) transposed
convolution (s_l = 1 included, as in the reference model). Both depend on the
factor r = Z_hf / Z_lf alone: `s_l = max(1, r / P_l)`.

In-plane pooling factors are 2 at every level, except that a factor divisible
by 3 pools ×3 first (the published ×6 variant: (48, 48, 8) LF → 48³ HF).
Widths grow with the pooling: features(l) = base_features · P_l, so 16, 32,
64, 128, 256 for the reference ×8 network and 16, 48, 96, 192, 384 for ×6.

If the network is too shallow for the factor (r > P_L, e.g. ×8 with fewer than
4 levels), the bottleneck is not yet on the HF grid: it is lifted there by one
more (1, 1, r / P_L) transposed convolution before the decoder (an extension:
the published networks never need it, and it adds no layer when r ≤ P_L).

Valid patches, `D = P_L` (16 for ×2/×4/×8 with 5 levels, 24 for ×6): X and Y
are multiples of D and the HF slice count `r · Z_lf` is a multiple of D
(`input_multiple` gives the LF multiples). For 5 levels:

| factor | in-plane X, Y | LF slices Z_lf | reference patch (LF → HF) |
| --- | --- | --- | --- |
| ×2 | multiple of 16 | multiple of 8 | (32, 32, 16) → (32, 32, 32) |
| ×4 | multiple of 16 | multiple of 4 | (32, 32, 8) → (32, 32, 32) |
| ×6 | multiple of 24 | multiple of 4 | (48, 48, 8) → (48, 48, 48) |
| ×8 | multiple of 16 | multiple of 2 | (32, 32, 4) → (32, 32, 32) |
"""
from __future__ import annotations

import dataclasses
import math

from iqt.errors import UserError


class ArchitectureError(UserError, ValueError):
    """A factor, depth, width or patch size that the U-Net cannot be built for."""


@dataclasses.dataclass(frozen=True)
class Level:
    """One level of the U-Net (index 1 = full resolution).

    features: channels of the level's conv block.
    down: in-plane (and HF slice) pooling factor to the next level; 1 at the bottleneck.
    pool: encoder max-pool window (x, y, z) to the next level; None at the bottleneck.
    skip_upsample: slice-axis factor s of the level's skip; at the bottleneck, the
        factor that lifts it to the HF grid (1 unless the network is too shallow).
    """

    index: int
    features: int
    down: int
    pool: tuple[int, int, int] | None
    skip_upsample: int


def _in_plane_factors(factor: int, levels: int) -> tuple[int, ...]:
    first = 3 if factor % 3 == 0 else 2
    return (first,) + (2,) * (levels - 2)


def level_schedule(factor: int, levels: int, base_features: int) -> tuple[Level, ...]:
    """The levels of the network for a slice-axis upsampling `factor`.

    Raises `ArchitectureError` (a ValueError) when no such network exists.
    """
    if not isinstance(factor, int) or factor < 2:
        raise ArchitectureError(f"upsampling factor must be an integer >= 2, got {factor!r}")
    rest = factor // 3 if factor % 3 == 0 else factor
    if rest & (rest - 1):
        raise ArchitectureError(
            f"upsampling factor {factor} is not supported: use 2^a or 3·2^a (2, 3, 4, 6, 8, 12, 16, ...)")
    if levels < 2:
        raise ArchitectureError(f"the U-Net needs at least 2 levels, got levels={levels}")
    if base_features < 2 or base_features % 2:
        raise ArchitectureError(
            f"base_features must be even and >= 2 (the skip blocks halve the width), got {base_features}")
    downs = _in_plane_factors(factor, levels)
    out = []
    pooled = 1  # P_l
    for index in range(1, levels + 1):
        features = base_features * pooled
        if index == levels:
            out.append(Level(index, features, 1, None, max(1, factor // pooled)))
            break
        d = downs[index - 1]
        # slice counts relative to Z_lf: encoder min(1, r/P), next level min(1, r/(P·d))
        here, below = min(1, factor / pooled), min(1, factor / (pooled * d))
        pool_z = here / below
        skip = max(1, factor // pooled)
        out.append(Level(index, features, d, (d, d, int(round(pool_z))), skip))
        pooled *= d
    return tuple(out)


def total_downsampling(factor: int, levels: int) -> int:
    """D = P_L: patch X, Y and HF slice counts must be multiples of it."""
    return math.prod(_in_plane_factors(factor, levels))


def input_multiple(factor: int, levels: int) -> tuple[int, int, int]:
    """LF inputs (X, Y, Z_lf) must be multiples of these."""
    d = total_downsampling(factor, levels)
    return d, d, d // math.gcd(d, factor)


def check_lf_shape(lf_spatial: tuple[int, int, int], factor: int, levels: int) -> None:
    """Raises `ArchitectureError` unless an LF input of this (X, Y, Z_lf) fits the network."""
    x, y, z_lf = lf_spatial
    d = total_downsampling(factor, levels)
    bad = [f"{name}={n}" for name, n in (("X", x), ("Y", y), ("Z_hf", z_lf * factor)) if n % d]
    if bad or min(x, y, z_lf) < 1:
        raise ArchitectureError(
            f"LF patch (X, Y, Z_lf)={tuple(lf_spatial)} does not fit the ×{factor}, {levels}-level U-Net: "
            f"X, Y and Z_hf = {factor}·Z_lf must be multiples of {d} ({', '.join(bad) or 'empty patch'})")


def input_shape_lf(patch_size_hf: tuple[int, int, int], factor: int, levels: int = 5) -> tuple[int, int, int]:
    """The LF input (X, Y, Z_hf / factor) for an HF patch (X, Y, Z_hf); checks that it is valid."""
    x, y, z_hf = (int(n) for n in patch_size_hf)
    if z_hf % factor:
        raise ArchitectureError(f"HF patch slice count {z_hf} is not a multiple of the factor {factor}")
    level_schedule(factor, levels, 2)  # factor and depth checks
    lf = (x, y, z_hf // factor)
    check_lf_shape(lf, factor, levels)
    return lf
