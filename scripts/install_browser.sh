#!/usr/bin/env bash
# Install headless Chromium and its WebDriver from Debian's packages if they are missing
# (the dashboard's browser tests drive them with Selenium; nothing is downloaded at test time).
# Idempotent: installed binaries are left as they are. Prints the chromium path on its last line.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
DRIVER=/usr/bin/chromedriver
if [ ! -x "$CHROMIUM" ] || [ ! -x "$DRIVER" ]; then
  echo "installing chromium and chromium-driver from Debian packages..." >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  # Wait for another apt run (e.g. scripts/start_postgres.sh) instead of failing on its lock.
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends chromium chromium-driver fonts-dejavu-core >&2
fi
"$CHROMIUM" --version >&2
echo "$CHROMIUM"
