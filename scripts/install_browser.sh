#!/usr/bin/env bash
# Installs Debian's Chromium and its chromedriver for the dashboard's end-to-end browser test
# (tests/dashboards/test_dashboard_browser.py), when /usr/bin/chromium or /usr/bin/chromedriver is
# missing. Uses apt-get as root, or through sudo otherwise. A no-op when both are there.
# Fails with a message when neither works: the browser test then fails too (it never skips).
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: /usr/bin/chromium or /usr/bin/chromedriver is missing and this" \
         "machine has no apt-get; install Chromium and chromedriver there yourself" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    as_root() { "$@"; }
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root() { sudo -n "$@"; }
else
    echo "install_browser: /usr/bin/chromium or /usr/bin/chromedriver is missing; installing" \
         "them needs root (or password-less sudo): apt-get install chromium chromium-driver" >&2
    exit 1
fi
echo "install_browser: installing Debian's chromium and chromium-driver" >&2
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -qq
as_root apt-get install -y -qq chromium chromium-driver >/dev/null
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    echo "install_browser: apt-get finished but /usr/bin/chromium or /usr/bin/chromedriver" \
         "is still missing" >&2
    exit 1
fi
