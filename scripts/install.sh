#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Builds and installs the streambuffer plugin and the `streambuffer` tool.
#   scripts/install.sh                      the plugin into ~/.local/share/gstreamer-1.0/plugins
#                                           (where GStreamer looks for this user, no variable
#                                           needed), the tool into ~/.local/bin
#   scripts/install.sh --prefix P           the plugin into P/lib/gstreamer-1.0 (with
#                                           P/lib/pkgconfig/gststreambuffer.pc), the tool into
#                                           P/bin: with cargo-c's `cargo cinstall` when it is
#                                           there, else the same files by hand (no .pc);
#                                           use GST_PLUGIN_PATH=P/lib/gstreamer-1.0
#   scripts/install.sh --uninstall [--prefix P]
#                                           removes what an install there put in place
# It installs no system package (scripts/setup.sh does) and writes nowhere
# but the prefix. Honours CARGO_TARGET_DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
target="${CARGO_TARGET_DIR:-$root/target}"

prefix="" uninstall=0
while (($#)); do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
    --prefix=*) prefix="${1#--prefix=}"; shift ;;
    --uninstall) uninstall=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

if [ -n "$prefix" ]; then
  mkdir -p "$prefix"
  prefix=$(cd "$prefix" && pwd)
  plugins="$prefix/lib/gstreamer-1.0" bin="$prefix/bin"
else
  plugins="${XDG_DATA_HOME:-$HOME/.local/share}/gstreamer-1.0/plugins" bin="$HOME/.local/bin"
fi
# What was installed, one path a line, so that --uninstall removes exactly that.
manifest="$plugins/.streambuffer-install-manifest"

if ((uninstall)); then
  [ -f "$manifest" ] || { echo "install.sh: nothing installed in $plugins (no $manifest)" >&2; exit 1; }
  while IFS= read -r f; do
    [ -n "$f" ] && rm -f -- "$f" && echo "removed $f"
  done <"$manifest"
  rm -f -- "$manifest"
  exit 0
fi

installed=()
if [ -n "$prefix" ] && cargo cinstall --version >/dev/null 2>&1; then
  # cargo-c: the plugin where gst-plugins-rs plugins go, with its .pc file.
  (cd "$root" && cargo cinstall --release --prefix="$prefix" --libdir="$prefix/lib")
  for f in "$plugins"/libgststreambuffer.* "$prefix/lib/pkgconfig/gststreambuffer.pc"; do
    [ -e "$f" ] && installed+=("$f")
  done
else
  (cd "$root" && cargo build --release --quiet --lib)
  lib="$target/release/libgststreambuffer.so"
  [ -f "$lib" ] || lib="$target/release/libgststreambuffer.dylib"
  mkdir -p "$plugins"
  install -m 0644 "$lib" "$plugins/"
  installed+=("$plugins/$(basename "$lib")")
fi
(cd "$root" && cargo build --release --quiet --bin streambuffer)
mkdir -p "$bin"
install -m 0755 "$target/release/streambuffer" "$bin/"
installed+=("$bin/streambuffer")
printf '%s\n' "${installed[@]}" >"$manifest"
printf 'installed %s\n' "${installed[@]}"
if [ -n "$prefix" ]; then
  echo "GStreamer finds it with GST_PLUGIN_PATH=$plugins"
else
  gst-inspect-1.0 streambuffersink >/dev/null 2>&1 && echo "gst-inspect-1.0 streambuffersink: found"
fi
