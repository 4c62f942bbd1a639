#!/usr/bin/env bash
# The console's browser test drives Debian's Chromium with its chromedriver. Install them when missing
# (Debian/Ubuntu, as root); elsewhere the browser test skips and says what to install.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing chromium and chromium-driver (for the console's browser test)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
else
  echo "chromium/chromedriver missing: the browser test will be skipped" \
       "(Debian/Ubuntu: sudo apt-get install chromium chromium-driver)" >&2
fi
