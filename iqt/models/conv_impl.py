"""Two formulations of the same 3-D convolutions: XLA's native one and a CPU-fast one.

Arrays are channels-last (B, X, Y, Z, C); kernels are (kx, ky, kz, C_in, C_out),
the layout of `flax.linen.Conv`, so parameters move freely between the two.

- `conv3d_same(x, kernel, impl)`: stride-1 convolution, "same" zero padding,
  odd kernel sizes (1 or 3 here).
- `conv_transpose_kernel_eq_stride(x, kernel, impl)`: transposed convolution
  whose kernel equals its stride (no overlap): every input voxel writes one
  (kx, ky, kz) block, `y[s·p + j] = Σ_c x[p, c] · kernel[j, c, :]` (the Keras
  `Conv3DTranspose` meaning).

impl "xla": `lax.conv_general_dilated` / `lax.conv_transpose`; cuDNN on GPUs, the
TPU's own kernels on TPUs. XLA:CPU runs its 3-D convolution at 10–40 GFLOP/s,
so impl "cpu_fast" rewrites everything as what XLA:CPU does well (2-D
convolutions and matrix products):
- a k×k×k convolution is one 2-D convolution over (y, z) with x folded into
  the batch axis (a free reshape in channels-last) that produces the kx taps
  as kx·C_out channels, then a shifted sum along x. Its input gradient is the
  same thing with the flipped kernel; its kernel gradient is ky·kz matrix
  products (a custom VJP: XLA's own kernel-gradient convolution is slow);
- on tiny grids (≤ 32 voxels, the bottleneck) im2col + one matrix product;
- 1×1×1 convolutions and kernel-equals-stride transposed convolutions are
  matrix products (plus a reshape).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

IMPLS = ("xla", "cpu_fast")
_DN3 = ("NDHWC", "DHWIO", "NDHWC")
_DN2 = ("NHWC", "HWIO", "NHWC")
IM2COL_MAX_VOXELS = 32  # per sample; measured: im2col wins at 2³, loses at 4³


def resolve_impl(impl: str) -> str:
    """'auto' → 'cpu_fast' on the CPU backend, 'xla' on GPU/TPU."""
    if impl == "auto":
        return "cpu_fast" if jax.default_backend() == "cpu" else "xla"
    if impl not in IMPLS:
        raise ValueError(f"conv_impl must be 'auto', 'xla' or 'cpu_fast', got {impl!r}")
    return impl


def conv3d_same(x: jax.Array, kernel: jax.Array, impl: str) -> jax.Array:
    """(B, X, Y, Z, Ci) * (kx, ky, kz, Ci, Co) → (B, X, Y, Z, Co), stride 1, zero 'same' padding."""
    if any(k % 2 == 0 for k in kernel.shape[:3]):
        raise ValueError(f"'same' convolution needs odd kernel sizes, got {kernel.shape[:3]}")
    if impl == "xla":
        return lax.conv_general_dilated(x, kernel, (1, 1, 1), "SAME", dimension_numbers=_DN3)
    if kernel.shape[:3] == (1, 1, 1):
        return _pointwise(x, kernel)
    if x.shape[1] * x.shape[2] * x.shape[3] <= IM2COL_MAX_VOXELS:
        return _conv_im2col(x, kernel)
    return _conv_folded(x, kernel)


def conv_transpose_kernel_eq_stride(x: jax.Array, kernel: jax.Array, impl: str) -> jax.Array:
    """(B, X, Y, Z, Ci) → (B, X·kx, Y·ky, Z·kz, Co) with stride = kernel size."""
    strides = kernel.shape[:3]
    if impl == "xla":
        # lax.conv_transpose without transpose_kernel correlates with the kernel as
        # given, which puts kernel[k-1-j] at offset j: flip to get kernel[j].
        return lax.conv_transpose(x, jnp.flip(kernel, (0, 1, 2)), strides, "VALID",
                                  dimension_numbers=_DN3)
    b, nx, ny, nz, ci = x.shape
    (sx, sy, sz), co = strides, kernel.shape[-1]
    w = jnp.transpose(kernel, (3, 0, 1, 2, 4)).reshape(ci, sx * sy * sz * co)
    y = jnp.dot(x.reshape(-1, ci), w).reshape(b, nx, ny, nz, sx, sy, sz, co)
    y = jnp.transpose(y, (0, 1, 4, 2, 5, 3, 6, 7))
    return y.reshape(b, nx * sx, ny * sy, nz * sz, co)


# --- CPU formulations -------------------------------------------------------


def _pointwise(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return jnp.dot(x, kernel[0, 0, 0])


def _pad_same(x: jax.Array, kernel_size: tuple[int, ...], axes: tuple[int, ...]) -> jax.Array:
    pads = [(0, 0)] * x.ndim
    for k, axis in zip(kernel_size, axes):
        pads[axis] = (k // 2, k // 2)
    return jnp.pad(x, pads)


def _conv_im2col(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """All taps gathered into channels, then one matrix product (tiny grids only)."""
    b, nx, ny, nz, ci = x.shape
    kx, ky, kz = kernel.shape[:3]
    xp = _pad_same(x, (kx, ky, kz), (1, 2, 3))
    cols = jnp.concatenate([xp[:, a:a + nx, c:c + ny, d:d + nz]
                            for a in range(kx) for c in range(ky) for d in range(kz)], axis=-1)
    return jnp.dot(cols, kernel.reshape(kx * ky * kz * ci, -1))


def _conv2d_taps(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """2-D 'same' conv over (y, z) with x in the batch axis; the kx taps come out
    as separate channels: (B, X, Y, Z, Ci) → (B, X, Y, Z, kx, Co)."""
    b, nx, ny, nz, ci = x.shape
    kx, ky, kz, _, co = kernel.shape
    w2 = jnp.transpose(kernel, (1, 2, 3, 0, 4)).reshape(ky, kz, ci, kx * co)
    y = lax.conv_general_dilated(x.reshape(b * nx, ny, nz, ci), w2, (1, 1), "SAME",
                                 dimension_numbers=_DN2)
    return y.reshape(b, nx, ny, nz, kx, co)


def _shift_sum_x(taps: jax.Array) -> jax.Array:
    """out[x] = Σ_a taps[x + a - r, a] (zero outside), r = kx // 2."""
    nx, kx = taps.shape[1], taps.shape[4]
    tp = _pad_same(taps, (kx,), (1,))
    return sum(tp[:, a:a + nx, :, :, a] for a in range(kx))


