"""Building blocks of the ANISO U-Net and of the SR U-Net baseline (docs/method.md §2).

Every block maps channels-last (B, X, Y, Z, C) arrays; `impl` and `dtype` are
passed down to the convolutions (see `layers`).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from iqt.models.layers import KERAS_BN_MOMENTUM, Conv3D, ConvTransposeKernelEqStride, Dtype, batch_norm


class ConvCore(nn.Module):
    """conv_core(C): shortcut = 1×1×1 conv; main = 2 × [3×3×3 conv → ReLU → BN];
    output = ReLU(main + shortcut) → BN."""

    features: int
    train: bool
    impl: str = "xla"
    dtype: Dtype = jnp.float32
    bn_momentum: float = KERAS_BN_MOMENTUM

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        bn = lambda name: batch_norm(self.train, self.dtype, name, self.bn_momentum)  # noqa: E731
        conv = lambda k, name: Conv3D(self.features, k, self.impl, self.dtype, name=name)  # noqa: E731
        shortcut = conv((1, 1, 1), "shortcut")(x)
        h = bn("bn1")(nn.relu(conv((3, 3, 3), "conv1")(x)))
        h = bn("bn2")(nn.relu(conv((3, 3, 3), "conv2")(h)))
        return bn("bn_out")(nn.relu(h + shortcut))


class SkipBlock(nn.Module):
    """FSRCNN-like skip path on C channels, then upsampling of the slice axis by s:
    1×1×1 conv to C/2 → ReLU → BN; 2 × [3×3×3 conv C/2 → ReLU → BN];
    1×1×1 conv to C → ReLU → BN; + block input; transposed conv, kernel = stride = (1, 1, s)."""

    upsample: int
    train: bool
    impl: str = "xla"
    dtype: Dtype = jnp.float32
    bn_momentum: float = KERAS_BN_MOMENTUM

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]

        def conv_relu_bn(h, features, k, name):
            h = Conv3D(features, k, self.impl, self.dtype, name=name)(h)
            return batch_norm(self.train, self.dtype, f"bn_{name}", self.bn_momentum)(nn.relu(h))

        h = conv_relu_bn(x, c // 2, (1, 1, 1), "shrink")
        h = conv_relu_bn(h, c // 2, (3, 3, 3), "map1")
        h = conv_relu_bn(h, c // 2, (3, 3, 3), "map2")
        h = conv_relu_bn(h, c, (1, 1, 1), "expand")
        return SliceUpsample(self.upsample, self.impl, self.dtype, name="upsample")(h + x)


class SliceUpsample(nn.Module):
    """Transposed conv with kernel = stride = (1, 1, s): Z → s·Z, channels kept (s = 1 included)."""

    upsample: int
    impl: str = "xla"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return ConvTransposeKernelEqStride(x.shape[-1], (1, 1, self.upsample), self.impl, self.dtype,
                                           name="tconv")(x)


class PlainConvBlock(nn.Module):
    """SR U-Net block: 2 × [3×3×3 conv → ReLU]; no BatchNorm, no shortcut."""

    features: int
    train: bool = False
    impl: str = "xla"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i in (1, 2):
            x = nn.relu(Conv3D(self.features, (3, 3, 3), self.impl, self.dtype, name=f"conv{i}")(x))
        return x
