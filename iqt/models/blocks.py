"""Building blocks of the ANISO U-Net and of the SR U-Net baseline (docs/method.md §2).

Every block maps channels-last (B, X, Y, Z, C) arrays; `impl` and `dtype` are
passed down to the convolutions (see `layers`).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from iqt.models.layers import KERAS_BN_MOMENTUM, Conv3D, Dtype, batch_norm, nearest_upsample, upsampling_layer

SLICE_KERNEL = 3   # taps along the slices of a 'resize_conv' slice upsampling (s > 1)


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
    1×1×1 conv to C → ReLU → BN; + block input; `SliceUpsample` by s."""

    upsample: int
    train: bool
    impl: str = "xla"
    dtype: Dtype = jnp.float32
    bn_momentum: float = KERAS_BN_MOMENTUM
    upsampling: str = "transposed"   # model.upsample: 'transposed' | 'resize_conv'

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
        return SliceUpsample(self.upsample, self.impl, self.dtype, self.upsampling, name="upsample")(h + x)


class SliceUpsample(nn.Module):
    """Upsampling of the slice axis by s, (B, X, Y, Z, C) → (B, X, Y, s·Z, C) (s = 1 included).

    'transposed' (the published network): a transposed conv with kernel = stride = (1, 1, s),
    parameters 'tconv' (1, 1, s, C, C); each of the s HF slices of an LF slice has its own tap.
    'resize_conv': `ResizeConv`'s nearest ×s along the slices then a (1, 1, 3) 'same' conv,
    parameters 'conv' (1, 1, 3, C, C); (1, 1, 1) at s = 1, where nothing is upsampled.
    Nearest rather than linear first: it puts LF slice j on the s HF slices it was acquired
    over (the slice convention centres it on s·j + (s − 1)/2), with no boundary rule at the
    patch's end slices; linear would spread it over the neighbours' slices, and Odena et al.
    (Distill 2016) found bilinear resize-convolution to resist high frequencies where nearest
    worked best (the smooth interpolation is model.residual's). (1, 1, 3) rather than (1, 1, 2s − 1):
    3 HF·C² MACs, 3× the transposed conv's, where 2s − 1 would cost 15× at s = 8; it blends each
    LF slice with its neighbours across the block edges, and the decoder's 3×3×3 convs on the HF
    grid shape the profile within the block.
    """

    upsample: int
    impl: str = "xla"
    dtype: Dtype = jnp.float32
    upsampling: str = "transposed"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        factors, c = (1, 1, self.upsample), x.shape[-1]
        if self.upsampling == "resize_conv":   # a ResizeConv whose 'conv' sits directly in this module
            kernel = (1, 1, SLICE_KERNEL if self.upsample > 1 else 1)
            up = nearest_upsample(x.astype(self.dtype), factors)
            return Conv3D(c, kernel, self.impl, self.dtype, name="conv")(up)
        return upsampling_layer(self.upsampling, c, factors, self.impl, self.dtype, "tconv")(x)


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
