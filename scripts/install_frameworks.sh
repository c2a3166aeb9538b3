#!/usr/bin/env bash
# Install the third-party agent frameworks the framework corpus is recorded from, apart
# from the project's own environment: .venv-frameworks (Python, pinned in
# requirements/frameworks.txt) and tests/frameworks/node/node_modules (npm ci from the
# committed package-lock.json). Needed only to regenerate the corpus
# (scripts/record_frameworks.py) or to run the live test tier (pytest -m live).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-frameworks
.venv-frameworks/bin/pip install -q --upgrade pip
.venv-frameworks/bin/pip install -q -r requirements/frameworks.txt
(cd tests/frameworks/node && npm ci --no-audit --no-fund)
echo "frameworks installed: .venv-frameworks, tests/frameworks/node/node_modules"
