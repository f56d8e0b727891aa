#!/usr/bin/env bash
# Installs a CPU Vulkan driver (Mesa lavapipe >= 24, from Debian bookworm-backports) so that Dawn (npm package
# `webgpu`) finds a WebGPU adapter on a machine with no GPU. Tested on Debian 12. Run as root (or with sudo).
# Older Mesa (Debian 12's own 22.x) lacks features Dawn needs, hence the backports.
# Afterwards, set XDG_RUNTIME_DIR to any writable folder to silence a Mesa warning.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "install-cpu-webgpu.sh: run as root, e.g. sudo bash scripts/install-cpu-webgpu.sh" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "install-cpu-webgpu.sh: this recipe is for Debian/Ubuntu (apt). Elsewhere install Mesa >= 24 with its lavapipe Vulkan driver." >&2
  exit 1
fi
if grep -qs 'bookworm' /etc/os-release && ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
  # Reuse the mirror this machine already uses, whatever it is.
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list)
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$uri" > /etc/apt/sources.list.d/backports.sources
fi
apt-get update -qq
if grep -qs 'bookworm' /etc/os-release; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
else
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
fi
echo "installed: $(dpkg-query -W -f '${Package} ${Version}\n' mesa-vulkan-drivers)"
