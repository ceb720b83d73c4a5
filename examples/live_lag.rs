// SPDX-License-Identifier: MPL-2.0
//! How far behind the sink a reader following the live edge is: a stream
//! of numbered packets is pushed in real time into `streambuffersink`
//! (appsrc, PCR every 40 ms, a "keyframe" every second), while
//! `streambuffersrc start-position=live` reads the same ring in the same
//! process; for every packet read back, the time since it was pushed.
//!
//! ```text
//! cargo run --release --example live_lag -- DIR SECONDS [KBIT_PER_S]
//! ```
//! Prints one line: `packets=N lag-median-ms=X lag-p95-ms=Y first-buffer-ms=Z`
//! (`first-buffer-ms`: from PLAYING to the reader's first buffer).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gststreambuffer::bench::crc32_mpeg2;

const PACKET: usize = 188;
const VIDEO_PID: u16 = 0x100;

fn psi_packet(pid: u16, table_id: u8, ext: u16, body: &[u8]) -> [u8; PACKET] {
    let len = 5 + body.len() + 4;
    let mut section = vec![
        table_id,
        0xB0 | (len >> 8) as u8,
        len as u8,
        (ext >> 8) as u8,
        ext as u8,
        0xC1,
        0,
        0,
    ];
    section.extend_from_slice(body);
    let crc = crc32_mpeg2(&section);
    section.extend_from_slice(&crc.to_be_bytes());
    let mut p = [0xFFu8; PACKET];
    p[..5].copy_from_slice(&[0x47, 0x40 | (pid >> 8) as u8, pid as u8, 0x10, 0]);
    p[5..5 + section.len()].copy_from_slice(&section);
    p
}

/// Packet number `n` of the stream: PAT and PMT every 25th, a PCR and a PES
/// start every 10th (an IDR every 250th), the packet's number in its last
/// 8 bytes.
fn packet(n: u64, packets_per_second: u64) -> [u8; PACKET] {
    if n.is_multiple_of(25) {
        return psi_packet(0, 0, 1, &[0, 1, 0xE0 | (0x1000u16 >> 8) as u8, 0x00]);
    }
    if n % 25 == 1 {
        let body = [0xE1, 0x00, 0xF0, 0x00, 0x1B, 0xE1, 0x00, 0xF0, 0x00];
        return psi_packet(0x1000, 2, 1, &body);
    }
    let mut p = [0u8; PACKET];
    let start = n % 10 == 2;
    p[..4].copy_from_slice(&[
        0x47,
        (VIDEO_PID >> 8) as u8 | if start { 0x40 } else { 0 },
        VIDEO_PID as u8,
        0x30 | (n % 16) as u8,
    ]);
    // Adaptation field with a PCR (27 MHz from the packet's time).
    let pcr = n * 27_000_000 / packets_per_second + 27_000_000;
    let base = pcr / 300;
    let ext = pcr % 300;
    p[4] = 7;
    p[5] = 0x10 | if start && n % 250 == 2 { 0x40 } else { 0 };
    p[6..12].copy_from_slice(&[
        (base >> 25) as u8,
        (base >> 17) as u8,
        (base >> 9) as u8,
        (base >> 1) as u8,
        ((base & 1) << 7) as u8 | 0x7E | (ext >> 8) as u8,
        ext as u8,
    ]);
    if start {
        p[12..21].copy_from_slice(&[0, 0, 1, 0xE0, 0, 0, 0x80, 0, 0]);
        let nal = if n % 250 == 2 { 0x65 } else { 0x41 };
        p[21..26].copy_from_slice(&[0, 0, 0, 1, nal]);
    }
    p[PACKET - 8..].copy_from_slice(&n.to_be_bytes());
    p
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, seconds, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: live_lag DIR SECONDS [KBIT_PER_S]");
    };
    let seconds: u64 = seconds.parse()?;
    let kbit: u64 = rest.first().map_or(Ok(2000), |k| k.parse())?;
    gst::init()?;
    gststreambuffer::plugin_register_static()?;
    let _ = std::fs::remove_dir_all(dir);
    let packets_per_second = kbit * 1000 / (PACKET as u64 * 8);
    // Seven packets per buffer, as from UDP.
    let per_buffer = 7u64;

    let writer = gst::parse::launch(&format!(
        "appsrc name=in is-live=true format=time caps=video/mpegts,systemstream=true ! streambuffersink location={dir} segment-duration=2000000000"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let appsrc = writer
        .by_name("in")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or_else(|| anyhow::anyhow!("no appsrc"))?;
    writer.set_state(gst::State::Playing)?;

    let start = Instant::now();
    let pushed: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let feeder = {
        let pushed = pushed.clone();
        std::thread::spawn(move || -> anyhow::Result<()> {
            let total = packets_per_second * seconds;
            let mut n = 0;
            while n < total {
                let due = start + Duration::from_nanos(n * 1_000_000_000 / packets_per_second);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let data: Vec<u8> = (n..n + per_buffer)
                    .flat_map(|i| packet(i, packets_per_second))
                    .collect();
                let at = start.elapsed();
                pushed
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .extend((0..per_buffer).map(|_| at));
                appsrc.push_buffer(gst::Buffer::from_mut_slice(data))?;
                n += per_buffer;
            }
            let _ = appsrc.end_of_stream();
            Ok(())
        })
    };

    // The reader starts once the ring has a segment.
    std::thread::sleep(Duration::from_secs(3));
    let reader = gst::parse::launch(&format!(
        "streambuffersrc location={dir} start-position=live ! appsink name=out sync=false"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let sink = reader
        .by_name("out")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| anyhow::anyhow!("no appsink"))?;
    let lags: Arc<Mutex<Vec<f64>>> = Arc::default();
    let first: Arc<Mutex<Option<Duration>>> = Arc::default();
    let playing_at = start.elapsed();
    {
        let (lags, pushed, first) = (lags.clone(), pushed.clone(), first.clone());
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let now = start.elapsed();
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                    let pushed = pushed.lock().map_err(|_| gst::FlowError::Error)?;
                    let mut lags = lags.lock().map_err(|_| gst::FlowError::Error)?;
                    if let Ok(mut f) = first.lock() {
                        f.get_or_insert(now);
                    }
                    for p in map.chunks_exact(PACKET) {
                        let pid = u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]);
                        if pid != VIDEO_PID {
                            continue;
                        }
                        let n = u64::from_be_bytes(p[PACKET - 8..].try_into().unwrap_or([0; 8]));
                        if let Some(at) = usize::try_from(n).ok().and_then(|i| pushed.get(i)) {
                            lags.push((now.saturating_sub(*at)).as_secs_f64() * 1000.0);
                        }
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }
    reader.set_state(gst::State::Playing)?;
    feeder.join().map_err(|_| anyhow::anyhow!("feeder panicked"))??;
    std::thread::sleep(Duration::from_secs(1));
    reader.set_state(gst::State::Null)?;
    writer.set_state(gst::State::Null)?;
    let mut lags = lags.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    anyhow::ensure!(!lags.is_empty(), "the reader read nothing");
    lags.sort_by(f64::total_cmp);
    let pick = |q: f64| lags[((lags.len() - 1) as f64 * q) as usize];
    let first_ms = first
        .lock()
        .ok()
        .and_then(|f| *f)
        .map_or(f64::NAN, |f| (f - playing_at).as_secs_f64() * 1000.0);
    println!(
        "packets={} lag-median-ms={:.0} lag-p95-ms={:.0} first-buffer-ms={:.0}",
        lags.len(),
        pick(0.5),
        pick(0.95),
        first_ms
    );
    Ok(())
}
