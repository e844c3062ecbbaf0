"""model.upsample: the resize-convolution is nearest upsampling plus a conv, has no checkerboard,
and 'transposed' is still the published network.

Independent references: `np.repeat` for nearest-neighbour upsampling, hand counts of the
parameters, and a digest of the default network's parameter tree taken before the option existed.
"""
from __future__ import annotations

import hashlib
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iqt.errors import UserError
from iqt.models import ArchitectureError, create_model, default_config, level_schedule
from iqt.models.blocks import SliceUpsample
from iqt.models.conv_impl import IMPLS
from iqt.models.flops import conv_macs_per_sample
from iqt.models.layers import ConvTransposeKernelEqStride, ResizeConv, nearest_upsample


def random(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape, dtype=np.float32))


def repeat(x, factors):
    """Nearest-neighbour upsampling by numpy: each voxel repeated f times along each axis."""
    out = np.asarray(x)
    for axis, f in zip((1, 2, 3), factors):
        out = np.repeat(out, f, axis=axis)
    return out


def delta(kernel):
    """A 'same' conv kernel (kx, ky, kz, C_in, C_out) that copies channel i to i (centre tap 1, else 0)."""
    out = np.zeros(kernel.shape, np.float32)
    centre = tuple(k // 2 for k in kernel.shape[:3])
    for i in range(min(kernel.shape[3:])):
        out[(*centre, i, i)] = 1.0
    return jnp.asarray(out)


def with_delta_upsampling(params):
    """`params` with every resize-conv kernel a delta and every bias zero."""
    def fill(path, leaf):
        keys = [k.key for k in path]
        if len(keys) < 2 or keys[-2] != "conv":
            return leaf
        return delta(leaf) if keys[-1] == "kernel" else jnp.zeros_like(leaf)
    return jax.tree_util.tree_map_with_path(fill, params)


def test_nearest_upsample_is_numpy_repeat():
    x = random((2, 3, 2, 4, 5))
    for factors in ((2, 2, 2), (3, 3, 3), (1, 1, 8), (2, 1, 3)):
        np.testing.assert_array_equal(nearest_upsample(x, factors), repeat(x, factors))


LAYERS = [ResizeConv(6, (2, 2, 2)), ResizeConv(6, (3, 3, 3)), ResizeConv(6, (1, 1, 8), (1, 1, 3)),
          SliceUpsample(4, upsampling="resize_conv"), SliceUpsample(1, upsampling="resize_conv")]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("layer", LAYERS, ids=lambda m: f"{type(m).__name__}-{getattr(m, 'factors', None)}"
                         f"-{getattr(m, 'upsample', None)}")
def test_a_resize_conv_with_a_delta_kernel_is_nearest_upsampling(layer, impl):
    x = random((2, 4, 3, 4, 6))
    layer = layer.clone(impl=impl)
    params = with_delta_upsampling(layer.init(jax.random.key(0), x)["params"])
    factors = getattr(layer, "factors", (1, 1, getattr(layer, "upsample", 1)))
    np.testing.assert_array_equal(layer.apply({"params": params}, x), repeat(x, factors))


def upsampling_calls(model, variables, lf):
    """[(layer path, factors, input, output)] of every upsampling layer of a forward pass."""
    calls = []

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        module = context.module
        if context.method_name == "__call__" and isinstance(module, (ResizeConv, SliceUpsample)):
            factors = module.factors if isinstance(module, ResizeConv) else (1, 1, module.upsample)
            calls.append(("/".join(module.path), factors, np.asarray(args[0]), np.asarray(out)))
        return out

    with nn.intercept_methods(record):
        model.apply(variables, lf, train=False)
    return calls


@pytest.mark.parametrize("factor, levels, lf_spatial, name", [(8, 2, (8, 8, 2), "aniso_unet"),
                                                              (6, 3, (12, 12, 4), "aniso_unet"),
                                                              (8, 3, (8, 8, 2), "sr_unet")])
def test_the_networks_upsampling_layers_with_delta_kernels_are_nearest_upsampling(factor, levels, lf_spatial,
                                                                                   name):
    config = default_config()
    config.update(dict(base_features=4, levels=levels, name=name, upsample="resize_conv", conv_impl="xla"))
    model, lf = create_model(config, factor), random((1, *lf_spatial, 1), 3)
    variables = model.init(jax.random.key(0), lf, train=False)
    variables = {**variables, "params": with_delta_upsampling(variables["params"])}
    calls = upsampling_calls(model, variables, lf)
    plan = level_schedule(factor, levels, 4)
    lift = plan[-1].skip_upsample > 1
    assert len(calls) == 2 * (levels - 1) + lift     # a skip and an up per level, and the lift
    assert {path.split("/")[0] for path, *_ in calls} >= {"up2", "skip1"} | ({"lift"} if lift else set())
    for path, factors, x, y in calls:
        channels = min(x.shape[-1], y.shape[-1])
        np.testing.assert_array_equal(y[..., :channels], repeat(x, factors)[..., :channels], err_msg=path)


def phase_spread(out, interior):
    """max over channels of (max − min) over the interior voxels, relative to the largest |value|."""
    inner = np.asarray(out)[(slice(None), *interior)]
    return float(np.max(np.ptp(inner, axis=(0, 1, 2, 3))) / np.max(np.abs(out)))


@pytest.mark.parametrize("kernels", ["initial", "random"])
@pytest.mark.parametrize("impl", IMPLS)
def test_no_checkerboard_from_a_constant_input_unlike_the_transposed_conv(kernels, impl):
    """Odena et al. 2016: a constant feature map upsampled by a resize-conv stays constant (away from
    the zero-padded border), whatever its kernel; a kernel-equals-stride transposed conv stamps its
    kernel's per-phase sums onto it, a pattern of the stride's period."""
    x = jnp.full((1, 4, 4, 4, 6), 0.7, jnp.float32)
    cases = [(ResizeConv(5, (2, 2, 2), impl=impl), ConvTransposeKernelEqStride(5, (2, 2, 2), impl), 1),
             (SliceUpsample(8, impl, upsampling="resize_conv"), SliceUpsample(8, impl), None)]
    for resize, transposed, border in cases:
        # 3×3×3: one voxel of border on every axis; (1, 1, 3): one slice at both ends of z
        interior = (slice(1, -1),) * 3 if border else (slice(None), slice(None), slice(1, -1))
        spreads = []
        for layer in (resize, transposed):
            params = layer.init(jax.random.key(1), x)["params"]
            if kernels == "random":
                params = jax.tree.map(lambda p: random(p.shape, 2), params)
            spreads.append(phase_spread(layer.apply({"params": params}, x), interior))
        assert spreads[0] < 1e-6, type(resize).__name__
        assert spreads[1] > 0.05, type(transposed).__name__


def abstract_variables(config, factor, lf_spatial):
    model = create_model(config, factor)
    return model, jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((2, *lf_spatial, 1)), train=False))


