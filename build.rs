// SPDX-License-Identifier: MPL-2.0
fn main() {
    gst_plugin_version_helper::info();
    // glib-rs (its `gio` feature, which gstreamer-rs turns on) calls
    // `g_initable_get_type` and `g_async_initable_get_type` in every
    // `Object::new`, to refuse types that need GIO's initialisation. Those
    // two calls were all the plugin took from libgio, and loading libgio
    // and what it links (libmount, libblkid, libselinux: 1,900 symbol
    // relocations) cost every process that loads the plugin about 1 ms.
    // The plugin library answers them itself (src/platform/gio_types.rs),
    // and `--as-needed` leaves libgio out. Only the shared library: the
    // rlib's users link what glib-rs asks for.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        for (symbol, answer) in [
            ("g_initable_get_type", "gststreambuffer_initable_type"),
            ("g_async_initable_get_type", "gststreambuffer_async_initable_type"),
        ] {
            println!("cargo:rustc-cdylib-link-arg=-Wl,--defsym={symbol}={answer}");
        }
    }
}
