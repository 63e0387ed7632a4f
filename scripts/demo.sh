#!/usr/bin/env bash
# The main job on the embedded default, from nothing: installs what it needs, then runs a
# LOSO training of the tiny TSFmicro preset on the in-memory synthetic motion task and
# prints ACC/UF1/UAR per evaluation mode. Extra arguments go to `tsfmicro train`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/bootstrap.sh"
cd "$root"
exec .venv/bin/tsfmicro train --preset tiny --epochs 30 --val-subjects 1 "$@"
