//! streambuffer: a time-shift stream buffer for GStreamer.
//!
//! The plugin `streambuffer` provides `streambuffersink`, which records a live
//! MPEG-TS stream into an on-disk ring of independently decodable segment files
//! plus an HLS playlist. The crate is laid out by concern:
//!
//! - [`ts`]: transport-stream handling (packet alignment, PSI, random-access
//!   detection, timeline), pure Rust;
//! - [`ring`]: the directory of segments, journal, playlist and retention;
//! - [`recorder`]: joins the two and decides where segments are cut;
//! - [`platform`]: the only code that touches the operating system directly;
//! - [`reader`]: reads a ring back, following the writer;
//! - [`streambuffersink`] and [`streambuffersrc`]: the GStreamer elements, thin glue over the above.

mod element_sync;
pub mod layout;
pub mod platform;
pub mod reader;
pub mod recorder;
pub mod ring;
pub mod streambuffersink;
pub mod streambuffersrc;
pub mod ts;

use gst::glib;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    streambuffersink::register(plugin)?;
    streambuffersrc::register(plugin)
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
