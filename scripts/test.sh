#!/usr/bin/env bash
# Set up (first time) and run every check CI runs: corpus originality, lint, types, tests.
# Installs Debian's chromium for the browser tests and Debian's postgresql for the shared-database
# tests when they are missing (needs root or sudo); the tests run their own throwaway PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium for the browser tests..." >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  echo "installing postgresql for the shared-database tests..." >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
if [ -f ../shared/tools/check_originality.py ]; then
  python3 ../shared/tools/check_originality.py corpus
fi
.venv/bin/ruff check assistant tests experiments ingest.py app.py
.venv/bin/ruff format --check assistant tests experiments ingest.py app.py
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
