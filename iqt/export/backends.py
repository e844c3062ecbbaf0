"""Where a network comes from (a training run or an exported `.onnx`) and which runtime runs its tiles.

A backend is only another `PredictFn` inside `iqt.inference.Predictor`:
everything else (input checks, orientation, tiling, blending, intensities,
affine, header, figure) is the JAX path's.

- jax: the Flax model, jitted (`iqt.inference.load_predictor`).
- openvino / onnxruntime: the ONNX graph of `iqt.export.onnx_graph`, run in
  float32 by default (OpenVINO would run bfloat16 on CPUs with AMX unless told
  not to). `precision='bfloat16'` (OpenVINO only) asks for bfloat16 arithmetic:
  on a CPU with AMX a 512 × 512 × 28 scan ran 3.3× faster, the trained demo
  network's output within 0.3 % RMS of float32's and its PSNR within 0.02 dB
  (benchmarks/README.md); CPUs without native bfloat16 run float32 anyway.
- auto: JAX on an accelerator; on a CPU the first installed of `CPU_PREFERENCE`,
  the order measured on a 2-core Intel Xeon with AVX-512 and AMX (512 × 512 × 28
  ×8 scans, benchmarks/inference_backends.py, benchmarks/README.md):
  OpenVINO ran 3.6× JAX's speed with 0.54× its memory, onnxruntime
  1.25× JAX's speed with 1.3× its memory. An
  exported `.onnx` cannot run with JAX: there onnxruntime comes after OpenVINO.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import numpy as np

from iqt.errors import UserError
from iqt.inference import PredictFn, Predictor

BACKENDS = ("auto", "jax", "openvino", "onnxruntime")
CPU_PREFERENCE = ("openvino", "jax", "onnxruntime")   # fastest first, measured (module docstring)
PRECISIONS = ("float32", "bfloat16")
INSTALL_HINT = "pip install 'stochastic-iqt[cpu]' (or: pip install onnx onnxruntime openvino)"
META_PREFIX = "iqt."


def is_onnx_file(source: str | os.PathLike) -> bool:
    """Whether a --model/--workdir names an exported `.onnx` file (rather than a work directory)."""
    return str(source).endswith(".onnx")


@contextlib.contextmanager
def _no_telemetry():
    """`import openvino` sends a usage event to Google Analytics (openvino_telemetry) unless the user opted
    out or it runs in CI; a hospital workstation sends nothing: the import runs with CI=true."""
    before = os.environ.get("CI")
    os.environ["CI"] = "true"
    try:
        yield
    finally:
        if before is None:
            del os.environ["CI"]
        else:
            os.environ["CI"] = before


def runtime(backend: str):
    """The runtime module of `backend` ('onnx', 'openvino' or 'onnxruntime'); a one-line `UserError` if missing."""
    try:
        if backend == "openvino":
            with _no_telemetry():
                import openvino
            return openvino
        if backend == "onnxruntime":
            import onnxruntime
            return onnxruntime
        import onnx
        return onnx
    except ImportError:
        raise UserError(f"{backend} is not installed: {INSTALL_HINT}") from None


def installed(backend: str) -> bool:
    """Whether `backend`'s runtime imports (JAX always does)."""
    if backend == "jax":
        return True
    try:
        runtime(backend)
        runtime("onnx")
    except UserError:
        return False
    return True


def choose_backend(requested: str, onnx_file: bool = False) -> str:
    """`requested`, or for 'auto': JAX on an accelerator, else the fastest installed of `CPU_PREFERENCE`."""
    if requested not in BACKENDS:
        raise UserError(f"--backend must be one of {', '.join(BACKENDS)}, got {requested!r}")
    if requested == "jax" and onnx_file:
        raise UserError("an exported .onnx file runs with --backend openvino or onnxruntime, not jax "
                        "(give the training run's work directory for jax)")
    if requested in RUNTIMES:   # a one-line error naming what to install
        runtime(requested)
        runtime("onnx")
    if requested != "auto":
        return requested
    if not onnx_file:
        import jax
        if jax.default_backend() != "cpu":
            return "jax"
    for backend in CPU_PREFERENCE:
        if backend == "jax" and not onnx_file:
            return "jax"
        if backend != "jax" and installed(backend):
            return backend
    raise UserError(f"running an .onnx file needs openvino or onnxruntime: {INSTALL_HINT}")


