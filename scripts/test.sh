#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install, lint, then every test
# (unit, real OTLP exporters, real JupyterLab in headless Chromium, the real local model).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
python3 -m ruff check .
python3 -m pytest "$@"
