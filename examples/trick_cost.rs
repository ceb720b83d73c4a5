// SPDX-License-Identifier: MPL-2.0
//! What trick play costs: a finished ring played by `streambuffersrc !
//! fakesink sync=false` (as fast as it goes: the cost, not the pacing) at
//! 1x, 8x and -8x across its whole window, in one process, alternating;
//! CPU from `getrusage`, bytes from the source's `stats`.
//!
//! ```text
//! cargo run --release --example trick_cost -- RING ROUNDS
//! ```
//! Prints one line per rate: `rate=R content-s=S cpu-ms-per-content-s=C
//! kib-per-content-s=K` (medians over the rounds).

use std::time::Duration;

use gst::prelude::*;
use gststreambuffer::bench::{cpu_time, median};

/// Plays the whole window of `ring` at `rate`; returns (content seconds
/// crossed, CPU, bytes read).
fn play(ring: &str, rate: f64) -> anyhow::Result<(f64, Duration, u64)> {
    let pipeline = gst::parse::launch(&format!(
        "streambuffersrc name=src location={ring} start-position=oldest ! fakesink sync=false"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let src = pipeline.by_name("src").ok_or_else(|| anyhow::anyhow!("no source"))?;
    pipeline.set_state(gst::State::Paused)?;
    let _ = pipeline.state(gst::ClockTime::from_seconds(10));
    let mut q = gst::query::Seeking::new(gst::Format::Time);
    anyhow::ensure!(pipeline.query(&mut q), "no seeking answer");
    let (start, end) = match q.result() {
        (_, gst::GenericFormattedValue::Time(Some(s)), gst::GenericFormattedValue::Time(Some(e))) => (s, e),
        other => anyhow::bail!("no window: {other:?}"),
    };
    let bytes_before = src.property::<gst::Structure>("stats").get::<u64>("bytes-out")?;
    let before = cpu_time();
    // The whole window: forward from its start, backward from its end.
    pipeline.seek(
        rate,
        gst::SeekFlags::FLUSH,
        gst::SeekType::Set,
        start,
        gst::SeekType::Set,
        end,
    )?;
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().ok_or_else(|| anyhow::anyhow!("no bus"))?;
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(120),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .ok_or_else(|| anyhow::anyhow!("no EOS at rate {rate}"))?;
    if let gst::MessageView::Error(e) = msg.view() {
        anyhow::bail!("rate {rate}: {}", e.error());
    }
    let cpu = cpu_time() - before;
    let bytes = src.property::<gst::Structure>("stats").get::<u64>("bytes-out")? - bytes_before;
    pipeline.set_state(gst::State::Null)?;
    Ok(((end - start).seconds_f64(), cpu, bytes))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ring, rounds] = args.as_slice() else {
        anyhow::bail!("usage: trick_cost RING ROUNDS");
    };
    let rounds: usize = rounds.parse()?;
    gst::init()?;
    gststreambuffer::plugin_register_static()?;
    let rates = [1.0, 8.0, -8.0];
    // Once each, untimed: the page cache warms.
    for rate in rates {
        play(ring, rate)?;
    }
    let mut results: Vec<(Vec<f64>, Vec<f64>, f64)> = rates.iter().map(|_| (Vec::new(), Vec::new(), 0.0)).collect();
    for _ in 0..rounds {
        for (i, &rate) in rates.iter().enumerate() {
            let (content, cpu, bytes) = play(ring, rate)?;
            results[i].0.push(cpu.as_secs_f64() * 1000.0 / content);
            results[i].1.push(bytes as f64 / 1024.0 / content);
            results[i].2 = content;
        }
    }
    for (rate, (cpu, kib, content)) in rates.iter().zip(results) {
        println!(
            "rate={rate} content-s={content:.1} cpu-ms-per-content-s={:.3} kib-per-content-s={:.0}",
            median(cpu),
            median(kib)
        );
    }
    Ok(())
}
