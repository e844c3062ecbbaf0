"""notebooks/colab_demo.ipynb runs headless: its code cells, without the clone and install
cells (tagged colab-setup), with the tiny demo config, in a fresh interpreter."""
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "colab_demo.ipynb"


def _cells(kind: str) -> list[dict]:
    return [c for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == kind]


def _script(workdir: Path) -> str:
    parts = []
    for cell in _cells("code"):
        tags = cell.get("metadata", {}).get("tags", [])
        if "colab-setup" in tags:
            continue
        source = "".join(cell["source"])
        if "parameters" in tags:  # as papermill does: the test's values instead
            source = f"CONFIG = {str(ROOT / 'launch/configs/demo.py')!r} + ':tiny'\nWORKDIR = {str(workdir)!r}"
        parts.append(source)
    return "\n\n".join(parts)


def test_the_setup_cells_ask_for_the_repository_url_and_the_rest_is_plain_python():
    setup = "".join("".join(c["source"]) for c in _cells("code")
                    if "colab-setup" in c.get("metadata", {}).get("tags", []))
    assert "REPO_URL =" in setup and "{REPO_URL}" in setup and "constraints.txt" in setup
    assert all(not line.lstrip().startswith(("!", "%")) for line in _script(Path("w")).splitlines())


def test_the_notebook_trains_enhances_and_shows_the_figure(tmp_path):
    workdir = tmp_path / "demo"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, "-c", _script(workdir)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lf, iqt = nib.load(workdir / "demo_lf.nii.gz"), nib.load(workdir / "demo_iqt.nii.gz")
    assert iqt.shape[:2] == lf.shape[:2] and iqt.shape[2] == 8 * lf.shape[2]
    assert (workdir / "demo_iqt.png").stat().st_size > 10_000
    assert "step 6/6  validation" in result.stdout  # training's own lines, passed through
