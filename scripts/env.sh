# SPDX-License-Identifier: MPL-2.0
# Sourced by the scripts: builds the plugin (release) and points GStreamer at it.
# Usage: source scripts/env.sh      (honours CARGO_TARGET_DIR)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
(cd "$root" && cargo build --release --quiet)
export GST_PLUGIN_PATH="${CARGO_TARGET_DIR:-$root/target}/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
