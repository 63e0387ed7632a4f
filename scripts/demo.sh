#!/usr/bin/env bash
# The main job on the embedded default, from nothing: installs what it needs, then runs
# `tsfmicro search` with no flags: the synthetic benchmark (generated on first use), the tiny
# preset, 4 trials on a local Ray, an MLflow SQLite store (./mlflow.db), the leaderboard at the
# end and the best model registered. Extra arguments go to `tsfmicro search`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/bootstrap.sh"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec "$root/.venv/bin/tsfmicro" search "$@"
