// SPDX-License-Identifier: MPL-2.0
//! What reading a ring costs against reading the same bytes from one file:
//! `streambuffersrc location=RING ! fakesink` against `filesrc
//! location=FILE blocksize=65536 ! fakesink`, each to EOS, in one process
//! (no start-up cost counted), alternating, CPU from `getrusage`.
//!
//! ```text
//! cargo run --release --example read_cost -- RING FILE ROUNDS
//! ```
//! Prints one line: `rounds=N ring-cpu-ms=X file-cpu-ms=Y ratio=R`, the
//! medians and the median of each round's ratio.

use std::time::Duration;

use gststreambuffer::bench::{median, run_to_eos};

/// Runs `desc` to EOS; returns the CPU time it took.
fn run(desc: &str) -> anyhow::Result<Duration> {
    Ok(run_to_eos(desc).map_err(anyhow::Error::msg)?.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ring, file, rounds] = args.as_slice() else {
        anyhow::bail!("usage: read_cost RING FILE ROUNDS");
    };
    let rounds: usize = rounds.parse()?;
    gst::init()?;
    gststreambuffer::plugin_register_static()?;
    let ring_desc = format!("streambuffersrc location={ring} ! fakesink sync=false");
    let file_desc = format!("filesrc location={file} blocksize=65536 ! fakesink sync=false");
    // Once each, untimed: the page cache and the element factories warm.
    run(&ring_desc)?;
    run(&file_desc)?;
    let (mut ring_ms, mut file_ms, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (r, f) = if round % 2 == 0 {
            let r = run(&ring_desc)?;
            (r, run(&file_desc)?)
        } else {
            let f = run(&file_desc)?;
            (run(&ring_desc)?, f)
        };
        ring_ms.push(r.as_secs_f64() * 1000.0);
        file_ms.push(f.as_secs_f64() * 1000.0);
        ratios.push(r.as_secs_f64() / f.as_secs_f64().max(1e-6));
    }
    println!(
        "rounds={rounds} ring-cpu-ms={:.1} file-cpu-ms={:.1} ratio={:.2}",
        median(ring_ms),
        median(file_ms),
        median(ratios)
    );
    Ok(())
}
