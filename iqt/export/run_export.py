"""A training run's checkpoint as a self-contained `.onnx`, and a network opened from either.

The file holds the graph (`iqt.export.onnx_graph`) and, as metadata_props
(`iqt.*`), all that inference needs besides: the resolved config (JSON), the
factor, the input multiple, the intensity rule and the training voxel sizes.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from iqt.errors import UserError
from iqt.export import backends
from iqt.inference import Predictor

FORMAT_VERSION = "1"
NORMALISATION = ("input: the low-field image divided by the mean of its brain voxels (iqt.data.normalization."
                 "lf_scale; brain = voxels > 0 of a skull-stripped scan, or a mask), 0 outside the brain; "
                 "output: multiplied back by that mean, negatives clipped to 0 (iqt.inference.enhance_lf)")


def export_metadata(config, step: int, source: str) -> dict[str, str]:
    """The `iqt.*` metadata_props of an exported network."""
    from iqt import config_io
    from iqt.models import input_multiple

    factor = int(config.sim.factor)
    meta = {"format_version": FORMAT_VERSION, "config": config_io.to_json(config), "factor": str(factor),
            "input_multiple": ",".join(map(str, input_multiple(config.model, factor))),
            "normalisation": NORMALISATION, "checkpoint": f"{source} step {step}"}
    sim = config.get("sim", {})
    if "hf_voxel_mm" in sim:
        hf_mm = float(sim["hf_voxel_mm"])
        meta["training_voxels_mm"] = json.dumps({"in_plane": hf_mm, "hf_slice": hf_mm, "lf_slice": factor * hf_mm})
    return {backends.META_PREFIX + k: v for k, v in meta.items()}


def run_to_onnx(workdir: str | os.PathLike, checkpoint: str = "best"):
    """(onnx.ModelProto, config) of a training run's checkpoint (`best`, `latest` or a step)."""
    import jax

    from iqt import checkpoint_reading, config_io
    from iqt.export.onnx_graph import build_model
    from iqt.models import create_model, input_multiple

    backends.runtime("onnx")
    if not Path(workdir).is_dir():
        raise UserError(f"work directory {workdir} does not exist")
    config = config_io.load_config(workdir)
    factor = int(config.sim.factor)
    model = create_model(config.model, factor)
    lf = jax.ShapeDtypeStruct((1, *input_multiple(config.model, factor), 1), jax.numpy.float32)
    abstract = jax.eval_shape(lambda k, x: model.init(k, x, train=False), jax.random.key(0), lf)
    abstract = {k: abstract[k] for k in ("params", "batch_stats") if k in abstract}
    variables, step = checkpoint_reading.restore_variables(workdir, abstract, str(checkpoint))
    variables = jax.device_get(variables)
    return build_model(variables, config.model, factor, export_metadata(config, step, Path(workdir).name)), config


def export_onnx(workdir: str | os.PathLike, output: str | os.PathLike, checkpoint: str = "best") -> Path:
    """Writes a run's network to `output` (.onnx) atomically; returns its path."""
    from iqt.io_utils import atomic_path

    model, _ = run_to_onnx(workdir, checkpoint)
    with atomic_path(output) as tmp:
        tmp.write_bytes(model.SerializeToString())
    return Path(output)


def training_grid(source: str | os.PathLike):
    """The training voxels of a run or an exported file (`iqt.prepare.spacing.TrainingGrid`), or None."""
    from iqt.prepare import infer_hook
    from iqt.prepare.spacing import TrainingGrid

    if not backends.is_onnx_file(source):
        return infer_hook.training_grid(source)
    meta = backends.read_metadata(source)
    if "training_voxels_mm" not in meta:
        return None
    voxels = json.loads(meta["training_voxels_mm"])
    return TrainingGrid(in_plane_mm=voxels["in_plane"], slice_mm=voxels["lf_slice"], factor=int(meta["factor"]))


def open_predictor(source: str | os.PathLike, checkpoint: str = "best", backend: str = "auto", *,
                   threads: int | None = None, precision: str = "auto",
                   factor: int | None = None) -> tuple[Predictor, str, str]:
    """The network of a work directory or an exported `.onnx`, run by `backend`:
    (Predictor, backend used, precision used).

    `threads`, `precision`: the CPU runtime's (`iqt.export.backends`); 'auto' on a CPU times the
    installed runtimes once (`iqt.export.backend_choice`). `factor`: the upsampling factor the
    caller expects; a network of another is a `UserError`.
    """
    from iqt import config_io
    from iqt.export import backend_choice

    onnx_file = backends.is_onnx_file(source)
    names = backends.candidates(backend, onnx_file, precision)
    precisions = {name: backends.check_precision(precision, name) for name in names}
    meta = backends.read_metadata(source) if onnx_file else None
    graph = {}   # the run's ONNX graph, exported once for both ONNX runtimes

    def build(name: str) -> Predictor:
        if onnx_file:
            return backends.onnx_predictor(source, name, threads=threads, precision=precisions[name], meta=meta)
        if name == "jax":
            from iqt.inference import load_predictor
            return load_predictor(source, checkpoint)[0]
        if not graph:
            graph["model"] = run_to_onnx(source, checkpoint)[0]
        return _onnx_model_predictor(graph["model"], name, threads, precisions[name], str(source))

    config = backends.config_of(meta, source) if onnx_file else config_io.load_config(source)
    if factor is not None and int(config.sim.factor) != int(factor):
        raise UserError(f"{source} holds a ×{config.sim.factor} network, not the ×{factor} asked for (--factor)")
    key = {"network": config_io.to_json(config.model), "factor": int(config.sim.factor),
           "precision": precision, "threads": threads, "versions": backends.versions(names)}
    chosen, predictor = backend_choice.fastest(names, build, key)
    return predictor, chosen, precisions[chosen]


def _onnx_model_predictor(model, backend: str, threads, precision: str, name: str) -> Predictor:
    """A `Predictor` running an in-memory ONNX model with an ONNX runtime (through a temporary file)."""
    with tempfile.TemporaryDirectory(prefix="iqt-onnx-") as folder:
        path = Path(folder) / "model.onnx"
        path.write_bytes(model.SerializeToString())
        meta = {p.key[len(backends.META_PREFIX):]: p.value for p in model.metadata_props}
        return backends.onnx_predictor(path, backend, threads=threads, precision=precision, meta=meta, name=name)
