#!/usr/bin/env bash
# Debian packages the tests start, installed once: Chromium for the browser tests (Playwright,
# requirements-dev.txt, drives it; its own browser downloads are never used) and redis-server, the
# Celery broker of tests/test_celery_night.py. Idempotent: does nothing when both are there.
# Needs root (or sudo) for apt-get on a machine without them.
set -euo pipefail

# The browser, and one font family so that pages (and screenshots) have readable text.
if [ -x /usr/bin/chromium ] && [ -d /usr/share/fonts/truetype/liberation ] && command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup_system: /usr/bin/chromium is missing and apt-get is not available: install Chromium" >&2
  exit 1
fi
sudo_cmd=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup_system: need root or sudo to install chromium and redis-server" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
echo "setup_system: installing chromium, fonts-liberation and redis-server (apt-get)"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]+"${sudo_cmd[@]}"}" apt-get update -qq
"${sudo_cmd[@]+"${sudo_cmd[@]}"}" apt-get install -y -qq --no-install-recommends chromium fonts-liberation redis-server >/dev/null
/usr/bin/chromium --version
