#!/usr/bin/env bash
# From a fresh machine to the quickstart's result: install into .venv, then run the sample
# agent on the bundled local model, analyse its traces and write quickstart/report.html.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/python -m halo_nb.examples.quickstart "$@"
