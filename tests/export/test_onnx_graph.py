"""The exported ONNX graph computes what the Flax network computes (onnxruntime and OpenVINO against JAX)."""
from __future__ import annotations

import itertools

import jax
import nibabel as nib
import numpy as np
import pytest

from iqt.models import create_model, default_config, input_multiple

onnx = pytest.importorskip("onnx")
from iqt.export import backends  # noqa: E402
from iqt.export.onnx_graph import build_model, resize_conv_kernel  # noqa: E402
from tests.models.test_conv_impl import numpy_conv_same  # noqa: E402
from tests.conftest import slow  # noqa: E402

TOLERANCE = 1e-5   # max |ONNX − JAX| / max |JAX|, float32


def random_variables(model, multiple, seed: int):
    """Random weights and BatchNorm statistics (some BatchNorm scales negative, as training can make them)."""
    rng = np.random.default_rng(seed)
    lf = jax.ShapeDtypeStruct((1, *multiple, 1), np.float32)
    abstract = jax.eval_shape(lambda k, x: model.init(k, x, train=False), jax.random.key(0), lf)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if "'var'" in name:
            return rng.uniform(0.5, 2.0, leaf.shape).astype(np.float32)
        if "'scale'" in name:
            return (rng.uniform(0.5, 1.5, leaf.shape) * rng.choice([-1, 1, 1, 1], leaf.shape)).astype(np.float32)
        return (0.3 * rng.standard_normal(leaf.shape)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, abstract)


def network(factor: int, base_features: int, levels: int = 3, residual: str = "none", name: str = "aniso_unet",
            upsample: str = "transposed"):
    config = default_config()
    config.update(dict(base_features=base_features, levels=levels, residual=residual, name=name, conv_impl="xla",
                       upsample=upsample))
    model = create_model(config, factor)
    multiple = input_multiple(config, factor)
    return config, model, random_variables(model, multiple, seed=factor + base_features), multiple


def run_onnx(model_proto, backend: str, lf: np.ndarray, tmp_path) -> np.ndarray:
    if not backends.installed(backend):
        pytest.skip(f"{backend} is not installed")
    path = tmp_path / f"{backend}.onnx"
    path.write_bytes(model_proto.SerializeToString())
    return backends.RUNTIMES[backend](path, None)(lf)


def relative_difference(got: np.ndarray, expected: np.ndarray) -> float:
    assert got.shape == expected.shape
    return float(np.abs(got - expected).max() / np.abs(expected).max())


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("factor,base_features,residual", [(4, 4, "none"), (4, 6, "cubic"), (8, 4, "cubic"),
                                                           (8, 6, "linear")])
def test_the_graph_matches_jax_on_random_inputs(factor, base_features, residual, backend, tmp_path):
    config, model, variables, multiple = network(factor, base_features, residual=residual)
    lf = np.random.default_rng(0).random((2, 2 * multiple[0], 3 * multiple[1], 3 * multiple[2]), np.float32)
    expected = np.asarray(model.apply(variables, lf[..., None], train=False)[..., 0])
    got = run_onnx(build_model(variables, config, factor), backend, lf, tmp_path)
    assert relative_difference(got, expected) <= TOLERANCE


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("factor,levels,name,residual", [(4, 3, "aniso_unet", "none"), (6, 3, "aniso_unet", "cubic"),
                                                         (8, 2, "aniso_unet", "linear"), (8, 3, "sr_unet", "none")])
@slow   # an optional path: four networks in two runtimes (the layer-level checks run in the suite)
def test_resize_conv_networks_match_jax(factor, levels, name, residual, backend, tmp_path):
    """model.upsample 'resize_conv': decoder ups of 2 and 3 (×6), slice ups of 2 to 8, the lift (×8, 2 levels)."""
    config, model, variables, multiple = network(factor, 4, levels, residual, name, upsample="resize_conv")
    lf = np.random.default_rng(2).random((2, 2 * multiple[0], 3 * multiple[1], 3 * multiple[2]), np.float32)
    expected = np.asarray(model.apply(variables, lf[..., None], train=False)[..., 0])
    got = run_onnx(build_model(variables, config, factor), backend, lf, tmp_path)
    assert relative_difference(got, expected) <= TOLERANCE


