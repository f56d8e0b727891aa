#!/usr/bin/env bash
# The main job from a fresh clone: install dependencies (and a CPU WebGPU driver if there is no adapter), build, run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules/webgpu ] || npm ci --no-audit --no-fund
bash scripts/ensure-webgpu.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
npm run demo -- "$@"
