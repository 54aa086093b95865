#!/usr/bin/env bash
# Create .venv/ and install the pinned stack: torch==2.13.0 (CPU) first, so nothing pulls a
# CUDA build, then everything else under constraints.txt. Re-running is a no-op when the
# requirement files have not changed. Usage: scripts/setup.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
want=requirements.txt
[ "${1:-}" = "--dev" ] && want=requirements-dev.txt
stamp=.venv/.installed-$(cat "$want" requirements.txt constraints.txt | sha256sum | cut -c1-16)
if [ -f "$stamp" ]; then exit 0; fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
echo "setting up .venv (first run takes a few minutes)..." >&2
# The CPU build: from a local wheel or mirror when the machine has one (these machines do), else
# from PyTorch's CPU index (PyPI's Linux torch is the multi-GB CUDA build).
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0+cpu" 2>/dev/null ||
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0+cpu" \
    --index-url https://download.pytorch.org/whl/cpu
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$want" -c constraints.txt
touch "$stamp"
