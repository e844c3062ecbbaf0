"""The network's layers, with one parameter tree whatever the convolution formulation.

`Conv3D` and `ConvTransposeKernelEqStride` hold 'kernel' (kx, ky, kz, C_in, C_out)
and 'bias' (C_out,) in float32, as `flax.linen.Conv` names and shapes them
(`ResizeConv` holds a `Conv3D` named 'conv');
`impl` ('xla' or 'cpu_fast', see `conv_impl`) changes only how they compute,
so a checkpoint trained on a GPU runs on a CPU and back. Kernels are
Glorot-uniform and biases zero (the Keras defaults of the reference model);
`dtype` is the compute dtype (float32 or bfloat16), parameters stay float32.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from iqt.models import conv_impl

Dtype = Any
UPSAMPLINGS = ("transposed", "resize_conv")   # model.upsample, see `ResizeConv`
KERAS_BN_MOMENTUM = 0.99
KERAS_BN_EPSILON = 1e-3


def glorot_uniform(key: jax.Array, shape: tuple[int, ...], dtype: Dtype = jnp.float32) -> jax.Array:
    """Glorot-uniform kernels, U(±sqrt(6 / (fan_in + fan_out))) with the receptive field counted.

    Drawn with the non-partitionable threefry: on XLA:CPU the partitionable one
    (the default) makes compiling an initialisation of this network take minutes.
    """
    with jax.threefry_partitionable(False):
        return nn.initializers.glorot_uniform()(key, shape, dtype)


class Conv3D(nn.Module):
    """Stride-1 'same' 3-D convolution with bias, (B, X, Y, Z, C_in) → (B, X, Y, Z, features)."""

    features: int
    kernel_size: tuple[int, int, int] = (3, 3, 3)
    impl: str = "xla"
    dtype: Dtype = jnp.float32
    kernel_init: Any = glorot_uniform

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (*self.kernel_size, x.shape[-1], self.features)
        kernel = self.param("kernel", self.kernel_init, shape, jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        y = conv_impl.conv3d_same(x.astype(self.dtype), kernel.astype(self.dtype), self.impl)
        return y + bias.astype(self.dtype)


class ConvTransposeKernelEqStride(nn.Module):
    """Transposed 3-D convolution with kernel = stride = `strides`: upsamples each axis by it."""

    features: int
    strides: tuple[int, int, int]
    impl: str = "xla"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (*self.strides, x.shape[-1], self.features)
        kernel = self.param("kernel", glorot_uniform, shape, jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        y = conv_impl.conv_transpose_kernel_eq_stride(
            x.astype(self.dtype), kernel.astype(self.dtype), self.impl)
        return y + bias.astype(self.dtype)


def nearest_upsample(x: jax.Array, factors: tuple[int, int, int]) -> jax.Array:
    """Nearest-neighbour upsampling, (B, X, Y, Z, C) → (B, fx·X, fy·Y, fz·Z, C): y[f·p + j] = x[p] for
    0 ≤ j < f along each axis (`np.repeat`). Along the slices this puts LF slice p on the HF slices
    f·p … f·p + f − 1, the ones it was acquired over (centred on f·p + (f − 1)/2, the slice convention)."""
    b, nx, ny, nz, c = x.shape
    fx, fy, fz = factors
    y = jnp.broadcast_to(x[:, :, None, :, None, :, None], (b, nx, fx, ny, fy, nz, fz, c))
    return y.reshape(b, nx * fx, ny * fy, nz * fz, c)


class ResizeConv(nn.Module):
    """Resize-convolution: `nearest_upsample` by `factors`, then a stride-1 'same' `Conv3D` (with bias),
    (B, X, Y, Z, C_in) → (B, fx·X, fy·Y, fz·Z, features); parameters 'conv': 'kernel'
    (*kernel_size, C_in, features), 'bias' (features,).

    No checkerboard by construction (Odena, Dumoulin, Olah, "Deconvolution and Checkerboard
    Artifacts", Distill 2016): all phases of an output voxel within the stride are computed by the
    same kernel, so a constant input gives a constant output away from the zero-padded border, for
    any kernel. A `ConvTransposeKernelEqStride` gives each phase its own tap, hence a periodic
    pattern unless the phases' taps are equal (Aitken et al., "Checkerboard artifact free sub-pixel
    convolution", arXiv:1707.02937, 2017, initialise them equal; training moves them apart).
    Cost: taps · C_in · features MACs per output voxel (the transposed conv: C_in · features).
    """

    features: int
    factors: tuple[int, int, int]
    kernel_size: tuple[int, int, int] = (3, 3, 3)
    impl: str = "xla"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        up = nearest_upsample(x.astype(self.dtype), self.factors)
        return Conv3D(self.features, self.kernel_size, self.impl, self.dtype, name="conv")(up)


def upsampling_layer(upsample: str, features: int, factors: tuple[int, int, int], impl: str, dtype: Dtype,
                     name: str, kernel_size: tuple[int, int, int] = (3, 3, 3)) -> nn.Module:
    """The decoder's upsampling for model.upsample: 'transposed' (kernel = stride = `factors`,
    parameters 'kernel', 'bias') or 'resize_conv' (`ResizeConv` with `kernel_size`, parameters 'conv')."""
    if upsample == "transposed":
        return ConvTransposeKernelEqStride(features, factors, impl, dtype, name=name)
    if upsample == "resize_conv":
        return ResizeConv(features, factors, kernel_size, impl, dtype, name=name)
    raise ValueError(f"upsampling must be one of {UPSAMPLINGS}, got {upsample!r}")


def batch_norm(train: bool, dtype: Dtype, name: str | None = None,
               momentum: float = KERAS_BN_MOMENTUM) -> nn.BatchNorm:
    """Keras-default BatchNorm (momentum 0.99, epsilon 1e-3) over all axes but channels.

    `momentum` in (0, 1): the running averages keep this share of themselves per
    step, so they forget their initial values after about 1 / (1 − momentum)
    steps (100 at 0.99: lower it for runs of a few hundred steps).

    Training normalises with the statistics of the whole batch it is given (under
    `jax.jit` with a batch-sharded input that is the global batch) and updates the
    running averages in 'batch_stats'; evaluation uses the running averages.
    """
    return nn.BatchNorm(use_running_average=not train, momentum=momentum,
                        epsilon=KERAS_BN_EPSILON, dtype=dtype, param_dtype=jnp.float32,
                        use_fast_variance=False, name=name)


def max_pool(x: jax.Array, window: tuple[int, int, int]) -> jax.Array:
    """Non-overlapping max-pool (window = stride), (B, X, Y, Z, C) → (B, X/wx, Y/wy, Z/wz, C).

    `lax.reduce_window`, whose gradient goes to one maximum per window chosen in a
    single pass (`jnp.max` over a reshape splits it by an equality test instead,
    which XLA's recomputation in separate fusions can break on tied values).
    """
    return nn.max_pool(x, window, strides=window, padding="VALID")
