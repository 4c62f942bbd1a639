#!/usr/bin/env bash
# The browser tests drive Debian's Chromium with its chromedriver, and take screenshots of Chinese pages, which
# need a CJK font. Install them when missing (Debian/Ubuntu, as root); elsewhere the browser tests skip and say
# what to install.
set -euo pipefail
PACKAGES="chromium chromium-driver fonts-wqy-microhei"
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && [ -d /usr/share/fonts/truetype/wqy ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing $PACKAGES (for the browser tests)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PACKAGES >/dev/null
else
  echo "chromium/chromedriver or a CJK font missing: browser tests may be skipped or show boxes" \
       "(Debian/Ubuntu: sudo apt-get install $PACKAGES)" >&2
fi
