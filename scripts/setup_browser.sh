#!/usr/bin/env bash
# Install Debian's Chromium for the browser test (tests/test_ui_testbed.py), once. Idempotent: does
# nothing when /usr/bin/chromium is there. Playwright (requirements.txt) drives this browser; its own
# browser downloads are never used. Needs root (or sudo) for apt-get on a machine without Chromium.
set -euo pipefail

# The browser, and one font family so that pages (and screenshots) have readable text.
if [ -x /usr/bin/chromium ] && [ -d /usr/share/fonts/truetype/liberation ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup_browser: /usr/bin/chromium is missing and apt-get is not available: install Chromium" >&2
  exit 1
fi
sudo_cmd=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup_browser: need root or sudo to install chromium" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
echo "setup_browser: installing chromium and fonts-liberation (apt-get)"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]+"${sudo_cmd[@]}"}" apt-get update -qq
"${sudo_cmd[@]+"${sudo_cmd[@]}"}" apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
/usr/bin/chromium --version
