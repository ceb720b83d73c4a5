#!/usr/bin/env bash
# Builds the plugin and copies it where GStreamer looks without any variable:
#   scripts/install.sh            -> ~/.local/share/gstreamer-1.0/plugins (this user)
#   scripts/install.sh --system   -> the system plugin directory (needs root)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
(cd "$root" && cargo build --release --quiet)
lib="$root/target/release/libgststreambuffer.so"
[ -f "$lib" ] || lib="$root/target/release/libgststreambuffer.dylib"
if [ "${1:-}" = "--system" ]; then
  dest=$(pkg-config --variable=pluginsdir gstreamer-1.0)
else
  dest="${XDG_DATA_HOME:-$HOME/.local/share}/gstreamer-1.0/plugins"
fi
mkdir -p "$dest"
install -m 0644 "$lib" "$dest/"
echo "installed $(basename "$lib") into $dest"
gst-inspect-1.0 streambuffersink >/dev/null && echo "gst-inspect-1.0 streambuffersink: found"
