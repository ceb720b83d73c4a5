// SPDX-License-Identifier: MPL-2.0
//! What the archive tier costs the sink: `filesrc blocksize=65536` into
//! `filesink`, into `streambuffersink`, and into `streambuffersink` with an
//! archive on the S3 server at ENDPOINT (credentials from the environment),
//! each to EOS and stopped (so the archive's uploads are done), in one
//! process, order rotated each round; CPU from `getrusage`, and the
//! uploader thread's own CPU from the sink's `stats` (`archive-cpu-time`):
//! the process's CPU without it is what recording cost.
//!
//! ```text
//! cargo run --release --example archive_cost -- INPUT OUT ENDPOINT BUCKET ROUNDS
//! ```
//! Prints one line of medians and median paired ratios to filesink:
//! `rounds=N filesink-cpu-ms=.. sink-cpu-ms=.. archived-cpu-ms=..
//! uploader-cpu-ms=.. sink-ratio=.. archived-ratio=.. archived-without-uploader-ratio=..`.

use std::time::Duration;

use gst::prelude::*;
use gststreambuffer::bench::{median, run_to_eos};

/// Runs `desc` to EOS and stops it; returns its CPU time and the uploader
/// thread's (0 without an archive).
fn run(desc: &str) -> anyhow::Result<(Duration, Duration)> {
    let (cpu, pipeline) = run_to_eos(desc).map_err(anyhow::Error::msg)?;
    let uploader = match pipeline.by_name("sink") {
        Some(sink) if sink.has_property("stats") => {
            let stats = sink.property::<gst::Structure>("stats");
            if stats.get::<u64>("archive-waiting").unwrap_or(0) > 0 {
                anyhow::bail!("uploads left when stopped: {stats}");
            }
            Duration::from_nanos(stats.get::<u64>("archive-cpu-time").unwrap_or(0))
        }
        _ => Duration::ZERO,
    };
    Ok((cpu, uploader))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, out, endpoint, bucket, rounds] = args.as_slice() else {
        anyhow::bail!("usage: archive_cost INPUT OUT ENDPOINT BUCKET ROUNDS");
    };
    let rounds: usize = rounds.parse()?;
    gst::init()?;
    gststreambuffer::plugin_register_static()?;
    let source = format!("filesrc location={input} blocksize=65536");
    let ring = "segment-duration=6000000000 max-duration=3600000000000";
    let desc = |kind: usize, round: usize| match kind {
        0 => format!("{source} ! filesink location={out}/out.ts"),
        1 => format!("{source} ! streambuffersink name=sink location={out}/ring {ring}"),
        _ => format!(
            "{source} ! streambuffersink name=sink location={out}/ring {ring} archive-location=s3://{bucket}/round{round} \
             archive-endpoint={endpoint} archive-path-style=true"
        ),
    };
    let fresh = || -> anyhow::Result<()> {
        let _ = std::fs::remove_dir_all(out);
        std::fs::create_dir_all(out)?;
        Ok(())
    };
    // Once each, untimed: page cache, factories, the first connection.
    for kind in 0..3 {
        fresh()?;
        run(&desc(kind, 0))?;
    }
    let mut ms: [Vec<f64>; 4] = Default::default();
    let mut ratios: [Vec<f64>; 3] = Default::default();
    for round in 1..=rounds {
        let mut cpu = [Duration::ZERO; 3];
        let mut uploader = Duration::ZERO;
        for i in 0..3 {
            let kind = (i + round) % 3;
            fresh()?;
            let (c, u) = run(&desc(kind, round))?;
            cpu[kind] = c;
            if kind == 2 {
                uploader = u;
            }
        }
        let s = |d: Duration| d.as_secs_f64() * 1000.0;
        let file = s(cpu[0]).max(1e-3);
        ms[0].push(s(cpu[0]));
        ms[1].push(s(cpu[1]));
        ms[2].push(s(cpu[2]));
        ms[3].push(s(uploader));
        ratios[0].push(s(cpu[1]) / file);
        ratios[1].push(s(cpu[2]) / file);
        ratios[2].push((s(cpu[2]) - s(uploader)) / file);
    }
    let [f, sink, archived, uploader] = ms.map(median);
    let [r1, r2, r3] = ratios.map(median);
    println!(
        "rounds={rounds} filesink-cpu-ms={f:.1} sink-cpu-ms={sink:.1} archived-cpu-ms={archived:.1} \
         uploader-cpu-ms={uploader:.1} sink-ratio={r1:.2} archived-ratio={r2:.2} archived-without-uploader-ratio={r3:.2}"
    );
    let _ = std::fs::remove_dir_all(out);
    Ok(())
}
