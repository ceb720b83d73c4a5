// SPDX-License-Identifier: MPL-2.0
//! streambuffer: a time-shift stream buffer for GStreamer.
//!
//! The plugin `streambuffer` provides `streambuffersink`, which records a live
//! MPEG-TS stream into an on-disk ring of independently decodable segment files
//! plus an HLS playlist, and `streambuffersrc`, which plays a ring back
//! time-shifted. The library's public surface is the two elements, their
//! enums and typed access to their signals
//! ([`streambuffersink::StreamBufferSinkExt`],
//! [`streambuffersrc::StreamBufferSrcExt`]); everything else is the
//! plugin's own. The crate is laid out by
//! concern, and data flows from top to bottom:
//!
//! - `ts`: transport-stream handling (packet alignment, PSI, random-access
//!   detection, timeline), pure Rust;
//! - `layout`: the on-disk format, every name and record in a ring directory;
//! - `ring`: the directory of segments, journal, playlist and retention;
//! - `recorder`: joins the two and decides where segments are cut, carries the
//!   write-failure contract and the recordings;
//! - `reader`: reads a ring back, following the writer;
//! - `platform`: the only code that touches the operating system directly;
//! - [`streambuffersink`] and [`streambuffersrc`]: the GStreamer elements,
//!   thin glue over the above; [`streambuffertimeshiftsrc`], the two in one
//!   element for time-shift of a live URI;
//! - `tool`: the `streambuffer` command-line tool (info, export, check),
//!   over `reader` and `layout`.

mod archive;
mod element_sync;
mod element_time;
mod layout;
/// `streambuffer serve`, the HTTP origin (feature `serve`, which only the
/// tool enables). Not part of the library's API.
#[cfg(feature = "serve")]
#[doc(hidden)]
pub mod origin;
mod platform;
mod reader;
mod recorder;
mod ring;
pub mod streambuffersink;
pub mod streambuffersrc;
pub mod streambuffertimeshiftsrc;
mod ts;

/// The `streambuffer` command-line tool's implementation (its `main` is
/// `src/bin/streambuffer.rs`). Not part of the library's API.
#[doc(hidden)]
pub mod tool;

/// What `examples/bench_ring.rs` measures (the ring's rotation cost without
/// a pipeline). Not part of the supported API: hidden from the
/// documentation, and free to change with the ring.
#[doc(hidden)]
pub mod bench {
    pub use crate::layout::{RingTime, WallTime};
    pub use crate::ring::{LeaseLimit, Retention, Ring, RingConfig, SegmentStart};
    pub use crate::ts::crc::crc32_mpeg2;

    /// The middle value of `v` (the upper one of an even count); NaN for none.
    #[must_use]
    pub fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }

    /// Runs the pipeline `desc` to EOS (an ERROR, or none within two
    /// minutes, is an error) and stops it; returns the CPU time this
    /// process used meanwhile, and the stopped pipeline (its elements'
    /// `stats` can still be read).
    pub fn run_to_eos(desc: &str) -> Result<(std::time::Duration, gst::Bin), String> {
        use gst::prelude::*;
        let pipeline = gst::parse::launch(desc)
            .map_err(|e| format!("{desc}: {e}"))?
            .downcast::<gst::Bin>()
            .map_err(|_| format!("{desc}: not a bin"))?;
        let before = cpu_time();
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("{desc}: {e}"))?;
        let bus = pipeline.bus().ok_or_else(|| format!("{desc}: no bus"))?;
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(120),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        pipeline
            .set_state(gst::State::Null)
            .map_err(|e| format!("{desc}: {e}"))?;
        let cpu = cpu_time().saturating_sub(before);
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => Ok((cpu, pipeline)),
            Some(gst::MessageView::Error(e)) => Err(format!("{desc}: {}", e.error())),
            _ => Err(format!("no EOS: {desc}")),
        }
    }

    /// User plus system CPU time this process has used (zero where
    /// `getrusage` does not exist): what the playback examples measure.
    #[must_use]
    pub fn cpu_time() -> std::time::Duration {
        #[cfg(unix)]
        {
            use std::time::Duration;
            // SAFETY: getrusage only writes the struct it is given, and a
            // zeroed rusage is a valid value of it.
            let usage = unsafe {
                let mut usage = std::mem::zeroed::<libc::rusage>();
                libc::getrusage(libc::RUSAGE_SELF, &mut usage);
                usage
            };
            let tv = |t: libc::timeval| {
                Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
                    + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
            };
            tv(usage.ru_utime) + tv(usage.ru_stime)
        }
        #[cfg(not(unix))]
        {
            std::time::Duration::ZERO
        }
    }
}

use gst::glib;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    streambuffersink::register(plugin)?;
    streambuffersrc::register(plugin)?;
    streambuffertimeshiftsrc::register(plugin)
}

gst::plugin_define!(
    streambuffer,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    // No public home yet: GStreamer's own default, not a placeholder URL.
    "Unknown package origin",
    env!("BUILD_REL_DATE")
);
