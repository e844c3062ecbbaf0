#!/usr/bin/env bash
# Sets up .venv (once) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q --durations=20 "$@"   # the 20 slowest: the suite must stay under 15 min
