// SPDX-License-Identifier: MPL-2.0
//! How long a flushing seek in a ring takes to produce data: a finished ring
//! played by `streambuffersrc ! tsdemux ! h264parse ! fakesink`, paused, is
//! sought to spread-out positions of its window, and for each seek the time
//! from the seek call to the first parsed video buffer reaching the sink.
//!
//! ```text
//! cargo run --release --example seek_latency -- RING SEEKS
//! ```
//! Prints one line per seek mode: `mode=key-unit seeks=N median-ms=X
//! p95-ms=Y`, for `KEY_UNIT | SNAP_BEFORE` and for `ACCURATE` seeks.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use gst::prelude::*;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ring, seeks] = args.as_slice() else {
        anyhow::bail!("usage: seek_latency RING SEEKS");
    };
    let seeks: u64 = seeks.parse()?;
    gst::init()?;
    gststreambuffer::plugin_register_static()?;
    let pipeline = gst::parse::launch(&format!(
        "streambuffersrc location={ring} ! tsdemux ! h264parse ! fakesink name=out sync=false"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let sink = pipeline.by_name("out").ok_or_else(|| anyhow::anyhow!("no sink"))?;
    let pad = sink.static_pad("sink").ok_or_else(|| anyhow::anyhow!("no pad"))?;
    // What reaches the sink, timed: the end of a flush, then buffers.
    let (tx, rx) = mpsc::channel::<(bool, Instant)>();
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_FLUSH,
        move |_, info| {
            let flush_stop = matches!(info.event().map(|e| e.type_()), Some(gst::EventType::FlushStop));
            if flush_stop || info.buffer().is_some() {
                let _ = tx.send((flush_stop, Instant::now()));
            }
            gst::PadProbeReturn::Ok
        },
    );
    pipeline.set_state(gst::State::Paused)?;
    let (_, state, _) = pipeline.state(gst::ClockTime::from_seconds(30));
    anyhow::ensure!(state == gst::State::Paused, "the ring did not preroll");
    let mut query = gst::query::Seeking::new(gst::Format::Time);
    anyhow::ensure!(pipeline.query(&mut query), "no seeking query answer");
    let (_, start, end) = query.result();
    let (start, end) = match (start, end) {
        (gst::GenericFormattedValue::Time(Some(s)), gst::GenericFormattedValue::Time(Some(e))) => {
            (s.nseconds(), e.nseconds())
        }
        other => anyhow::bail!("no seekable window: {other:?}"),
    };
    for (mode, flags) in [
        (
            "key-unit",
            gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT | gst::SeekFlags::SNAP_BEFORE,
        ),
        ("accurate", gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE),
    ] {
        let mut times = Vec::new();
        for i in 0..seeks {
            // Spread over the window, never twice at the same place (a
            // golden-ratio walk), away from its very end.
            let fraction = (i as f64 * 0.618_033_988_75).fract() * 0.95;
            let target = start + ((end - start) as f64 * fraction) as u64;
            while rx.try_recv().is_ok() {}
            let t0 = Instant::now();
            pipeline.seek_simple(flags, gst::ClockTime::from_nseconds(target))?;
            // The first buffer after the seek's flush (one already on its
            // way when the flush began does not count).
            let mut flushed = false;
            let first = loop {
                let (flush_stop, at) = rx.recv_timeout(Duration::from_secs(10))?;
                if flush_stop {
                    flushed = true;
                } else if flushed {
                    break at;
                }
            };
            times.push(first.duration_since(t0).as_secs_f64() * 1000.0);
            let _ = pipeline.state(gst::ClockTime::from_seconds(10));
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let p95 = times[(times.len() * 95 / 100).min(times.len() - 1)];
        println!(
            "mode={mode} seeks={} median-ms={median:.1} p95-ms={p95:.1}",
            times.len()
        );
    }
    pipeline.set_state(gst::State::Null)?;
    Ok(())
}
