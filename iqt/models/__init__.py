"""Networks that turn LF patches into HF patches: the ANISO U-Net and the SR U-Net baseline.

    model = create_model(config.model, factor=8)
    variables = model.init(key, lf, train=False)            # lf: (B, X, Y, Z_lf, 1)
    hf, updates = model.apply(variables, lf, train=True, mutable=["batch_stats"])
    hf = model.apply(variables, lf, train=False)              # (B, X, Y, 8·Z_lf, 1)

Valid patch sizes per factor: see `schedule` (e.g. ×8: (32, 32, 4) → (32, 32, 32)).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from iqt.models import conv_impl
from iqt.models import schedule
from iqt.models.layers import UPSAMPLINGS
from iqt.models.schedule import ArchitectureError, input_shape_lf, level_schedule
from iqt.models.unet import SliceUNet

__all__ = ["ArchitectureError", "SliceUNet", "create_model", "default_config", "input_multiple",
           "input_shape_lf", "level_schedule", "resolve_compute_dtype"]

MODEL_NAMES = {"aniso_unet": "aniso", "sr_unet": "sr"}
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
ACCELERATOR_COMPUTE_DTYPE = "bfloat16"   # 'auto' on GPU/TPU: matrix units at bf16 rate, half the memory traffic
RESIDUALS = ("none", "linear", "cubic")


def default_config() -> ml_collections.ConfigDict:
    """The `model` section of a training config (the published ×8 network)."""
    c = ml_collections.ConfigDict()
    c.name = "aniso_unet"            # 'aniso_unet' | 'sr_unet'
    c.base_features = 16             # channels of level 1; level l has base·P_l
    c.levels = 5                     # encoder levels including the bottleneck
    c.compute_dtype = "auto"         # 'float32' | 'bfloat16' | 'auto' (bfloat16 on GPU/TPU, float32 on
                                     # CPU); parameters, gradients, Adam and the loss stay float32
    c.conv_impl = "auto"             # 'auto' | 'xla' | 'cpu_fast' (auto: cpu_fast on CPU)
    c.decoder_bottleneck_core = True  # False: the peers' variant without the decoder's first block
    c.bn_momentum = 0.99             # BatchNorm running averages (Keras default); lower for short runs
    c.residual = "none"              # 'none' (published) | 'linear' | 'cubic': predict the HF image as
                                     # that interpolation of the LF input plus the network's output
    c.upsample = "transposed"        # 'transposed' (published: transposed convs, kernel = stride) |
                                     # 'resize_conv': nearest-neighbour upsampling, then a 3×3×3 conv
                                     # (decoder) or a (1, 1, 3) conv (the skips' slices): no
                                     # checkerboard pattern (Odena et al., Distill 2016); demo network:
                                     # 1.65× the MACs, ~1.6× the CPU training step
    return c


def _choice(config: ml_collections.ConfigDict, key: str, allowed, default: str | None = None) -> str:
    value = config[key] if default is None else config.get(key, default)
    if value not in allowed:
        raise ArchitectureError(f"model.{key} must be one of {sorted(allowed)}, got {value!r}")
    return value


def resolve_compute_dtype(name: str) -> str:
    """'auto' → 'bfloat16' on GPU/TPU, 'float32' on the CPU backend; others unchanged."""
    if name == "auto":
        return "float32" if jax.default_backend() == "cpu" else ACCELERATOR_COMPUTE_DTYPE
    return name


def _factor(factor) -> int:
    if int(factor) != factor:
        raise ArchitectureError(f"upsampling factor must be an integer, got {factor!r}")
    return int(factor)


def _momentum(value) -> float:
    if not 0.0 < float(value) < 1.0:
        raise ArchitectureError(f"model.bn_momentum must be in (0, 1), got {value!r}")
    return float(value)


def input_multiple(model_config: ml_collections.ConfigDict, factor: int) -> tuple[int, int, int]:
    """LF inputs (X, Y, Z_lf) of this network must be multiples of these (e.g. ×8, 5 levels: 16, 16, 2)."""
    return schedule.input_multiple(_factor(factor), int(model_config.levels))


def create_model(model_config: ml_collections.ConfigDict, factor: int) -> SliceUNet:
    """The network for an upsampling `factor` along the slice axis; validates the config."""
    name = _choice(model_config, "name", MODEL_NAMES)
    dtype = resolve_compute_dtype(_choice(model_config, "compute_dtype", ("auto", *COMPUTE_DTYPES)))
    impl = _choice(model_config, "conv_impl", ("auto",) + conv_impl.IMPLS)
    factor = _factor(factor)
    level_schedule(factor, int(model_config.levels), int(model_config.base_features))
    return SliceUNet(
        factor=factor,
        base_features=int(model_config.base_features),
        levels=int(model_config.levels),
        style=MODEL_NAMES[name],
        decoder_bottleneck_core=bool(model_config.decoder_bottleneck_core),
        impl=conv_impl.resolve_impl(impl),
        dtype=COMPUTE_DTYPES[dtype],
        bn_momentum=_momentum(model_config.bn_momentum),
        residual=_choice(model_config, "residual", RESIDUALS),
        upsample=_choice(model_config, "upsample", UPSAMPLINGS, default="transposed"),  # runs saved before it
    )
