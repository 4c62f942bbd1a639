#!/usr/bin/env bash
# mysqlclient compiles against the MariaDB/MySQL client headers. Install them when missing (Debian/Ubuntu,
# as root); elsewhere say what to install.
set -euo pipefail
if pkg-config --exists libmariadb 2>/dev/null || pkg-config --exists mysqlclient 2>/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing libmariadb-dev and pkg-config (needed to build mysqlclient)"
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq libmariadb-dev pkg-config >/dev/null
else
  echo "mysqlclient needs the MariaDB/MySQL client headers and pkg-config:" >&2
  echo "  Debian/Ubuntu: sudo apt-get install libmariadb-dev pkg-config" >&2
  echo "  Fedora/RHEL:   sudo dnf install mariadb-connector-c-devel pkgconf" >&2
  echo "  macOS:         brew install mariadb-connector-c pkg-config" >&2
  exit 1
fi
