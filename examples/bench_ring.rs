// SPDX-License-Identifier: MPL-2.0
//! Ring-level costs that must not grow with the window, measured on the
//! library directly (no pipeline): one rotation (close a segment, append the
//! journal, apply retention, republish the playlist, open the next one) with
//! a window of N segments, and the memory the window's index takes.
//!
//! ```text
//! cargo run --release --example bench_ring -- DIR WINDOW_SEGMENTS PLAYLIST_LENGTH [ROTATIONS]
//! ```
//! Prints one line: `window=N playlist-length=L rotation-median-us=X rotation-p90-us=Y rss-kib=Z`.

use std::time::Instant;

use gststreambuffer::bench::{LeaseLimit, Retention, Ring, RingConfig, RingTime, SegmentStart, WallTime};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, window, playlist_length, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: bench_ring DIR WINDOW_SEGMENTS PLAYLIST_LENGTH [ROTATIONS]");
    };
    let window: u64 = window.parse()?;
    let playlist_length: u32 = playlist_length.parse()?;
    let rotations: usize = rest.first().map_or(Ok(200), |r| r.parse())?;
    let dir = std::path::PathBuf::from(dir);
    let _ = std::fs::remove_dir_all(&dir);
    let segment_ns = 6_000_000_000;
    let mut ring = Ring::open(RingConfig {
        dir: dir.clone(),
        // Exactly `window` segments stay: each lasts 6 s.
        retention: Retention {
            max_duration_ns: window * segment_ns,
            ..Default::default()
        },
        playlist_length,
        segment_duration_ns: segment_ns,
        sync_on_rotate: false,
        // As the sink does by default: each rotation reuses the evicted file.
        reuse_evicted: true,
        // And keeps one evicted file a rotation longer, as the sink's default.
        extra_segments: 1,
        iframe_playlist: false,
        archive_hold_limit: None,
        lease_limit: LeaseLimit::OFF,
    })?;
    let mut packet = [0u8; 188];
    packet[0] = 0x47;
    let start = SegmentStart {
        ring_time: RingTime::ZERO,
        program_date_time: WallTime::from_ms(1_795_833_785_007),
        discontinuity: false,
        independent: true,
        head_bytes: 0,
    };
    let rotate = |ring: &mut Ring| -> anyhow::Result<()> {
        ring.begin_segment(start).map_err(|e| anyhow::anyhow!("{e}"))?;
        ring.write(&packet).map_err(|e| anyhow::anyhow!("{e}"))?;
        ring.finish_segment(segment_ns).map_err(|e| anyhow::anyhow!("{e}"))
    };
    for _ in 0..window {
        rotate(&mut ring)?;
    }
    let mut times = Vec::with_capacity(rotations);
    for _ in 0..rotations {
        let t = Instant::now();
        rotate(&mut ring)?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "window={} playlist-length={} rotation-median-us={:.1} rotation-p90-us={:.1} rss-kib={}",
        ring.segments().len(),
        playlist_length,
        times[times.len() / 2],
        times[times.len() * 9 / 10],
        rss_kib()
    );
    drop(ring);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
