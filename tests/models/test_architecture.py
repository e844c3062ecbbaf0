"""The network's structure, counted without compiling anything (`jax.eval_shape`)."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import pytest

from iqt.config_io import config_from_json, to_json
from iqt.errors import UserError
from iqt.models import (ArchitectureError, create_model, default_config, input_multiple, input_shape_lf,
                        level_schedule)
from iqt.models.flops import conv_macs_per_sample
from tests.conftest import slow   # the resize_conv variants: optional path, IQT_SLOW_TESTS=1


def abstract_variables(model, lf_spatial, batch=2):
    lf = jnp.zeros((batch, *lf_spatial, 1))
    return jax.eval_shape(lambda: model.init(jax.random.key(0), lf, train=False))


def count(tree) -> int:
    return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def test_reference_x8_network_has_the_published_parameter_and_statistics_counts():
    variables = abstract_variables(create_model(default_config(), 8), (32, 32, 4))
    # docs/method.md §2: counted by building the reference Keras model itself
    assert count(variables["params"]) == 9_692_185
    assert count(variables["batch_stats"]) == 7_152
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))


def test_peer_variant_without_the_decoders_bottleneck_block_matches_the_peers():
    config = default_config()
    config.decoder_bottleneck_core = False
    model = create_model(config, 8)
    variables = abstract_variables(model, (32, 32, 4))
    assert count(variables["params"]) == 6_085_401      # benchmarks/README.md, docs/method.md §2
    assert count(variables["batch_stats"]) == 7_152 - 2 * 3 * 256  # one conv_core(256): 3 BatchNorms
    # MACs per patch of the peers' network (benchmarks/README.md), counted independently
    assert conv_macs_per_sample(model, (32, 32, 4)) == 1_594_621_952


def test_reference_forward_costs_the_published_3_25_gflop_per_patch():
    macs = conv_macs_per_sample(create_model(default_config(), 8), (32, 32, 4))
    assert round(2 * macs / 1e9, 2) == 3.25
    # the extra decoder conv_core(256) on the 2×2×2 bottleneck, by hand
    extra = 8 * (256 * 256 + 2 * 27 * 256 * 256)
    assert macs - 1_594_621_952 == extra


@pytest.mark.parametrize("upsample", ["transposed", pytest.param("resize_conv", marks=slow)])
@pytest.mark.parametrize("factor, lf_spatial", [(2, (32, 32, 16)), (4, (32, 32, 8)), (6, (48, 48, 8)),
                                                (8, (32, 32, 4)), (8, (64, 48, 8))])
def test_output_is_the_input_upsampled_along_slices_for_every_factor(factor, lf_spatial, upsample):
    config = default_config()
    config.upsample = upsample
    model = create_model(config, factor)
    variables = abstract_variables(model, lf_spatial)
    lf = jax.ShapeDtypeStruct((3, *lf_spatial, 1), jnp.float32)
    out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, lf)
    assert out.shape == (3, lf_spatial[0], lf_spatial[1], lf_spatial[2] * factor, 1)
    assert out.dtype == jnp.float32
    assert input_shape_lf(out.shape[1:4], factor) == lf_spatial


def test_level_schedules_follow_the_slice_rule():
    def table(factor):
        return [(lv.features, lv.pool, lv.skip_upsample) for lv in level_schedule(factor, 5, 16)]

    # docs/method.md §2: ×8 pools (2,2,1)×3 then (2,2,2); skips s = 8, 4, 2, 1
    assert table(8) == [(16, (2, 2, 1), 8), (32, (2, 2, 1), 4), (64, (2, 2, 1), 2),
                        (128, (2, 2, 2), 1), (256, None, 1)]
    assert [s for _, _, s in table(4)][:4] == [4, 2, 1, 1]
    assert [p for _, p, _ in table(4)][:4] == [(2, 2, 1), (2, 2, 1), (2, 2, 2), (2, 2, 2)]
    assert [s for _, _, s in table(2)][:4] == [2, 1, 1, 1]
    # ×6 pools ×3 first, widths grow with the pooling
    assert table(6) == [(16, (3, 3, 1), 6), (48, (2, 2, 1), 2), (96, (2, 2, 2), 1),
                        (192, (2, 2, 2), 1), (384, None, 1)]


def test_every_skip_lands_on_the_hf_grid_of_its_level():
    for factor in (2, 3, 4, 6, 8, 12):
        for levels in (2, 3, 4, 5):
            z_lf, pooled = 1.0, 1
            z_enc = z_lf
            for lv in level_schedule(factor, levels, 4):
                hf_slices = factor * z_lf / pooled
                assert z_enc * lv.skip_upsample == max(hf_slices, z_enc)
                if lv.pool:
                    z_enc, pooled = z_enc / lv.pool[2], pooled * lv.down


def test_shallow_networks_lift_the_bottleneck_to_the_hf_grid():
    config = default_config()
    config.levels, config.base_features = 2, 4
    model = create_model(config, 8)
    variables = abstract_variables(model, (8, 8, 2))
    assert variables["params"]["lift"]["tconv"]["kernel"].shape == (1, 1, 4, 8, 8)
    out = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((1, 8, 8, 2, 1)), train=False), variables)
    assert out.shape == (1, 8, 8, 16, 1)
    assert "lift" not in abstract_variables(create_model(default_config(), 8), (32, 32, 4))["params"]


@pytest.mark.parametrize("factor, lf_spatial", [(8, (32, 32, 3)), (8, (24, 32, 4)), (6, (32, 32, 8)),
                                                (4, (32, 32, 2))])
def test_invalid_patch_sizes_are_a_clear_value_error(factor, lf_spatial):
    model = create_model(default_config(), factor)
    with pytest.raises(ValueError, match=r"multiples of (16|24)") as err:
        abstract_variables(model, lf_spatial)
    assert isinstance(err.value, UserError) and str(lf_spatial) in str(err.value)


def test_input_multiples_and_lf_shapes():
    config = default_config()
    assert input_multiple(config, 8) == (16, 16, 2)
    assert input_multiple(config, 4) == (16, 16, 4)
    assert input_multiple(config, 6) == (24, 24, 4)
    assert input_multiple(config, 2) == (16, 16, 8)
    assert input_shape_lf((32, 32, 32), 8) == (32, 32, 4)
    with pytest.raises(ArchitectureError, match="not a multiple of the factor 8"):
        input_shape_lf((32, 32, 36), 8)


@pytest.mark.parametrize("field, value, message", [
    ("name", "resnet", "model.name"), ("compute_dtype", "float16", "model.compute_dtype"),
    ("conv_impl", "cudnn", "model.conv_impl"), ("base_features", 15, "even"), ("levels", 1, "2 levels"),
    ("upsample", "bilinear", "model.upsample")])
def test_bad_model_configs_are_user_errors(field, value, message):
    config = default_config()
    config[field] = value
    with pytest.raises(UserError, match=message):
        create_model(config, 8)


@pytest.mark.parametrize("factor", [5, 7, 1, 2.5])
def test_unsupported_factors_are_user_errors(factor):
    with pytest.raises(UserError, match="factor"):
        create_model(default_config(), factor)


def test_default_config_survives_a_json_round_trip():
    config = default_config()
    assert config_from_json(to_json(config)).to_dict() == config.to_dict()


def test_sr_unet_has_no_batchnorm_and_plain_skips():
    config = default_config()
    config.name = "sr_unet"
    variables = abstract_variables(create_model(config, 8), (32, 32, 4))
    assert "batch_stats" not in variables
    params = variables["params"]
    assert set(params["enc1"]) == {"conv1", "conv2"}            # no shortcut, no BatchNorm
    assert set(params["skip1"]) == {"tconv"}                     # only the (1, 1, s) transposed conv
    assert params["skip1"]["tconv"]["kernel"].shape == (1, 1, 8, 16, 16)
    assert params["skip4"]["tconv"]["kernel"].shape == (1, 1, 1, 128, 128)
