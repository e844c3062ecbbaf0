"""The ANISO U-Net (or the SR U-Net baseline) as an ONNX graph, built from its Flax variables.

The graph mirrors `iqt.models.unet.SliceUNet.__call__` layer by layer in
inference mode: input (B, X, Y, Z_lf) float32 → output (B, X, Y, r·Z_lf), all
four sizes dynamic (X, Y and Z_lf must be multiples of the network's input
multiple, stored in the metadata). Inside, arrays are ONNX's channels-first
(B, C, X, Y, Z); Flax kernels (kx, ky, kz, C_in, C_out) become Conv weights
(C_out, C_in, kx, ky, kz) and kernel-equals-stride transposed convolutions
ConvTranspose weights (C_in, C_out, kx, ky, kz) with stride = kernel.

With model.upsample 'resize_conv' (`iqt.models.layers.ResizeConv`: nearest
upsampling by f per axis, then a 'same' conv of k taps per axis), each such
layer is the one ConvTranspose it equals: stride f, kernel f + k − 1, the
conv's taps summed over windows of f (`resize_conv_kernel`), pads k // 2.
Exact, also at the zero-padded borders, and cheaper than a Resize (nearest)
followed by a Conv on the upsampled grid: (f + k − 1)³ / f³ = 8 rather than 27
MACs per output voxel and channel pair for f = 2, k = 3. Both runtimes ran
both forms correctly; on the demo network (×6, 144 × 144 × 16 LF, 2 threads,
float32) Resize + Conv took 1.2× (onnxruntime) and 2.0× (OpenVINO) the time
of the single ConvTranspose.

BatchNorm uses its running averages, y = s·x + t per channel (s = γ/√(σ² + ε),
t = β − s·μ). Every BatchNorm of the net follows a ReLU; where it follows
ReLU(conv) and all s > 0, s is folded into the convolution's weights and bias
(ReLU(s·a) = s·ReLU(a)) and only the shift t remains, an Add; elsewhere (the
ConvCore's output BatchNorm) it is a Mul and an Add, which the runtimes fuse
into the preceding operation.

The residual path (`model.residual` 'linear' or 'cubic') adds the slice
interpolation of `iqt.interpolation` (scipy B-splines, constant continuation):
an edge padding of K LF slices, a (1, 1, 2K + 1) convolution with r output
channels, one per HF phase, and their interleaving. Linear interpolation is
exact with K = 1; the cubic spline's prefilter is infinite, truncated at
K = 16 LF slices (its taps decay by 0.268 per slice: the truncation error is
below 1e-9 of the input).
"""
from __future__ import annotations

import numpy as np

from iqt.interpolation import INTERPOLATION_ORDERS, slice_interpolation_matrix
from iqt.models.layers import KERAS_BN_EPSILON
from iqt.models.schedule import level_schedule

OPSET = 17
IR_VERSION = 9           # read by onnxruntime >= 1.15 and OpenVINO >= 2023
RESIDUAL_TAPS = {"linear": 1, "cubic": 16}   # K: LF slices of context on each side
INPUT_NAME, OUTPUT_NAME = "lf", "hf"


