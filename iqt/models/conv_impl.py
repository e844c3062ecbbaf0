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
- a k×k×k convolution is a sum of kx 2-D convolutions over (y, z), one per
  tap along x, with x folded into the batch axis (a free reshape in
  channels-last), run a cache-sized block of x-planes (or of samples) at a
  time: XLA:CPU's 2-D convolution (YNNPACK) runs about twice as fast per voxel
  on ≤ 16k voxels as on a whole 256 × 256 × 32 grid. Its input gradient is
  the same thing with the flipped kernel; its kernel gradient is ky·kz matrix
  products (a custom VJP: XLA's own kernel-gradient convolution is slow);
- on tiny grids (≤ 32 voxels, the bottleneck) im2col + one matrix product;
- 1×1×1 convolutions and kernel-equals-stride transposed convolutions are
  matrix products (plus a reshape).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

IMPLS = ("xla", "cpu_fast")
_DN3 = ("NDHWC", "DHWIO", "NDHWC")
_DN2 = ("NHWC", "HWIO", "NHWC")
IM2COL_MAX_VOXELS = 32  # per sample; measured: im2col wins at 2³, loses at 4³
FOLDED_BLOCK_VOXELS = 16384  # per 2-D convolution call; measured: 4096–65536 all within noise,
                             # ~1.4× faster than one call over a 256 × 256 × 32 grid


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


def _conv2d(x: jax.Array, kernel2d: jax.Array) -> jax.Array:
    """2-D 'same' conv over (y, z) with x folded into the batch axis."""
    b, nx, ny, nz, ci = x.shape
    y = lax.conv_general_dilated(x.reshape(b * nx, ny, nz, ci), kernel2d, (1, 1), "SAME",
                                 dimension_numbers=_DN2)
    return y.reshape(b, nx, ny, nz, -1)


def _stack_x_shifts_back(x: jax.Array, kx: int) -> jax.Array:
    """Channels [x[p - (a - r)] for a in 0..kx-1] (zero outside), r = kx // 2."""
    nx = x.shape[1]
    xp = _pad_same(x, (kx,), (1,))
    return jnp.concatenate([xp[:, kx - 1 - a:kx - 1 - a + nx] for a in range(kx)], axis=-1)


def _folded_forward(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """The k×k×k 'same' conv as 2-D convs over (y, z), ≤ FOLDED_BLOCK_VOXELS voxels at a time.

    Large inputs are convolved (`lax.map`) in groups of whole samples, or else in
    blocks of x-planes, each with its kx // 2 neighbours on both sides as context.
    """
    b, nx, ny, nz, ci = x.shape
    r = kernel.shape[0] // 2
    if b > 1 and nx * ny * nz < FOLDED_BLOCK_VOXELS < b * nx * ny * nz:
        group = _largest_divisor(b, FOLDED_BLOCK_VOXELS // (nx * ny * nz))
        blocks = lax.map(lambda xs: _folded_forward(xs, kernel), x.reshape(b // group, group, nx, ny, nz, ci))
        return blocks.reshape(b, nx, ny, nz, -1)
    xp = _pad_same(x, kernel.shape[:1], (1,))   # r zero planes at both ends of x
    planes = _largest_divisor(nx, FOLDED_BLOCK_VOXELS // (b * ny * nz))
    if planes == nx:
        return _folded_block(xp, kernel)

    def block(start):
        return _folded_block(lax.dynamic_slice_in_dim(xp, start, planes + 2 * r, axis=1), kernel)

    blocks = lax.map(block, jnp.arange(0, nx, planes))       # (nx / planes, b, planes, ny, nz, co)
    return jnp.moveaxis(blocks, 0, 1).reshape(b, nx, ny, nz, -1)


def _largest_divisor(n: int, at_most: int) -> int:
    """The largest divisor of n that is at most `at_most` (1 at least)."""
    return max(d for d in range(1, max(1, min(n, at_most)) + 1) if n % d == 0)


def _folded_block(xp: jax.Array, kernel: jax.Array) -> jax.Array:
    """The conv on the x-planes of `xp` but its kx // 2 first and last (given as context):
    out[p] = Σ_a conv2d(x[p + a - r], kernel[a]), one 2-D conv over (y, z) per tap along x."""
    kx = kernel.shape[0]
    nx = xp.shape[1] - 2 * (kx // 2)
    return sum(_conv2d(xp[:, a:a + nx], kernel[a]) for a in range(kx))


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
    (one at a time, in a scan: a third of the memory of unrolling them) whose right
    factor stacks g shifted by the kx taps along x."""
    b, nx, ny, nz, ci = x.shape
    kx, ky, kz, _, co = kernel_shape
    # g_taps[p, a] = g[p - (a - r)]: the output voxel that input voxel p feeds through tap a
    g_taps = _stack_x_shifts_back(g, kx).reshape(-1, kx * co)
    xp = _pad_same(x, (ky, kz), (2, 3))

    def block(carry, offset):
        c, d = offset // kz, offset % kz
        xs = lax.dynamic_slice(xp, (0, 0, c, d, 0), (b, nx, ny, nz, ci)).reshape(-1, ci)
        return carry, jnp.dot(xs.T, g_taps, preferred_element_type=jnp.float32)

    _, blocks = lax.scan(block, None, jnp.arange(ky * kz))
    return jnp.transpose(blocks.reshape(ky, kz, ci, kx, co), (3, 0, 1, 2, 4))
