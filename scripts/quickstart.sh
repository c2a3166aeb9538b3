#!/usr/bin/env bash
# From a fresh machine to the quickstart's result: install, then run the sample agent on the
# bundled local model, analyse its traces and write quickstart/report.html.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
python3 -m examples.quickstart "$@"