def numpy_transposed_conv(x, kernel, factors, crop):
    """y[f·j + m − crop] += x[j]·kernel[m] per axis (ONNX ConvTranspose with pads = crop), by loops."""
    b, nx, ny, nz, _ = x.shape
    full = np.zeros((b, *(f * n + k - 1 for f, n, k in zip(factors, (nx, ny, nz), kernel.shape[:3])),
                     kernel.shape[-1]))
    for m in itertools.product(*(range(k) for k in kernel.shape[:3])):
        region = tuple(slice(mi, mi + f * n, f) for mi, f, n in zip(m, factors, (nx, ny, nz)))
        full[(slice(None), *region)] += np.einsum("bxyzi,io->bxyzo", x, kernel[m])
    return full[(slice(None), *(slice(c, c + f * n) for c, f, n in zip(crop, factors, (nx, ny, nz))))]


@pytest.mark.parametrize("factors,kernel_size", [((2, 2, 2), (3, 3, 3)), ((3, 3, 3), (3, 3, 3)),
                                                 ((1, 1, 8), (1, 1, 3)), ((1, 1, 1), (1, 1, 1))])
def test_a_resize_conv_is_the_transposed_conv_of_its_summed_kernel(factors, kernel_size):
    """Nearest upsampling (np.repeat) then the 'same' conv equals one transposed conv, borders included."""
    rng = np.random.default_rng(3)
    x, kernel = rng.standard_normal((2, 3, 2, 4, 3)), rng.standard_normal((*kernel_size, 3, 4))
    upsampled = x
    for axis, f in zip((1, 2, 3), factors):
        upsampled = np.repeat(upsampled, f, axis=axis)
    expected = numpy_conv_same(upsampled, kernel)
    got = numpy_transposed_conv(x, resize_conv_kernel(kernel, factors), factors, [k // 2 for k in kernel_size])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_the_sr_unet_and_a_shallow_lifted_network_export_too(tmp_path):
    for name, levels in (("sr_unet", 3), ("aniso_unet", 2)):   # ×8 with 2 levels lifts its bottleneck
        config, model, variables, multiple = network(8, 4, levels=levels, name=name)
        lf = np.random.default_rng(1).random((1, 2 * multiple[0], multiple[1], 2 * multiple[2]), np.float32)
        expected = np.asarray(model.apply(variables, lf[..., None], train=False)[..., 0])
        assert relative_difference(run_onnx(build_model(variables, config, 8), "onnxruntime", lf, tmp_path),
                                   expected) <= TOLERANCE


@pytest.mark.parametrize("factor", [4, 8])
def test_the_graph_matches_jax_on_a_real_volume(factor, tmp_path):
    """A block of the MNI152 template (shipped with nilearn), its slices averaged r at a time, normalised."""
    from iqt.data.template import template_path

    t1 = np.asarray(nib.load(template_path("t1")).dataobj, np.float32)[60:124, 80:144, 60:60 + 4 * factor]
    lf = t1.reshape(64, 64, 4, factor).mean(-1)
    lf = (lf / lf[lf > 0].mean())[None]
    config, model, variables, _ = network(factor, 6, residual="cubic")
    expected = np.asarray(model.apply(variables, lf[..., None], train=False)[..., 0])
    for backend in ("onnxruntime", "openvino"):
        assert relative_difference(run_onnx(build_model(variables, config, factor), backend, lf, tmp_path),
                                   expected) <= TOLERANCE


def test_batchnorm_is_folded_into_the_convolutions():
    """Positive BatchNorm scales leave no Mul behind a ReLU(conv): conv → ReLU → Add only."""
    config, model, variables, _ = network(4, 4)
    stats = jax.tree.map(np.abs, variables["params"])   # all scales > 0
    graph = build_model({"params": stats, "batch_stats": variables["batch_stats"]}, config, 4).graph
    muls = [n.name for n in graph.node if n.op_type == "Mul"]
    assert muls and all("bn_out" in name for name in muls)   # only the ConvCore's output BatchNorm
    assert not any(n.op_type == "BatchNormalization" for n in graph.node)


@pytest.mark.parametrize("have,onnx_file,expected", [
    ({"openvino", "onnxruntime"}, False, ["openvino", "jax", "onnxruntime"]), ({"onnxruntime"}, False,
     ["jax", "onnxruntime"]), (set(), False, ["jax"]), ({"onnxruntime"}, True, ["onnxruntime"]),
    ({"openvino", "onnxruntime"}, True, ["openvino", "onnxruntime"])])
def test_auto_on_a_cpu_offers_every_installed_runtime(monkeypatch, have, onnx_file, expected):
    monkeypatch.setattr(backends, "installed", lambda b: b == "jax" or b in have)
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    assert backends.candidates("auto", onnx_file) == expected
    assert backends.candidates("auto", onnx_file, "float32") == expected
    if "openvino" in have:
        assert backends.candidates("auto", onnx_file, "bfloat16") == ["openvino"]


def test_auto_on_an_accelerator_is_jax_unless_the_network_is_an_onnx_file(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert backends.candidates("auto") == ["jax"]
    assert "jax" not in backends.candidates("auto", onnx_file=True)


def test_auto_without_any_runtime_refuses_an_onnx_file_in_one_line(monkeypatch):
    monkeypatch.setattr(backends, "installed", lambda b: b == "jax")
    with pytest.raises(backends.UserError, match="pip install"):
        backends.candidates("auto", onnx_file=True)
    with pytest.raises(backends.UserError, match="bfloat16 runs only with OpenVINO"):
        backends.candidates("auto", precision="bfloat16")


def test_auto_precision_is_bfloat16_only_where_the_cpu_has_bfloat16_instructions():
    from iqt.export.backend_choice import cpu_description
    assert backends.check_precision("auto", "jax") == backends.check_precision("auto", "onnxruntime") == "float32"
    if backends.installed("openvino"):
        cpu = cpu_description()   # /proc/cpuinfo, not OpenVINO's own answer
        native = bool(cpu.get("amx")) or bool(cpu.get("avx512_bf16"))
        assert backends.check_precision("auto", "openvino") == ("bfloat16" if native else "float32")


BF16_TOLERANCE = 2e-2   # 8 mantissa bits (2^-9 per operation); the trained demo network: 0.9 %


def test_openvino_in_bfloat16_stays_close_to_float32(tmp_path):
    """`--precision bfloat16`: within 2 % of float32's largest value, and, where the CPU computes
    bfloat16 natively, not float32's answer (the hint took effect)."""
    if not backends.installed("openvino"):
        pytest.skip("openvino is not installed")
    config, model, variables, multiple = network(8, 6, residual="cubic")
    lf = np.random.default_rng(4).random((1, 2 * multiple[0], 2 * multiple[1], 2 * multiple[2]), np.float32)
    path = tmp_path / "model.onnx"
    path.write_bytes(build_model(variables, config, 8).SerializeToString())
    f32, bf16 = (backends.RUNTIMES["openvino"](path, None, p)(lf) for p in ("float32", "bfloat16"))
    assert relative_difference(bf16, f32) <= BF16_TOLERANCE
    if backends.native_bfloat16(backends.runtime("openvino").Core()):
        assert relative_difference(bf16, f32) > TOLERANCE


@pytest.mark.parametrize("backend", ["jax", "onnxruntime", "no_such"])
def test_bfloat16_elsewhere_than_openvino_is_a_user_error(backend):
    from iqt.errors import UserError
    with pytest.raises(UserError, match="bfloat16 runs only with OpenVINO" if backend != "no_such" else "precision"):
        backends.check_precision("bfloat16" if backend != "no_such" else "float16", backend)
    assert backends.check_precision("float32", backend) == "float32"


def test_runtime_threads_are_capped_at_the_usable_cores(monkeypatch, capsys):
    monkeypatch.setattr(backends.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert backends.usable_threads(None) is None
    assert backends.usable_threads(1) == 1 and capsys.readouterr().err == ""
    assert backends.usable_threads(100_000) == 2
    assert "100000 is more than the 2 usable cores" in capsys.readouterr().err


def test_onnxruntime_runs_with_the_capped_thread_count(monkeypatch, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    seen = {}
    real_session = ort.InferenceSession

    def session(path, options, providers):
        seen["threads"] = options.intra_op_num_threads
        return real_session(path, options, providers=providers)

    monkeypatch.setattr(ort, "InferenceSession", session)
    monkeypatch.setattr(backends.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    config = default_config()
    config.base_features, config.levels = 2, 2
    model = create_model(config, 4)
    lf = np.zeros((1, *input_multiple(config, 4), 1), np.float32)
    variables = model.init(jax.random.key(0), lf, train=False)
    path = tmp_path / "m.onnx"
    path.write_bytes(build_model(variables, config, 4).SerializeToString())
    backends.onnxruntime_predict_fn(path, threads=100_000)
    assert seen["threads"] == 2
