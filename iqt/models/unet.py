"""The anisotropic U-Net that upsamples the slice axis (docs/method.md §2), and the SR U-Net baseline.

Input: LF patches (B, X, Y, Z_lf, 1); output: HF patches (B, X, Y, factor·Z_lf, 1).
The encoder runs on the LF grid; each level's skip is upsampled along the
slices to the HF grid; the decoder is an ordinary isotropic U-Net decoder on
the HF grid. For ×8, 5 levels, 16 base features (`schedule.level_schedule`):

    encoder  conv_core(16) (32,32,4) → pool (2,2,1) → conv_core(32) (16,16,4) → pool (2,2,1)
             → conv_core(64) (8,8,4) → pool (2,2,1) → conv_core(128) (4,4,4) → pool (2,2,2)
             → conv_core(256) (2,2,2)
    skips    s = 8, 4, 2, 1 → (32,32,32,16), (16,16,16,32), (8,8,8,64), (4,4,4,128)
    decoder  for levels 5..2: conv_core(C_l) → transposed conv 2³ to C_(l-1) → concat skip
             then conv_core(16) and a linear 1×1×1 conv to one channel.

style 'aniso' uses `ConvCore` and `SkipBlock`; style 'sr' (the SR U-Net
baseline) uses `PlainConvBlock` (no BatchNorm, no shortcut) and a skip that is
only the (1, 1, s) transposed conv. `decoder_bottleneck_core=False` drops the
decoder's first block at the bottleneck (the variant the peer implementations
of benchmarks/README.md build, 6,085,401 parameters instead of 9,692,185).

`upsample` (model.upsample) picks how the decoder (`up{l}`), the skips and
the lift upsample: 'transposed' (the published network: kernel = stride, as
above) or 'resize_conv' (nearest-neighbour upsampling, then a 3×3×3 'same'
conv for `up{l}` and a (1, 1, 3) one along the slices for the skips and the
lift, `layers.ResizeConv`, `blocks.SliceUpsample`): no checkerboard pattern
(Odena, Dumoulin, Olah, Distill 2016), at 27 rather than 1 taps per output
voxel in `up{l}`. Its parameters live under 'conv' where the transposed
convolutions' are 'kernel'/'bias' or 'tconv', so a checkpoint of one never
loads into the other (at ×6 some shapes coincide).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from iqt.interpolation import INTERPOLATION_ORDERS, slice_interpolation_matrix
from iqt.models import schedule
from iqt.models.blocks import ConvCore, PlainConvBlock, SkipBlock, SliceUpsample
from iqt.models.layers import (KERAS_BN_MOMENTUM, UPSAMPLINGS, Conv3D, Dtype, glorot_uniform, max_pool,
                               upsampling_layer)

STYLES = ("aniso", "sr")


def _interpolate_slices(lf: jax.Array, factor: int, order: int) -> jax.Array:
    """(B, X, Y, Z, 1) → (B, X, Y, factor·Z, 1): the interpolation baseline along the slices
    (`iqt.interpolation`, the slice convention), as one constant matrix product."""
    matrix = jnp.asarray(slice_interpolation_matrix(lf.shape[3], factor, order), jnp.float32)
    return jnp.einsum("bxyzc,zh->bxyhc", lf, matrix, precision=jax.lax.Precision.HIGHEST)


class SliceUNet(nn.Module):
    """U-Net from LF (B, X, Y, Z, 1) to HF (B, X, Y, factor·Z, 1); see the module docstring."""

    factor: int
    base_features: int = 16
    levels: int = 5
    style: str = "aniso"
    decoder_bottleneck_core: bool = True
    impl: str = "xla"
    dtype: Dtype = jnp.float32
    bn_momentum: float = KERAS_BN_MOMENTUM
    residual: str = "none"   # 'linear' | 'cubic': add that interpolation of the input along the slices
    upsample: str = "transposed"   # 'resize_conv': nearest-neighbour upsampling then a conv (no checkerboard)

    def _block(self, features: int, train: bool, name: str) -> nn.Module:
        if self.style == "aniso":
            return ConvCore(features, train, self.impl, self.dtype, self.bn_momentum, name=name)
        return PlainConvBlock(features, train, self.impl, self.dtype, name=name)

    def _skip(self, skip_upsample: int, train: bool, name: str) -> nn.Module:
        if self.style == "aniso":
            return SkipBlock(skip_upsample, train, self.impl, self.dtype, self.bn_momentum, self.upsample, name=name)
        return SliceUpsample(skip_upsample, self.impl, self.dtype, self.upsample, name=name)

    @nn.compact
    def __call__(self, lf: jax.Array, train: bool = False) -> jax.Array:
        if self.style not in STYLES:
            raise schedule.ArchitectureError(f"model style must be one of {STYLES}, got {self.style!r}")
        if self.upsample not in UPSAMPLINGS:
            raise schedule.ArchitectureError(f"model upsample must be one of {UPSAMPLINGS}, got {self.upsample!r}")
        if lf.ndim != 5 or lf.shape[-1] != 1:
            raise schedule.ArchitectureError(f"expected LF input (B, X, Y, Z_lf, 1), got shape {lf.shape}")
        plan = schedule.level_schedule(self.factor, self.levels, self.base_features)
        schedule.check_lf_shape(lf.shape[1:4], self.factor, self.levels)

        h, skips = lf.astype(self.dtype), []
        for level in plan[:-1]:
            h = self._block(level.features, train, f"enc{level.index}")(h)
            skips.append(self._skip(level.skip_upsample, train, f"skip{level.index}")(h))
            h = max_pool(h, level.pool)
        bottom = plan[-1]
        h = self._block(bottom.features, train, f"enc{bottom.index}")(h)
        if bottom.skip_upsample > 1:  # too shallow for the factor: lift the bottleneck to the HF grid
            h = SliceUpsample(bottom.skip_upsample, self.impl, self.dtype, self.upsample, name="lift")(h)

        for level in reversed(plan[:-1]):
            below = level.index + 1
            if below < bottom.index or self.decoder_bottleneck_core:
                h = self._block(plan[below - 1].features, train, f"dec{below}")(h)
            h = upsampling_layer(self.upsample, level.features, (level.down,) * 3, self.impl, self.dtype,
                                 f"up{below}")(h)
            h = jnp.concatenate([h, skips[level.index - 1]], axis=-1)
        h = self._block(plan[0].features, train, "dec1")(h)
        # With a residual the head starts at zero: the untrained network is the interpolation.
        head_init = glorot_uniform if self.residual == "none" else nn.initializers.zeros
        out = Conv3D(1, (1, 1, 1), self.impl, self.dtype, head_init, name="head")(h).astype(jnp.float32)
        if self.residual == "none":
            return out
        return out + _interpolate_slices(lf.astype(jnp.float32), self.factor, INTERPOLATION_ORDERS[self.residual])