def _folded_forward(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return _shift_sum_x(_conv2d_taps(x, kernel))


@jax.custom_vjp
def _conv_folded(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return _folded_forward(x, kernel)


def _conv_folded_fwd(x, kernel):
    return _folded_forward(x, kernel), (x, kernel)


def _conv_folded_bwd(residuals, g):
    x, kernel = residuals
    # input gradient: the same 'same' convolution with the flipped, transposed kernel
    dx = _folded_forward(g, jnp.flip(kernel, (0, 1, 2)).swapaxes(3, 4))
    return dx.astype(x.dtype), _kernel_grad(x, g, kernel.shape).astype(kernel.dtype)


_conv_folded.defvjp(_conv_folded_fwd, _conv_folded_bwd)


def _kernel_grad(x: jax.Array, g: jax.Array, kernel_shape: tuple[int, ...]) -> jax.Array:
    """dK[a, c, d] = Σ_voxels x[p + (a, c, d) - r] g[p]ᵀ, as ky·kz matrix products
    whose right factor stacks g shifted by the kx taps along x."""
    b, nx, ny, nz, ci = x.shape
    kx, ky, kz, _, co = kernel_shape
    rx = kx // 2
    gp = _pad_same(g, (kx,), (1,))
    # g_taps[x', a] = g[x' - a + rx]: the output voxel that input x' feeds through tap a
    g_taps = jnp.concatenate([gp[:, 2 * rx - a:2 * rx - a + nx] for a in range(kx)], axis=-1)
    g_taps = g_taps.reshape(-1, kx * co)
    xp = _pad_same(x, (ky, kz), (2, 3))
    dot = functools.partial(jnp.dot, preferred_element_type=jnp.float32)
    blocks = [dot(xp[:, :, c:c + ny, d:d + nz].reshape(-1, ci).T, g_taps)
              for c in range(ky) for d in range(kz)]
    dk = jnp.stack(blocks).reshape(ky, kz, ci, kx, co)
    return jnp.transpose(dk, (3, 0, 1, 2, 4))
