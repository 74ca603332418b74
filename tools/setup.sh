#!/usr/bin/env bash
# One set-up command for a fresh Debian bookworm machine (run as root): npm packages, a Vulkan driver
# for Dawn when no WebGPU adapter is found (Mesa lavapipe from bookworm-backports), Debian's chromium for the
# browser test, and the Debian data the tests read (ONNX conformance cases). Safe to run again: it installs
# only what is missing.
#   bash tools/setup.sh            # what `npm test` needs
#   bash tools/setup.sh --python   # also PyTorch, to regenerate goldens and train models (tools/)
set -euo pipefail
cd "$(dirname "$0")/.."
want_python=0; [[ "${1:-}" == "--python" ]] && want_python=1
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 # playwright-core drives Debian's chromium; never download a browser
SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
apt_updated=0
apt_install() { # apt_install [-t SUITE] PKG...
  if ((apt_updated == 0)); then $SUDO apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Backports: copy the system's own Debian entry (same mirror, same key) and change its suite.
add_backports() {
  local src=/etc/apt/sources.list.d/debian.sources dst=/etc/apt/sources.list.d/camgpu-backports.sources
  [[ -f $dst || -f /etc/apt/sources.list.d/camgpu-backports.list ]] && return
  if [[ -f $src ]]; then
    # first stanza (the main archive), suites replaced by bookworm-backports
    awk 'BEGIN{RS="";ORS="\n\n"} NR==1{print}' "$src" | sed -E 's/^Suites:.*/Suites: bookworm-backports/' | $SUDO tee "$dst" >/dev/null
  else
    grep -E '^deb .* bookworm main' /etc/apt/sources.list | head -1 \
      | sed -E 's/ bookworm main/ bookworm-backports main/' | $SUDO tee /etc/apt/sources.list.d/camgpu-backports.list >/dev/null
  fi
  apt_updated=0
}

# npm packages: (re)install when node_modules is missing or older than the lock file. No environment variable is
# needed: the benchmark peers (onnxruntime-node's download script) live in bench/peers/, installed by npm run bench:peers.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then npm ci --no-audit --no-fund; fi

if ! node tools/probe-adapter.mjs >/dev/null 2>&1; then
  echo "camgpu setup: no WebGPU adapter; installing Mesa lavapipe (Vulkan on the CPU) from bookworm-backports" >&2
  add_backports
  apt_install -t bookworm-backports mesa-vulkan-drivers libvulkan1
  node tools/probe-adapter.mjs
fi

[[ -d /usr/share/libonnx-testdata/data/node ]] || apt_install libonnx-testdata

# tests/browser.test.ts: the demo page in headless Chromium (WebGPU on its bundled SwiftShader). With its
# recommended packages (fonts, Mesa), as the test was made with.
if [[ ! -x /usr/bin/chromium ]]; then
  echo "camgpu setup: installing Debian's chromium (the browser test)" >&2
  if ((apt_updated == 0)); then $SUDO apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

if ((want_python)); then
  /usr/bin/python3 -c 'import torch, torchvision, onnx' 2>/dev/null \
    || apt_install python3-torch python3-torchvision python3-onnx python3-numpy dataset-fashion-mnist
fi