class _Builder:
    """Accumulates ONNX nodes and constant tensors; each method returns its output's name."""

    def __init__(self):
        from onnx import helper, numpy_helper
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers, self._count = [], [], 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, array, hint: str = "const") -> str:
        name = self._name(hint)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str = "", **attrs) -> str:
        out = self._name(hint or op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x: str, kernel, bias, hint: str, scale=None) -> str:
        """'Same' conv of a Flax kernel (kx, ky, kz, Ci, Co), optionally times a per-channel `scale`."""
        kernel, bias = np.asarray(kernel, np.float64), np.asarray(bias, np.float64)
        if scale is not None:
            kernel, bias = kernel * scale, bias * scale
        pads = [k // 2 for k in kernel.shape[:3]] * 2
        w = np.transpose(kernel, (4, 3, 0, 1, 2)).astype(np.float32)
        return self.op("Conv", [x, self.const(w, f"{hint}_w"), self.const(bias.astype(np.float32), f"{hint}_b")],
                       hint, kernel_shape=list(kernel.shape[:3]), pads=pads)

    def conv_transpose(self, x: str, p: dict, hint: str) -> str:
        """Kernel-equals-stride transposed conv: every input voxel writes one (kx, ky, kz) block."""
        kernel = np.asarray(p["kernel"], np.float32)
        w = np.ascontiguousarray(np.transpose(kernel, (3, 4, 0, 1, 2)))
        strides = list(kernel.shape[:3])
        return self.op("ConvTranspose", [x, self.const(w, f"{hint}_w"),
                                         self.const(np.asarray(p["bias"], np.float32), f"{hint}_b")],
                       hint, kernel_shape=strides, strides=strides)

    def resize_conv(self, x: str, p: dict, factors: tuple[int, int, int], hint: str) -> str:
        """`ResizeConv` (nearest ×`factors`, then the 'same' conv `p`) as one ConvTranspose."""
        kernel = resize_conv_kernel(p["kernel"], factors)
        w = np.ascontiguousarray(np.transpose(kernel, (3, 4, 0, 1, 2))).astype(np.float32)
        pads = [k // 2 for k in np.shape(p["kernel"])[:3]] * 2
        return self.op("ConvTranspose", [x, self.const(w, f"{hint}_w"),
                                         self.const(np.asarray(p["bias"], np.float32), f"{hint}_b")],
                       hint, kernel_shape=list(kernel.shape[:3]), strides=list(factors), pads=pads)

    def channel_affine(self, x: str, scale, shift, hint: str) -> str:
        """x·scale + shift per channel (either may be None)."""
        if scale is not None:
            x = self.op("Mul", [x, self.const(_per_channel(scale), f"{hint}_s")], f"{hint}_mul")
        return self.op("Add", [x, self.const(_per_channel(shift), f"{hint}_t")], f"{hint}_add")


def _per_channel(values) -> np.ndarray:
    return np.asarray(values, np.float32).reshape(-1, 1, 1, 1)


def resize_conv_kernel(kernel, factors: tuple[int, int, int]) -> np.ndarray:
    """The kernel (f + k − 1 per axis, C_in, C_out), float64, of the stride-f transposed convolution
    (y[f·j + m − r] += x[j]·K[m], r = k // 2) that equals nearest ×f then the 'same' conv `kernel`
    (k taps per axis, odd): per axis K[m] = Σ kernel[t] over the taps t with 0 ≤ m + t − 2r < f."""
    out = np.asarray(kernel, np.float64)
    for axis, f in enumerate(factors):
        k = out.shape[axis]
        m, t = np.arange(f + k - 1)[:, None], np.arange(k)[None, :]
        window = ((m + t - 2 * (k // 2) >= 0) & (m + t - 2 * (k // 2) < f)).astype(np.float64)
        out = np.moveaxis(np.tensordot(window, out, axes=([1], [axis])), 0, axis)
    return out


def batch_norm_affine(params: dict, stats: dict) -> tuple[np.ndarray, np.ndarray]:
    """Inference-mode BatchNorm as (scale, shift), float64: y = scale·x + shift."""
    scale = np.asarray(params["scale"], np.float64) / np.sqrt(np.asarray(stats["var"], np.float64)
                                                              + KERAS_BN_EPSILON)
    return scale, np.asarray(params["bias"], np.float64) - scale * np.asarray(stats["mean"], np.float64)


class _Net:
    """Walks the parameter tree in the order of `SliceUNet.__call__`."""

    def __init__(self, builder: _Builder, params: dict, stats: dict):
        self.b, self.params, self.stats = builder, params, stats

    def conv_relu_bn(self, x: str, p: dict, bn_p: dict, bn_s: dict, hint: str) -> str:
        scale, shift = batch_norm_affine(bn_p, bn_s)
        if np.all(scale > 0):
            h = self.b.op("Relu", [self.b.conv(x, p["kernel"], p["bias"], hint, scale)])
            return self.b.channel_affine(h, None, shift, f"{hint}_bn")
        h = self.b.op("Relu", [self.b.conv(x, p["kernel"], p["bias"], hint)])
        return self.b.channel_affine(h, scale, shift, f"{hint}_bn")

    def conv_core(self, x: str, name: str) -> str:
        p, s = self.params[name], self.stats.get(name, {})
        shortcut = self.b.conv(x, p["shortcut"]["kernel"], p["shortcut"]["bias"], f"{name}_shortcut")
        h = self.conv_relu_bn(x, p["conv1"], p["bn1"], s["bn1"], f"{name}_conv1")
        h = self.conv_relu_bn(h, p["conv2"], p["bn2"], s["bn2"], f"{name}_conv2")
        h = self.b.op("Relu", [self.b.op("Add", [h, shortcut])])
        return self.b.channel_affine(h, *batch_norm_affine(p["bn_out"], s["bn_out"]), f"{name}_bn_out")

    def plain_block(self, x: str, name: str) -> str:
        for i in (1, 2):
            conv = self.params[name][f"conv{i}"]
            x = self.b.op("Relu", [self.b.conv(x, conv["kernel"], conv["bias"], f"{name}_conv{i}")])
        return x

    def skip_block(self, x: str, name: str, upsample: int) -> str:
        p, s = self.params[name], self.stats.get(name, {})
        h = x
        for layer in ("shrink", "map1", "map2", "expand"):
            h = self.conv_relu_bn(h, p[layer], p[f"bn_{layer}"], s[f"bn_{layer}"], f"{name}_{layer}")
        return self.upsample(self.b.op("Add", [h, x]), p["upsample"], (1, 1, upsample), f"{name}_upsample")

    def upsample(self, x: str, p: dict, factors: tuple[int, int, int], hint: str) -> str:
        """An upsampling layer of either model.upsample, told apart by its parameters: 'conv' (resize_conv),
        'tconv' (a transposed `SliceUpsample`) or 'kernel' (a transposed decoder `up{l}`)."""
        if "conv" in p:
            return self.b.resize_conv(x, p["conv"], factors, hint)
        return self.b.conv_transpose(x, p.get("tconv", p), hint)


def network_nodes(builder: _Builder, variables: dict, model_config, factor: int, lf: str) -> str:
    """Adds the U-Net's nodes on `lf` (B, 1, X, Y, Z_lf); returns the head's output (B, 1, X, Y, r·Z_lf)."""
    aniso = model_config.name == "aniso_unet"
    net = _Net(builder, variables["params"], variables.get("batch_stats", {}))
    block = net.conv_core if aniso else net.plain_block
    plan = level_schedule(factor, int(model_config.levels), int(model_config.base_features))
    h, skips = lf, []
    for level in plan[:-1]:
        h = block(h, f"enc{level.index}")
        name, slices = f"skip{level.index}", (1, 1, level.skip_upsample)
        skips.append(net.skip_block(h, name, level.skip_upsample) if aniso else
                     net.upsample(h, net.params[name], slices, name))
        h = builder.op("MaxPool", [h], f"pool{level.index}", kernel_shape=list(level.pool),
                       strides=list(level.pool))
    bottom = plan[-1]
    h = block(h, f"enc{bottom.index}")
    if bottom.skip_upsample > 1:
        h = net.upsample(h, net.params["lift"], (1, 1, bottom.skip_upsample), "lift")
    for level in reversed(plan[:-1]):
        below = level.index + 1
        if below < bottom.index or bool(model_config.decoder_bottleneck_core):
            h = block(h, f"dec{below}")
        h = net.upsample(h, net.params[f"up{below}"], (level.down,) * 3, f"up{below}")
        h = builder.op("Concat", [h, skips[level.index - 1]], f"concat{level.index}", axis=1)
    h = block(h, "dec1")
    head = net.params["head"]
    return builder.conv(h, head["kernel"], head["bias"], "head")


def residual_weights(factor: int, residual: str) -> np.ndarray:
    """(r, 2K + 1): HF slice r·j + k = Σ_m w[k, m] · LF slice j + m − K (edge-padded), read off the
    interior of `slice_interpolation_matrix`."""
    k = RESIDUAL_TAPS[residual]
    n = 4 * k + 8
    matrix = slice_interpolation_matrix(n, factor, INTERPOLATION_ORDERS[residual])
    j = n // 2
    return np.stack([matrix[j - k:j + k + 1, factor * j + phase] for phase in range(factor)])


def residual_nodes(builder: _Builder, lf: str, factor: int, residual: str) -> str:
    """The slice interpolation of `lf` (B, 1, X, Y, Z) → (B, 1, X, Y, r·Z)."""
    weights = residual_weights(factor, residual)
    k = RESIDUAL_TAPS[residual]
    pads = builder.const(np.array([0, 0, 0, 0, k, 0, 0, 0, 0, k], np.int64), "residual_pads")
    padded = builder.op("Pad", [lf, pads], "residual_pad", mode="edge")
    w = weights.astype(np.float32).reshape(factor, 1, 1, 1, 2 * k + 1)
    phases = builder.op("Conv", [padded, builder.const(w, "residual_w")], "residual_phases",
                        kernel_shape=[1, 1, 2 * k + 1])                       # (B, r, X, Y, Z)
    interleaved = builder.op("Transpose", [phases], "residual_t", perm=[0, 2, 3, 4, 1])   # (B, X, Y, Z, r)
    shape = builder.const(np.array([0, 1, 0, 0, -1], np.int64), "residual_shape")
    return builder.op("Reshape", [builder.op("Unsqueeze", [interleaved, builder.const(np.array([1], np.int64))]),
                                  shape], "residual")


def build_model(variables: dict, model_config, factor: int, metadata: dict[str, str] | None = None):
    """The network as an `onnx.ModelProto` (checked by `onnx.checker`), `metadata` as its metadata_props."""
    import onnx
    from onnx import TensorProto, helper

    builder = _Builder()
    lf = builder.op("Unsqueeze", [INPUT_NAME, builder.const(np.array([1], np.int64), "axis")], "lf_channel")
    out = network_nodes(builder, variables, model_config, int(factor), lf)
    residual = str(model_config.get("residual", "none"))
    if residual != "none":
        out = builder.op("Add", [out, residual_nodes(builder, lf, int(factor), residual)], "with_residual")
    builder.nodes.append(helper.make_node("Squeeze", [out, builder.const(np.array([1], np.int64))],
                                          [OUTPUT_NAME], name="hf"))
    graph = helper.make_graph(
        builder.nodes, "iqt_unet",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", "x", "y", "z_lf"])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", "x", "y", "z_hf"])],
        builder.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="stochastic-iqt",
                              ir_version=IR_VERSION)
    helper.set_model_props(model, dict(metadata or {}))
    onnx.checker.check_model(model)
    return model
