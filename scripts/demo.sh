#!/usr/bin/env bash
# Sets up .venv (once), then trains the demo on the embedded MNI152 template,
# enhances a simulated low-field volume and evaluates on the held-out slab.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
WORKDIR=${WORKDIR:-runs/demo}
.venv/bin/python -m launch.train --config launch/configs/demo.py --workdir "$WORKDIR"
.venv/bin/python -m launch.evaluate --workdir "$WORKDIR" --out "$WORKDIR/evaluation"
