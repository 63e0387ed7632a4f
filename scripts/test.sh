#!/usr/bin/env bash
# The whole test suite, from nothing: installs what it needs (scripts/bootstrap.sh), then
# runs every test, slow ones included. Extra arguments go to pytest (e.g. -m "not slow").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/bootstrap.sh"
"$root/scripts/install_browser.sh"  # Chromium for the dashboard's browser test
cd "$root"
# Spinning OpenMP threads make small-tensor training many times slower on shared cores.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec .venv/bin/python -m pytest "$@"
