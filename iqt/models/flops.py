"""Multiply-accumulates of a network's convolutions, read off the real layer shapes.

Every `Conv3D` and `ConvTransposeKernelEqStride` call is intercepted during an
abstract evaluation (`jax.eval_shape`: nothing is computed or compiled):
a 'same' convolution costs out_voxels · kx·ky·kz · C_in · C_out MACs (the conv of a
`ResizeConv` on the upsampled grid), a kernel-equals-stride transposed convolution
in_voxels · kx·ky·kz · C_in · C_out.
Bias adds, BatchNorm and activations are not counted (the usual convention,
and that of the benchmarks' peers, benchmarks/README.md). A training step costs about 3× the
forward pass (input and kernel gradients each ≈ one forward).
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from iqt.models.layers import Conv3D, ConvTransposeKernelEqStride


def conv_macs_per_sample(model: nn.Module, lf_spatial: tuple[int, int, int]) -> int:
    """Convolution MACs of one forward pass on one LF patch (X, Y, Z_lf)."""
    total = 0

    def count(next_fun, args, kwargs, context):
        nonlocal total
        out = next_fun(*args, **kwargs)
        module = context.module
        if context.method_name == "__call__" and isinstance(module, (Conv3D, ConvTransposeKernelEqStride)):
            x = args[0]
            taps = math.prod(module.kernel_size if isinstance(module, Conv3D) else module.strides)
            voxels = math.prod((out if isinstance(module, Conv3D) else x).shape[1:4])
            total += voxels * taps * x.shape[-1] * module.features
        return out

    lf = jax.ShapeDtypeStruct((1, *lf_spatial, 1), jnp.float32)

    def forward(lf):
        variables = model.init(jax.random.key(0), lf, train=False)
        with nn.intercept_methods(count):
            return model.apply(variables, lf, train=False)

    jax.eval_shape(forward, lf)
    return total
