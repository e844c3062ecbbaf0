"""Seconds and peak memory of `python -m launch.prepare` on a 512 × 512 × 28 scan, per step.

    PYTHONPATH=. .venv/bin/python benchmarks/prepare.py --out benchmarks/results/prepare_cpu.json

The scan is the MNI152 template in 5 mm slices inside a synthetic head
(`iqt.prepare.phantom`), its 28 central slices, interpolated in-plane to
512 × 512 voxels of 0.45 mm and written as a DICOM series (int16, one file per
slice). A child process runs `launch.prepare` on the folder with every step,
against a run trained at ×8 on 0.7 mm (slices 5.6 mm apart; the scan's 5 mm
are 11 % off, within the tolerance). Reported: the command's wall seconds and
peak resident memory, and each step's seconds and the peak memory after it
(from the JSON that `launch.prepare` writes). Goal: under 60 s in all on 2 cores.
"""
from __future__ import annotations

import argparse
import datetime
import json
import locale
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import emit  # noqa: E402

from iqt.data.template import load_template  # noqa: E402
from iqt.prepare.phantom import synthetic_head  # noqa: E402

SHAPE = (512, 512, 28)
IN_PLANE_MM, SLICE_MM = 0.45, 5.0


def make_scan(folder: Path) -> None:
    """The benchmark scan as a DICOM series in `folder`."""
    thin = np.asarray(load_template().image, np.float32)
    z = thin.shape[2] // 5 * 5
    thick = thin[:, :, :z].reshape(*thin.shape[:2], -1, 5).mean(-1)
    head, _ = synthetic_head(thick, (1.0, 1.0, SLICE_MM))
    centre = head.shape[2] // 2
    head = head[:, :, centre - SHAPE[2] // 2: centre + SHAPE[2] // 2]
    zoom = (SHAPE[0] / head.shape[0], SHAPE[1] / head.shape[1], 1.0)
    scan = np.clip(ndimage.zoom(head, zoom, order=1), 0, None)
    image = sitk.GetImageFromArray(np.round(scan * 10).astype(np.int16).transpose(2, 1, 0))
    image.SetSpacing((IN_PLANE_MM, IN_PLANE_MM, SLICE_MM))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    uid = "1.2.826.0.1.3680043.2.1125.4242"
    for k in range(image.GetDepth()):
        piece = image[:, :, k]
        for tag, value in (("0008|0060", "MR"), ("0020|000e", uid), ("0008|0018", f"{uid}.{k + 1}"),
                           ("0020|0011", "1"), ("0008|103e", "T1 AX benchmark"), ("0020|0013", str(k + 1)),
                           ("0020|0037", "1\\0\\0\\0\\1\\0"),
                           ("0020|0032", "\\".join(f"{v:.6f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))))):
            piece.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{k:03d}.dcm"))
        writer.Execute(piece)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="Write the JSON here too.")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "dicom").mkdir()
        saved_locale = locale.setlocale(locale.LC_ALL)
        make_scan(tmp / "dicom")
        locale.setlocale(locale.LC_ALL, saved_locale)   # GDCM's DICOM writer sets the C locale
        (tmp / "run").mkdir()
        (tmp / "run" / "config.json").write_text(json.dumps({"sim": {"factor": 8, "hf_voxel_mm": 0.7}}))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "launch.prepare", f"--input={tmp / 'dicom'}",
                        f"--output={tmp / 'out' / 'prepared.nii.gz'}", f"--workdir={tmp / 'run'}"],
                       check=True, env=env, cwd=tmp, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        report = json.loads((tmp / "out" / "prepared.json").read_text())
    result = {
        "benchmark": "launch.prepare", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]}},
        "scan": {"shape": list(SHAPE), "voxel_mm": [IN_PLANE_MM, IN_PLANE_MM, SLICE_MM], "format": "DICOM"},
        "command_seconds": round(seconds, 2),
        "command_peak_memory_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0, 1),
        "steps": [{"name": s["name"], "seconds": s["seconds"], "peak_memory_mb_after": s["peak_memory_mb"]}
                  for s in report["steps"]],
        "steps_seconds": report["seconds"], "shape_out": report["shape_out"],
        "goal_seconds": 60.0,
    }
    return emit(result, args.out)


if __name__ == "__main__":
    main()
