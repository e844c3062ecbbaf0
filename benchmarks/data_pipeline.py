"""Host data pipeline speed: training patches per second, at the demo and an HCP-sized config.

    PYTHONPATH=. .venv/bin/python benchmarks/data_pipeline.py --out benchmarks/results/data_pipeline.json

Demo: the demo config's data (`launch/configs/demo.py`: iqt_template, 32^3
patches with the T1w x8 simulator's margin, batch 8). HCP-sized: the default
data section (batch 32, as published) on a temporary nifti_folder of synthetic
260 x 311 x 260 subjects at 0.7 mm (ellipsoid brains with GM/WM/CSF). For each parallelism
setting (Grain processes x threads per process), `make_train_iterator` is timed: seconds to the first batch (worker start-up,
decoding), then patches per second over the next `--seconds` (at least two
shuffle groups). Also: the build time and the time to decode one stored
HCP-sized volume. One JSON object is printed (and written to --out).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import emit  # noqa: E402

import simulators  # noqa: E402
from iqt.data import datasets, patches, pipeline  # noqa: E402
from iqt.data.config import default_config  # noqa: E402

SIM = simulators.default_config("T1w", 8)   # each decoded subject's LF brain means need a protocol

HCP_SHAPE, HCP_VOXEL_MM = (260, 311, 260), 0.7


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parallelism", default="0x0,0x1,0x2,2x1",
                   help="PROCESSESxTHREADS settings to time (data.worker_count x data.worker_threads)")
    p.add_argument("--hcp_patches_per_volume", default="64,256", help="data.patches_per_volume values for HCP")
    p.add_argument("--seconds", type=float, default=8.0, help="timing window per measurement")
    p.add_argument("--hcp_subjects", type=int, default=3, help="synthetic HCP-sized training subjects")
    p.add_argument("--skip_hcp", action="store_true")
    p.add_argument("--out", default="")
    return p.parse_args(argv)


def synthetic_subject(folder: Path, seed: int) -> dict[str, str]:
    """An HCP-sized ellipsoid brain (float32 image, uint8 0-255 tissue maps) written as NIfTI."""
    rng = np.random.default_rng(seed)
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in HCP_SHAPE]
    r = np.sqrt(sum((a.reshape([-1 if i == k else 1 for k in range(3)]) / 0.8) ** 2
                    for i, a in enumerate(axes)))
    wm = np.clip((0.55 - r) * 10 + 0.5, 0, 1)
    brain = np.clip((1.0 - r) * 10 + 0.5, 0, 1)
    csf = np.clip((r - 0.85) * 10 + 0.5, 0, 1) * brain
    gm = np.clip(brain - wm - csf, 0, 1)
    image = (60 * gm + 100 * wm + 30 * csf) * (brain > 0)
    image *= 1 + rng.normal(0, 0.03, HCP_SHAPE).astype(np.float32)
    affine = np.diag([HCP_VOXEL_MM] * 3 + [1.0])
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data, dtype in (("image", image, np.float32), ("gm", gm * 255, np.uint8),
                              ("wm", wm * 255, np.uint8), ("csf", csf * 255, np.uint8)):
        paths[name] = str(folder / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(np.rint(data).astype(dtype) if dtype == np.uint8 else data.astype(dtype),
                                 affine), paths[name])
    return paths


class Setting:
    """The parts of a training config the pipeline sees: data section, batch size, margin."""

    def __init__(self, data, batch_size: int):
        self.data, self.batch_size = data, batch_size
        self.margin = simulators.required_margin(simulators.default_config("T1w", 8))


def demo_setting(data_dir: Path) -> Setting:
    data = default_config("iqt_template")
    data.data_dir = str(data_dir)
    return Setting(data, batch_size=8)


def hcp_sized_setting(root: Path, num_train: int) -> Setting:
    """The HCP x8 data section on a nifti_folder of synthetic subjects (+1 test subject)."""
    rows = ["subject,image,gm,wm,csf,split"]
    for i in range(num_train + 1):
        p = synthetic_subject(root / "src" / f"h{i:02d}", seed=i)
        split = "train" if i < num_train else "test"
        rows.append(",".join([f"h{i:02d}", p["image"], p["gm"], p["wm"], p["csf"], split]))
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    data = default_config("nifti_folder")
    data.manual_dir = str(root / "manifest.csv")
    data.data_dir = str(root / "tfds")
    return Setting(data, batch_size=32)


def time_pipeline(setting: Setting, parallelism: str, seconds: float) -> dict:
    data = setting.data.copy_and_resolve_references()
    data.worker_count, data.worker_threads = (int(n) for n in parallelism.split("x"))
    batch_size, margin = setting.batch_size, setting.margin
    group_batches = data.patches_per_volume * data.volumes_per_shuffle // batch_size
    iterator = pipeline.make_train_iterator(data, global_batch_size=batch_size, slice_margin=margin, seed=0,
                                            sim_config=SIM)
    try:
        start = time.perf_counter()
        next(iterator)
        first = time.perf_counter() - start
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds or count < 2 * group_batches:
            next(iterator)
            count += 1
        elapsed = time.perf_counter() - start
    finally:
        iterator.close()
    return {"worker_count": data.worker_count, "worker_threads": data.worker_threads,
            "prefetch_batches": data.prefetch_batches, "patches_per_volume": data.patches_per_volume,
            "batch_size": batch_size, "slice_margin": margin, "patch_size_hf": list(data.patch_size_hf),
            "seconds_to_first_batch": round(first, 3), "batches_timed": count,
            "patches_per_second": round(count * batch_size / elapsed, 1)}


def _with(setting: Setting, **data_fields) -> Setting:
    data = setting.data.copy_and_resolve_references()
    data.update(data_fields)
    return Setting(data, setting.batch_size)


def decode_seconds(data) -> float:
    source = datasets.ensure_built(data).as_data_source(data.train_split)
    start = time.perf_counter()
    patches.sampling_subject(source[0], SIM.to_dict())
    return round(time.perf_counter() - start, 3)


def main(argv=None) -> dict:
    args = parse_args(argv)
    settings = args.parallelism.split(",")
    result = {"benchmark": "data_pipeline", "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "host": platform.node(), "cpu_count": os.cpu_count(), "configs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        demo = demo_setting(Path(tmp) / "template_tfds")
        start = time.perf_counter()
        datasets.ensure_built(demo.data)
        result["configs"]["demo"] = {"dataset": "iqt_template", "build_seconds": round(time.perf_counter() - start, 2),
                                     "runs": [time_pipeline(demo, p, args.seconds) for p in settings]}
        if not args.skip_hcp:
            start = time.perf_counter()
            hcp = hcp_sized_setting(Path(tmp) / "hcp", args.hcp_subjects)
            written = time.perf_counter() - start
            start = time.perf_counter()
            datasets.ensure_built(hcp.data)
            result["configs"]["hcp_sized"] = {
                "dataset": f"nifti_folder, {args.hcp_subjects} train subjects {HCP_SHAPE} at {HCP_VOXEL_MM} mm",
                "nifti_write_seconds": round(written, 2),
                "build_seconds": round(time.perf_counter() - start, 2),
                "decode_seconds_per_volume": decode_seconds(hcp.data),
                "runs": [time_pipeline(_with(hcp, patches_per_volume=int(k)), p, args.seconds)
                         for k in args.hcp_patches_per_volume.split(",") for p in settings]}
    return emit(result, args.out)


if __name__ == "__main__":
    main()
