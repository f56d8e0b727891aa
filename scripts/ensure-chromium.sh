#!/usr/bin/env bash
# Makes sure the browser tests find a Chromium: Debian's `chromium` package (and a CJK font so screenshots show
# the Chinese text), installed as root or through sudo when missing. CHROMIUM_PATH names another build.
set -euo pipefail
chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ -x "$chromium" ]; then "$chromium" --version; exit 0; fi
echo "No Chromium at $chromium: installing Debian's chromium and fonts-wqy-microhei."
run() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else echo "Run as root: apt-get install chromium fonts-wqy-microhei" >&2; exit 1; fi; }
export DEBIAN_FRONTEND=noninteractive
run apt-get update -q
run apt-get install -y -q --no-install-recommends chromium fonts-wqy-microhei
"$chromium" --version
