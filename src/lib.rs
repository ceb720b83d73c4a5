#![doc = include_str!("../README.md")]

pub mod platform;
pub mod recorder;
pub mod ring;
pub mod streambuffersink;
pub mod ts;

use gst::glib;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    streambuffersink::register(plugin)
}

gst::plugin_define!(
    streambuffer,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
