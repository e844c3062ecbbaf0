#!/usr/bin/env bash
# Creates (once) the project's virtual environment in .venv and installs the
# project with its test extras, at the exact versions of constraints.txt (setup.cfg
# holds the compatible ranges). Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
stamp=.venv/.installed-$(cat setup.cfg pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[test]'
  rm -f .venv/.installed-* && touch "$stamp"
fi
