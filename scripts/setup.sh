#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Installs what is missing, and only that. Safe to run repeatedly; does
# nothing when all is there.
#
#   scripts/setup.sh           what building and running the plugin needs:
#                              GStreamer development files and plugins,
#                              gst-play-1.0, ffprobe (ffmpeg), a Rust
#                              toolchain. scripts/demo.sh runs this.
#   scripts/setup.sh --tests   that, and what only the tests use: the fault
#                              shim's tools, PyGObject, Chromium and Node.js
#                              with the npm packages of tests/web (hls.js, a
#                              DevTools protocol client), cargo-c (the
#                              packaging test), s3s-fs (the archive tests'
#                              S3 server). scripts/test.sh runs this.
set -euo pipefail

tests=false
case "${1:-}" in
  --tests) tests=true ;;
  "") ;;
  *) echo "usage: scripts/setup.sh [--tests]" >&2; exit 2 ;;
esac

packages=(
  build-essential pkg-config
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  gstreamer1.0-plugins-base-apps ffmpeg
)
if $tests; then
  # gcc-mingw-w64-x86-64: .ci/run type-checks the Windows build, whose S3
  # client (aws-lc-sys) compiles C for the target.
  packages+=(gstreamer1.0-x python3-gi gir1.2-gstreamer-1.0 e2fsprogs chromium nodejs npm libssl-dev gcc-mingw-w64-x86-64)
fi

missing=()
for p in "${packages[@]}"; do
  case "$p" in
    # Node.js may come from elsewhere (nodesource, nvm): any node and npm do.
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm) command -v npm >/dev/null 2>&1 && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] || {
    echo "setup: installing the Rust toolchain with rustup"
    command -v curl >/dev/null 2>&1 || { echo "setup: curl is needed to install Rust" >&2; exit 1; }
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt
  }
  echo "setup: add \$HOME/.cargo/bin to PATH (or run: source \$HOME/.cargo/env)"
fi

$tests || exit 0

# cargo-c (`cargo cinstall`), with which the packaging test installs the
# plugin as gst-plugins-rs plugins are installed. 0.10.24: Debian's is too
# old for edition 2024 and newer ones need a newer rustc than ours. About 11
# minutes on 2 cores, once per machine.
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
if command -v cargo >/dev/null 2>&1 && ! cargo cinstall --version >/dev/null 2>&1; then
  echo "setup: installing cargo-c 0.10.24 (about 11 minutes, once)"
  cargo install --locked --quiet cargo-c --version 0.10.24
fi

# s3s-fs, the S3-protocol server the archive tests start on 127.0.0.1:
# 0.14.1 is the newest that builds with this toolchain. About 2 minutes, once.
if command -v cargo >/dev/null 2>&1 && ! command -v s3s-fs >/dev/null 2>&1; then
  echo "setup: installing s3s-fs 0.14.1 (about 2 minutes, once)"
  cargo install --locked --quiet s3s-fs --version 0.14.1 --features binary
fi

# The web player tests' npm packages, exactly as package-lock.json pins them.
web="$(cd "$(dirname "$0")/.." && pwd)/tests/web"
if [ ! -d "$web/node_modules/hls.js" ] || [ ! -d "$web/node_modules/chrome-remote-interface" ] \
    || [ "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]; then
  echo "setup: installing the npm packages of tests/web"
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
