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
# --compile-bytecode: write the .pyc files once, here. Where PYTHONDONTWRITEBYTECODE is set
# (as on this project's machines) Python would otherwise compile torch's sources again in every
# process that imports it (Ray workers, test subprocesses): 3.5 s more each on 2 vCPUs. Up to
# date, it checks and returns in about a second.
"$uv" sync --frozen --all-extras --quiet --compile-bytecode
