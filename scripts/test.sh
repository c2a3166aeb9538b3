#!/usr/bin/env bash
# The whole test suite from a fresh machine: install into .venv (scripts/install.sh), lint,
# then every tier. Name tiers to run only those; arguments after -- go to pytest.
#
#   bash scripts/test.sh                  # install, ruff, then every tier below in order
#   bash scripts/test.sh fast             # one tier (install and lint still run first)
#   bash scripts/test.sh fast -- -k store # pytest arguments for the chosen tiers
#
# Tiers (pytest markers, registered in pyproject.toml):
#   fast     unit and integration tests: no marker below (under a minute, on both cores)
#   fault    real processes killed, disks filled, hostile requests   (-m fault)
#   live     third-party instrumentation libraries and exporters, run live   (-m live;
#            scripts/install_frameworks.sh installs them into .venv-frameworks first)
#   distributed  the analysis on a local Dask cluster of worker processes   (-m distributed)
#   model    the real local GGUF model: sample agent, narratives, notebooks  (-m model)
#   browser  a real JupyterLab in Debian's Chromium via Playwright   (-m browser)
#   latest   the fast tier again in .venv-latest, on the newest versions pyproject.toml
#            allows (no constraints file), so an upgrade that breaks halo_nb shows here first
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TIERS=(fast fault live distributed model browser latest)
tiers=()
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift; break ;;
        fast|fault|live|distributed|model|browser|latest) tiers+=("$1"); shift ;;
        *) break ;;
    esac
done
[ ${#tiers[@]} -gt 0 ] || tiers=("${ALL_TIERS[@]}")

bash scripts/install.sh
.venv/bin/python -m ruff check .

FAST='not (fault or live or distributed or model or browser)'
run_tier() {  # tier python marker-expression [pytest args...]
    local tier="$1" python="$2" expr="$3"
    shift 3
    printf '\n== tier %s\n' "$tier"
    local rc=0
    "$python" -m pytest -m "$expr" "$@" || rc=$?
    if [ "$rc" -eq 5 ]; then
        echo "tier $tier: no tests selected" >&2
        rc=0
    fi
    return "$rc"
}

failed=()
for tier in "${tiers[@]}"; do
    case "$tier" in
        fast) run_tier fast .venv/bin/python "$FAST" -n 2 "$@" || failed+=(fast) ;;
        live)
            bash scripts/install_frameworks.sh
            run_tier live .venv/bin/python live "$@" || failed+=(live) ;;
        latest)
            HALO_VENV=.venv-latest HALO_LATEST=1 HALO_EXTRAS=test HALO_SKIP_SYSTEM=1 \
                bash scripts/install.sh
            .venv-latest/bin/python -m pip list --format=freeze \
                | grep -iE '^(polars|pyarrow|orjson|numpy|opentelemetry-sdk|protobuf)==' \
                | tr '\n' ' '
            echo
            run_tier latest .venv-latest/bin/python "$FAST" -n 2 "$@" || failed+=(latest) ;;
        *) run_tier "$tier" .venv/bin/python "$tier" "$@" || failed+=("$tier") ;;
    esac
done
# Every tier runs even when one fails, so one CI run shows every failure.
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed tiers: ${failed[*]}" >&2
    exit 1
fi