def demo_config(**fields):
    """launch/configs/demo.py's network: ×6, 8 base features, 4 levels, cubic residual."""
    config = default_config()
    config.update(dict(base_features=8, levels=4, residual="cubic", bn_momentum=0.9, **fields))
    return config


@pytest.mark.parametrize("fields, factor, lf_spatial", [
    ({}, 6, (24, 24, 8)),                                          # the demo: 4 levels, 8 features
    ({"base_features": 2, "levels": 2}, 8, (8, 8, 2)),             # the tiny demo: lifts its bottleneck
], ids=["demo-x6", "tiny-x8"])
def test_resize_conv_networks_give_hf_patches(fields, factor, lf_spatial):
    config = demo_config(upsample="resize_conv")
    config.update(fields)
    model, variables = abstract_variables(config, factor, lf_spatial)
    out = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((3, *lf_spatial, 1)), train=False), variables)
    assert out.shape == (3, lf_spatial[0], lf_spatial[1], factor * lf_spatial[2], 1)
    assert out.dtype == jnp.float32


def count(tree) -> int:
    return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def test_resize_conv_parameters_by_hand_for_the_demo_network():
    """Demo ×6: up{l} 3×3×3 instead of d³ (d = 3 at level 1, else 2); skips (1, 1, 3) instead of
    (1, 1, s) where s > 1, (1, 1, 1) either way at s = 1. Biases are the same."""
    plan = level_schedule(6, 4, 8)
    extra = sum((27 - lv.down ** 3) * plan[lv.index].features * lv.features for lv in plan[:-1])
    extra += sum((3 - lv.skip_upsample) * lv.features ** 2 for lv in plan[:-1] if lv.skip_upsample > 1)
    _, resize = abstract_variables(demo_config(upsample="resize_conv"), 6, (24, 24, 8))
    _, transposed = abstract_variables(demo_config(), 6, (24, 24, 8))
    assert count(resize["params"]) - count(transposed["params"]) == extra == 109_824
    assert count(transposed["params"]) == 1_348_161
    assert jax.tree.structure(resize["batch_stats"]) == jax.tree.structure(transposed["batch_stats"])
    paths = ["/".join(k.key for k in p) for p, _ in jax.tree_util.tree_leaves_with_path(resize["params"])]
    assert not any("tconv" in p for p in paths)               # a transposed checkpoint cannot load into it
    assert "up2/conv/kernel" in paths and "skip1/upsample/conv/kernel" in paths
    assert resize["params"]["skip1"]["upsample"]["conv"]["kernel"].shape == (1, 1, 3, 8, 8)
    assert resize["params"]["skip3"]["upsample"]["conv"]["kernel"].shape == (1, 1, 1, 48, 48)


