#!/usr/bin/env bash
# Installs everything the project needs into ./.venv from the committed lock file.
# Needs only python3 (3.11-3.13) with venv and network access to the package index.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run again (a no-op when up to date).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

uv_version="0.13.8"
tools="$root/.tools"
uv="$tools/bin/uv"
if [ ! -x "$uv" ] || [ "$("$uv" --version | awk '{print $2}')" != "$uv_version" ]; then
    echo "bootstrap: installing uv $uv_version into .tools/" >&2
    python3 -m venv "$tools"
    "$tools/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$uv_version"
fi
export UV_PYTHON_DOWNLOADS=never
# --frozen: install exactly what uv.lock pins; never re-resolve on a user's machine.
"$uv" sync --frozen --all-extras --quiet
