"""Where a network comes from (a training run or an exported `.onnx`) and which runtime runs its tiles.

A backend is only another `PredictFn` inside `iqt.inference.Predictor`:
everything else (input checks, orientation, tiling, blending, intensities,
affine, header, figure) is the JAX path's.

- jax: the Flax model, jitted (`iqt.inference.load_predictor`).
- openvino / onnxruntime: the ONNX graph of `iqt.export.onnx_graph`.
- auto: JAX on an accelerator; on a CPU the fastest of the installed runtimes,
  timed once on the machine (`iqt.export.backend_choice`). On a 2-core Intel
  Xeon with AVX-512 and AMX, a 512 × 512 × 28 scan ×8 in float32 ran with
  OpenVINO at 3.6× JAX's speed and 0.54× its memory, with onnxruntime at 1.25×
  its speed and 1.3× its memory (benchmarks/README.md). An exported `.onnx`
  cannot run with JAX.

Precision: 'float32'; 'bfloat16' (OpenVINO only); 'auto' (the default):
bfloat16 where OpenVINO computes it natively (AMX or AVX512_BF16, the CPU
plugin's own default there), float32 everywhere else. On the AMX machine a
512 × 512 × 28 scan ran 3.2× and 3.9× faster (two runs) in bfloat16 than in float32; the trained
demo network's output stayed within 0.3 % RMS (0.9 % at most) of float32's,
its PSNR and SSIM against the truth within 0.02 dB and 0.001
(benchmarks/README.md). float32 agrees with the JAX path to 1e-5.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from iqt.errors import UserError
from iqt.inference import PredictFn, Predictor

BACKENDS = ("auto", "jax", "openvino", "onnxruntime")
CPU_BACKENDS = ("openvino", "jax", "onnxruntime")   # the candidates of 'auto' on a CPU
PRECISIONS = ("auto", "float32", "bfloat16")
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


def versions(names: list[str]) -> dict[str, str]:
    """The version of each backend's runtime."""
    import jax
    return {name: jax.__version__ if name == "jax" else runtime(name).__version__ for name in names}


def candidates(requested: str, onnx_file: bool = False, precision: str = "auto") -> list[str]:
    """The backends that may run the network: `[requested]`, or for 'auto' JAX on an accelerator, else
    every installed CPU runtime (`iqt.export.backend_choice` times them); only OpenVINO for bfloat16."""
    if requested not in BACKENDS:
        raise UserError(f"--backend must be one of {', '.join(BACKENDS)}, got {requested!r}")
    if requested == "jax" and onnx_file:
        raise UserError("an exported .onnx file runs with --backend openvino or onnxruntime, not jax "
                        "(give the training run's work directory for jax)")
    if requested in RUNTIMES:   # a one-line error naming what to install
        runtime(requested)
        runtime("onnx")
    if requested != "auto":
        return [requested]
    if precision == "bfloat16":
        if not installed("openvino"):
            raise UserError(f"--precision bfloat16 runs only with OpenVINO: {INSTALL_HINT}")
        return ["openvino"]
    if not onnx_file:
        import jax
        if jax.default_backend() != "cpu":
            return ["jax"]
    names = [b for b in CPU_BACKENDS if (b != "jax" or not onnx_file) and installed(b)]
    if not names:
        raise UserError(f"running an .onnx file needs openvino or onnxruntime: {INSTALL_HINT}")
    return names


def check_precision(precision: str, backend: str) -> str:
    """The arithmetic `backend` runs for `precision`: float32 everywhere, bfloat16 with OpenVINO only,
    and 'auto' bfloat16 where OpenVINO computes it natively (`native_bfloat16`), else float32."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bfloat16" and backend != "openvino":
        raise UserError(f"--precision bfloat16 runs only with OpenVINO (--backend openvino; {INSTALL_HINT}); "
                        f"{backend} computes in float32")
    if precision == "auto":
        return "bfloat16" if backend == "openvino" and native_bfloat16(runtime("openvino").Core()) else "float32"
    return precision


# --- runtimes ---------------------------------------------------------------------------------

def usable_threads(threads: int | None) -> int | None:
    """`threads`, at most the cores this process may use (more only oversubscribes them; onnxruntime
    given 100,000 grows by tens of MB a second and stops answering signals); None: the runtime's default."""
    if not threads:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if int(threads) > cores:
        print(f"warning: --threads {threads} is more than the {cores} usable cores; using {cores}",
              file=sys.stderr, flush=True)
    return min(int(threads), cores)


def onnxruntime_predict_fn(model_path: Path, threads: int | None = None, precision: str = "float32") -> PredictFn:
    """A `PredictFn` running the ONNX graph with onnxruntime's CPU provider (`threads`: default all cores)."""
    check_precision(precision, "onnxruntime")
    ort = runtime("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = usable_threads(threads) or 0
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
        config["INFERENCE_NUM_THREADS"] = usable_threads(threads)
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
    check_metadata(meta, path)
    return meta


def check_metadata(meta: dict[str, str], path) -> None:
    """The metadata's values parse: a factor ≥ 2, three positive input multiples, a config object
    whose factor agrees, and the training voxels (when present) as positive sizes in mm."""
    def bad(key: str, why: str) -> UserError:
        return UserError(f"{path}: its {META_PREFIX}{key} metadata {why}; export it again with "
                         f"python -m launch.export")

    if not meta["factor"].strip().isdigit() or int(meta["factor"]) < 2:
        raise bad("factor", f"is {meta['factor']!r}, not an integer ≥ 2")
    multiple = meta["input_multiple"].split(",")
    if len(multiple) != 3 or not all(m.strip().isdigit() and int(m) > 0 for m in multiple):
        raise bad("input_multiple", f"is {meta['input_multiple']!r}, not three positive integers")
    try:
        config = config_of(meta, path)
        config_factor = int(config.sim.factor)
    except (UserError, AttributeError, KeyError, TypeError, ValueError):
        raise bad("config", "is not a training config with sim.factor") from None
    if config_factor != int(meta["factor"]):
        raise bad("config", f"says ×{config_factor} where the factor says ×{meta['factor']}")
    if "training_voxels_mm" in meta:
        try:
            voxels = json.loads(meta["training_voxels_mm"])
            sizes = [float(voxels[k]) for k in ("in_plane", "hf_slice", "lf_slice")]
        except (ValueError, TypeError, KeyError):
            raise bad("training_voxels_mm", "is not an object of in_plane, hf_slice and lf_slice") from None
        if not all(0 < s < 1e3 for s in sizes):
            raise bad("training_voxels_mm", f"holds sizes {sizes} outside (0, 1000) mm")


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