def check_precision(precision: str, backend: str) -> str:
    """`precision` if `backend` computes in it: float32 everywhere, bfloat16 with OpenVINO only."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bfloat16" and backend != "openvino":
        raise UserError(f"--precision bfloat16 runs only with OpenVINO (--backend openvino; {INSTALL_HINT}); "
                        f"{backend} computes in float32")
    return precision


# --- runtimes ---------------------------------------------------------------------------------

def onnxruntime_predict_fn(model_path: Path, threads: int | None = None, precision: str = "float32") -> PredictFn:
    """A `PredictFn` running the ONNX graph with onnxruntime's CPU provider (`threads`: default all cores)."""
    check_precision(precision, "onnxruntime")
    ort = runtime("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or 0)
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    return lambda lf: session.run(None, {"lf": np.ascontiguousarray(lf, np.float32)})[0]


def openvino_predict_fn(model_path: Path, threads: int | None = None, precision: str = "float32") -> PredictFn:
    """A `PredictFn` running the ONNX graph with OpenVINO on the CPU, compiled once per tile shape."""
    ov = runtime("openvino")
    core = ov.Core()
    hint = {"float32": "f32", "bfloat16": "bf16"}[check_precision(precision, "openvino")]
    if precision == "bfloat16" and not native_bfloat16(core):
        print("warning: this CPU has no native bfloat16 (AMX or AVX512_BF16): OpenVINO computes in float32",
              file=sys.stderr, flush=True)
    config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    model = core.read_model(str(model_path))
    compiled = {}

    def predict(lf: np.ndarray) -> np.ndarray:
        lf = np.ascontiguousarray(lf, np.float32)
        if lf.shape not in compiled:
            shaped = model.clone()
            shaped.reshape({0: ov.PartialShape(list(lf.shape))})
            compiled[lf.shape] = core.compile_model(shaped, "CPU", config)
        request = compiled[lf.shape]
        return np.array(request(lf)[0], np.float32, copy=True)

    return predict


def native_bfloat16(core) -> bool:
    """Whether OpenVINO's CPU plugin computes bfloat16 natively on this CPU (`core`: an `openvino.Core`)."""
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


RUNTIMES = {"openvino": openvino_predict_fn, "onnxruntime": onnxruntime_predict_fn}


# --- exported files ---------------------------------------------------------------------------

def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The `iqt.*` metadata of an exported `.onnx` (prefix stripped); a `UserError` for any bad file."""
    onnx = runtime("onnx")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file {path} does not exist")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:   # protobuf's DecodeError, onnx's ValidationError, OSError
        first = (str(e).splitlines() or [""])[0][:120]
        raise UserError(f"{path} is not a readable ONNX model ({type(e).__name__}: {first}); "
                        f"export it again with python -m launch.export") from None
    meta = {p.key[len(META_PREFIX):]: p.value for p in model.metadata_props if p.key.startswith(META_PREFIX)}
    missing = [k for k in ("config", "factor", "input_multiple") if k not in meta]
    if missing:
        raise UserError(f"{path} was not exported by python -m launch.export (no {META_PREFIX}{missing[0]} "
                        f"metadata)")
    return meta


def config_of(meta: dict[str, str], path) -> object:
    from iqt import config_io
    return config_io.config_from_json(meta["config"], source=f"the config inside {path}")


def onnx_predictor(model_path: str | os.PathLike, backend: str, *, threads: int | None = None,
                   precision: str = "float32", meta: dict[str, str] | None = None,
                   name: str | None = None) -> Predictor:
    """A `Predictor` running an ONNX file with `backend`; checks that the graph upsamples by its factor."""
    meta = read_metadata(model_path) if meta is None else meta
    factor = int(meta["factor"])
    multiple = tuple(int(n) for n in meta["input_multiple"].split(","))
    predict_fn = RUNTIMES[backend](Path(model_path), threads, precision)
    probe = np.zeros((1, *multiple), np.float32)
    try:
        got = np.asarray(predict_fn(probe)).shape
    except Exception as e:   # a graph the runtime cannot run
        raise UserError(f"{name or model_path} does not run with {backend} ({type(e).__name__}: "
                        f"{(str(e).splitlines() or [''])[0][:120]})") from None
    if got != (1, *multiple[:2], multiple[2] * factor):
        raise UserError(f"{name or model_path}: its graph turns {multiple[2]} LF slices into {got[-1]}, "
                        f"not the ×{factor} its metadata says; export it again")
    return Predictor(predict_fn, factor, multiple)
