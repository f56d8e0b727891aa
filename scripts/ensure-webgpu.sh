#!/usr/bin/env bash
# Makes sure Dawn finds a WebGPU adapter: if none, installs the CPU Vulkan driver (as root, or through sudo).
# Needs node_modules (npm ci) first, since the check uses the `webgpu` package.
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR"
if node scripts/webgpu-info.mjs 2>/dev/null | grep '^adapter:'; then exit 0; fi
echo "No WebGPU adapter found: installing a CPU Vulkan driver (Mesa lavapipe, scripts/install-cpu-webgpu.sh)."
if [ "$(id -u)" -eq 0 ]; then
  bash scripts/install-cpu-webgpu.sh
elif command -v sudo >/dev/null; then
  sudo bash scripts/install-cpu-webgpu.sh
else
  echo "Run as root: bash scripts/install-cpu-webgpu.sh (or install a GPU driver with Vulkan support)." >&2
  exit 1
fi
node scripts/webgpu-info.mjs 2>/dev/null | grep '^adapter:' || { echo "Still no WebGPU adapter after installing lavapipe." >&2; exit 1; }
