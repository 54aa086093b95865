#!/usr/bin/env bash
# Set up (first time) and run the app on the shipped corpus: http://127.0.0.1:7860
# The app ingests corpus/ first when the index is missing or stale. Extra args go to app.py.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python app.py "$@"