def test_resize_conv_costs_by_hand_for_the_demo_network():
    """MACs per patch (24, 24, 48 HF): on a level's HF grid of V voxels, up{l} costs V·27·C_in·C_out
    instead of V·C_in·C_out, a skip's slice upsampling V·3·C² instead of V·C² where s > 1."""
    plan, hf = level_schedule(6, 4, 8), (24, 24, 48)
    pooled = np.cumprod([1] + [lv.down for lv in plan[:-1]])
    voxels = [math.prod(n // int(p) for n in hf) for p in pooled]
    extra = sum(voxels[lv.index - 1] * 26 * plan[lv.index].features * lv.features for lv in plan[:-1])
    extra += sum(voxels[lv.index - 1] * 2 * lv.features ** 2 for lv in plan[:-1] if lv.skip_upsample > 1)
    macs = {up: conv_macs_per_sample(create_model(demo_config(upsample=up), 6), (24, 24, 8))
            for up in ("transposed", "resize_conv")}
    assert macs["resize_conv"] - macs["transposed"] == extra == 188_743_680
    assert macs["transposed"] == 289_038_336      # 1.65× as many for resize_conv


def tree_digest(variables) -> str:
    """sha256 of the lines 'collection/module/.../leaf (shape)', in the tree's order."""
    lines = [f"{'/'.join(k.key for k in path)} {tuple(leaf.shape)}"
             for path, leaf in jax.tree_util.tree_leaves_with_path(variables)]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


# Digests of the networks' parameter and statistics trees before model.upsample existed
BEFORE_UPSAMPLE_OPTION = {
    "x8-default": "1971b607f8fd9d849240472a8a80eb6aa8c2118e77991d56068cceec348a169e",
    "x6-demo": "5f47ca33503474227007c7975e1b749bcf6982caa02edef4532737f517d5f15d",
}


@pytest.mark.parametrize("explicit", [False, True])
def test_transposed_is_the_network_of_before_the_option(explicit):
    cases = {"x8-default": (default_config(), 8, (32, 32, 4)), "x6-demo": (demo_config(), 6, (24, 24, 8))}
    for key, (config, factor, lf_spatial) in cases.items():
        if explicit:
            config.upsample = "transposed"
        else:
            del config["upsample"]                             # the config of a run saved before the option
        _, variables = abstract_variables(config, factor, lf_spatial)
        assert tree_digest(variables) == BEFORE_UPSAMPLE_OPTION[key], key
    assert default_config().upsample == "transposed"


@pytest.mark.parametrize("value", ["nearest", "Resize_Conv", None])
def test_an_unknown_upsampling_is_an_architecture_error_listing_the_choices(value):
    config = default_config()
    config.upsample = value
    with pytest.raises(ArchitectureError, match=r"model\.upsample must be one of \['resize_conv', 'transposed'\]") \
            as err:
        create_model(config, 8)
    assert isinstance(err.value, UserError)
