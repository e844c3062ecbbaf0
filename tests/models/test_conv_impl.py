"""The two convolution formulations agree with each other and with a direct numpy sum.

Float32 throughout; relative error = max |a - b| / max |b|. The formulations
sum the same products in different orders, so they agree to ~1e-7 relative
(sums of a few hundred terms); the bound asserted is 2e-6 for values and input
gradients and 1e-5 for kernel gradients (sums over every voxel of the batch).
"""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iqt.models import conv_impl

VALUE_TOL, KERNEL_GRAD_TOL = 2e-6, 1e-5


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def numpy_conv_same(x, w):
    """Direct sum: out[p] = Σ_t xpad[p + t] · w[t] (cross-correlation, zero 'same' padding)."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    kx, ky, kz = w.shape[:3]
    xp = np.pad(x, [(0, 0), (kx // 2,) * 2, (ky // 2,) * 2, (kz // 2,) * 2, (0, 0)])
    _, nx, ny, nz, _ = x.shape
    out = 0.0
    for a, c, d in itertools.product(range(kx), range(ky), range(kz)):
        out = out + np.einsum("bxyzi,io->bxyzo", xp[:, a:a + nx, c:c + ny, d:d + nz], w[a, c, d])
    return out


def numpy_conv_transpose(x, w):
    """y[s·p + j] = Σ_c x[p, c] · w[j, c, :] with stride s = kernel size."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    b, nx, ny, nz, _ = x.shape
    sx, sy, sz, _, co = w.shape
    y = np.zeros((b, nx * sx, ny * sy, nz * sz, co))
    for i, j, k in itertools.product(range(sx), range(sy), range(sz)):
        y[:, i::sx, j::sy, k::sz] = np.einsum("bxyzc,co->bxyzo", x, w[i, j, k])
    return y


def conv_grads(x, w, probe, impl):
    """(dL/dx, dL/dw) of L = Σ conv3d_same(x, w) · probe."""
    loss = lambda x, w: jnp.sum(conv_impl.conv3d_same(x, w, impl) * probe)  # noqa: E731
    return jax.grad(loss, argnums=(0, 1))(x, w)


def random(shape, seed):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape, dtype=np.float32))


# (batch, X, Y, Z, C_in, C_out, kernel): folded 2-D path, odd sizes, tiny-grid im2col path, 1×1×1
CONV_CASES = [(2, 6, 5, 4, 3, 5, (3, 3, 3)), (1, 4, 4, 4, 4, 2, (3, 3, 3)),
              (3, 2, 2, 2, 5, 4, (3, 3, 3)), (2, 3, 4, 2, 3, 6, (1, 1, 1)), (1, 5, 3, 3, 2, 2, (3, 1, 3))]


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv_values_match_a_direct_sum(case):
    b, nx, ny, nz, ci, co, k = case
    x, w = random((b, nx, ny, nz, ci), 0), random((*k, ci, co), 1)
    expected = numpy_conv_same(x, w)
    for impl in conv_impl.IMPLS:
        assert rel_err(conv_impl.conv3d_same(x, w, impl), expected) < VALUE_TOL, impl


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv_gradients_agree_between_implementations(case):
    b, nx, ny, nz, ci, co, k = case
    x, w, probe = random((b, nx, ny, nz, ci), 2), random((*k, ci, co), 3), random((b, nx, ny, nz, co), 4)
    (dx_fast, dw_fast), (dx_xla, dw_xla) = conv_grads(x, w, probe, "cpu_fast"), conv_grads(x, w, probe, "xla")
    assert rel_err(dx_fast, dx_xla) < VALUE_TOL
    assert rel_err(dw_fast, dw_xla) < KERNEL_GRAD_TOL
    # kernel gradient by hand: dL/dw[t] = Σ_p xpad[p + t] probe[p]
    kx, ky, kz = k
    xp = np.pad(np.asarray(x, np.float64), [(0, 0), (kx // 2,) * 2, (ky // 2,) * 2, (kz // 2,) * 2, (0, 0)])
    dw_ref = np.stack([np.einsum("bxyzi,bxyzo->io", xp[:, a:a + nx, c:c + ny, d:d + nz], probe)
                       for a, c, d in itertools.product(range(kx), range(ky), range(kz))]).reshape(w.shape)
    assert rel_err(dw_fast, dw_ref) < KERNEL_GRAD_TOL


# (batch, X, Y, Z, C_in, C_out, block voxels): groups of 2 samples; 3 blocks of 2 x-planes;
# x-planes one at a time across a batch of 2; X = 5 prime (blocks of 1 plane)
BLOCK_CASES = [(4, 6, 5, 4, 3, 2, 250), (1, 6, 5, 4, 2, 3, 50), (2, 6, 5, 4, 3, 3, 50), (1, 5, 4, 3, 2, 2, 30)]


@pytest.mark.parametrize("case", BLOCK_CASES, ids=str)
def test_blocked_folded_conv_matches_a_direct_sum(case, monkeypatch):
    """Large inputs are convolved a block at a time: the blocks' seams are invisible,
    in the values and in both gradients."""
    b, nx, ny, nz, ci, co, block_voxels = case
    monkeypatch.setattr(conv_impl, "FOLDED_BLOCK_VOXELS", block_voxels)
    x, w, probe = random((b, nx, ny, nz, ci), 5), random((3, 3, 3, ci, co), 6), random((b, nx, ny, nz, co), 7)
    assert rel_err(conv_impl.conv3d_same(x, w, "cpu_fast"), numpy_conv_same(x, w)) < VALUE_TOL
    (dx_fast, dw_fast), (dx_xla, dw_xla) = conv_grads(x, w, probe, "cpu_fast"), conv_grads(x, w, probe, "xla")
    assert rel_err(dx_fast, dx_xla) < VALUE_TOL
    assert rel_err(dw_fast, dw_xla) < KERNEL_GRAD_TOL


@pytest.mark.parametrize("strides", [(1, 1, 4), (2, 2, 2), (3, 3, 3), (1, 1, 1)], ids=str)
def test_kernel_equals_stride_transposed_conv_matches_a_direct_scatter(strides):
    x, w = random((2, 3, 2, 2, 3), 5), random((*strides, 3, 4), 6)
    expected = numpy_conv_transpose(x, w)
    probe = random(expected.shape, 7)
    grads = {}
    for impl in conv_impl.IMPLS:
        assert rel_err(conv_impl.conv_transpose_kernel_eq_stride(x, w, impl), expected) < VALUE_TOL, impl
        loss = lambda x, w: jnp.sum(conv_impl.conv_transpose_kernel_eq_stride(x, w, impl) * probe)  # noqa: E731,B023
        grads[impl] = jax.grad(loss, argnums=(0, 1))(x, w)
    for fast, xla in zip(grads["cpu_fast"], grads["xla"]):
        assert rel_err(fast, xla) < VALUE_TOL


def test_auto_picks_the_native_convolution_off_cpu(monkeypatch):
    assert conv_impl.resolve_impl("auto") == ("cpu_fast" if jax.default_backend() == "cpu" else "xla")
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert conv_impl.resolve_impl("auto") == "xla"
    assert conv_impl.resolve_impl("cpu_fast") == "cpu_fast"
    with pytest.raises(ValueError, match="conv_impl"):
        conv_impl.resolve_impl("cudnn")
