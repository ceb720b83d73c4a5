#![doc = include_str!("../README.md")]

pub mod platform;
pub mod ring;
pub mod ts;

fn plugin_init(_p: &gst::Plugin) -> Result<(), glib::BoolError> {
    Ok(())
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
