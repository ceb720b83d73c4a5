// SPDX-License-Identifier: MPL-2.0
//! Load on `streambuffer serve`, on loopback, bounded in clients and time:
//! it starts the server on the rings under ROOT, then CLIENTS threads, each
//! on a keep-alive connection, poll RING's playlist and fetch one of its
//! segments after every fourth poll, for SECONDS. With LIVE (a ring being
//! written), every other client instead makes blocking reloads of LIVE's
//! playlist for the part after the newest (`_HLS_msn`, `_HLS_part`, from
//! the preload hint), as a low-latency player does, and fetches that part
//! (a byte range) after every fourth. Every response is checked (status,
//! length); the server's CPU and peak memory are read from /proc.
//!
//! ```text
//! cargo run --release --example origin_load -- STREAMBUFFER ROOT RING CLIENTS SECONDS [LIVE]
//! ```
//! Prints one line: `clients=N requests=R errors=E playlist-p50-ms=…
//! playlist-p99-ms=… segment-p50-ms=… segment-p99-ms=… segment-mb=…
//! blocking=B blocking-p50-ms=… blocking-p99-ms=… part-p50-ms=…
//! part-p99-ms=… server-cpu-s=… server-rss-mb=…`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One response's status and body length, on a keep-alive connection.
fn get(stream: &mut BufReader<TcpStream>, addr: SocketAddr, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    get_range(stream, addr, path, None)
}

/// [`get`] with a `Range` header.
fn get_range(
    stream: &mut BufReader<TcpStream>,
    addr: SocketAddr,
    path: &str,
    range: Option<&str>,
) -> std::io::Result<(u16, Vec<u8>)> {
    let range = range.map(|r| format!("Range: bytes={r}\r\n")).unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{range}\r\n");
    stream.get_mut().write_all(request.as_bytes())?;
    let mut line = String::new();
    stream.read_line(&mut line)?;
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut length = 0usize;
    loop {
        line.clear();
        if stream.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok((status, body))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// User+system CPU seconds and peak resident megabytes of process `pid`.
fn usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, 11 and 12 after ")".
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    (cpu, rss_kb / 1024.0)
}

#[derive(Default)]
struct Tally {
    playlist_ms: Vec<f64>,
    segment_ms: Vec<f64>,
    segment_bytes: u64,
    /// Blocking reloads (the wait for the next part included) and parts.
    blocking_ms: Vec<f64>,
    part_ms: Vec<f64>,
    errors: u64,
}

/// A part of a segment: its URI and byte range (`first-last`).
type PartRange = (String, String);

/// What a low-latency player asks for next of a live playlist: the
/// preload hint's segment and part number (`_HLS_msn`, `_HLS_part`), and
/// the newest complete part.
fn next_part(playlist: &str) -> Option<((u64, usize), Option<PartRange>)> {
    let hint = playlist.lines().find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:"))?;
    let uri = hint.split("URI=\"").nth(1)?.split('"').next()?;
    let msn: u64 = uri
        .trim_start_matches("segment-")
        .trim_end_matches(".ts")
        .parse()
        .ok()?;
    let parts: Vec<&str> = playlist
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:") && l.contains(&format!("URI=\"{uri}\"")))
        .collect();
    let newest = playlist.lines().rfind(|l| l.starts_with("#EXT-X-PART:")).and_then(|l| {
        let uri = l.split("URI=\"").nth(1)?.split('"').next()?;
        let range = l.split("BYTERANGE=\"").nth(1)?.split('"').next()?;
        let (len, offset) = range.split_once('@')?;
        let (len, offset): (u64, u64) = (len.parse().ok()?, offset.parse().ok()?);
        Some((uri.to_owned(), format!("{offset}-{}", offset + len.checked_sub(1)?)))
    });
    Some(((msn, parts.len()), newest))
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.playlist_ms.extend(other.playlist_ms);
        self.segment_ms.extend(other.segment_ms);
        self.segment_bytes += other.segment_bytes;
        self.blocking_ms.extend(other.blocking_ms);
        self.part_ms.extend(other.part_ms);
        self.errors += other.errors;
    }
}

/// The kept-alive connection, or a new one; `None` (counted as an error,
/// after a short wait) if connecting failed.
fn reuse_or_connect(
    connection: &mut Option<BufReader<TcpStream>>,
    addr: SocketAddr,
    mine: &mut Tally,
) -> Option<BufReader<TcpStream>> {
    if let Some(stream) = connection.take() {
        return Some(stream);
    }
    match TcpStream::connect(addr) {
        Ok(s) => Some(BufReader::new(s)),
        Err(_) => {
            mine.errors += 1;
            std::thread::sleep(Duration::from_millis(50));
            None
        }
    }
}

/// A low-latency player of the ring `live`: blocking reloads for the next
/// part, the newest part fetched after every fourth, until `run_for` has
/// passed since `started`.
fn blocking_client(addr: SocketAddr, live: &str, started: Instant, run_for: Duration, mine: &mut Tally) {
    let playlist_path = format!("/{live}/index.m3u8");
    let mut connection: Option<BufReader<TcpStream>> = None;
    let mut asked = String::new();
    let mut reloads = 0usize;
    while started.elapsed() < run_for {
        let Some(mut stream) = reuse_or_connect(&mut connection, addr, mine) else {
            continue;
        };
        let t = Instant::now();
        let Ok((200, playlist)) = get(&mut stream, addr, &format!("{playlist_path}{asked}")) else {
            mine.errors += 1;
            asked.clear();
            continue;
        };
        let text = String::from_utf8_lossy(&playlist);
        let Some(((msn, part), newest)) = next_part(&text) else {
            // Not live (yet, or any more): a plain poll.
            mine.playlist_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            asked.clear();
            connection = Some(stream);
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        if asked.is_empty() {
            mine.playlist_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        } else {
            mine.blocking_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        asked = format!("?_HLS_msn={msn}&_HLS_part={part}");
        reloads += 1;
        if reloads.is_multiple_of(4)
            && let Some((uri, range)) = newest
        {
            let t = Instant::now();
            match get_range(&mut stream, addr, &format!("/{live}/{uri}"), Some(&range)) {
                Ok((206, body)) if !body.is_empty() => mine.part_ms.push(t.elapsed().as_secs_f64() * 1000.0),
                _ => {
                    mine.errors += 1;
                    continue;
                }
            }
        }
        connection = Some(stream);
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (tool, root, ring, clients, seconds, live) = match args.as_slice() {
        [_, tool, root, ring, clients, seconds] => (tool, root, ring, clients, seconds, None),
        [_, tool, root, ring, clients, seconds, live] => (tool, root, ring, clients, seconds, Some(live.clone())),
        _ => anyhow::bail!("usage: origin_load STREAMBUFFER ROOT RING CLIENTS SECONDS [LIVE]"),
    };
    let clients: usize = clients.parse()?;
    let run_for = Duration::from_secs(seconds.parse()?);
    let mut server = Command::new(tool)
        .args(["serve", "--listen", "127.0.0.1:0", root])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(server.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?).read_line(&mut line)?;
    let addr: SocketAddr = line
        .trim()
        .trim_start_matches("listening on http://")
        .trim_end_matches('/')
        .parse()?;
    let playlist_path = format!("/{ring}/index.m3u8");
    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|n| {
            let tally = Arc::clone(&tally);
            let playlist_path = playlist_path.clone();
            let ring = ring.clone();
            let live = live.clone().filter(|_| n % 2 == 1);
            std::thread::spawn(move || {
                let mut mine = Tally::default();
                if let Some(live) = live {
                    blocking_client(addr, &live, started, run_for, &mut mine);
                    tally
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .add(mine);
                    return;
                }
                let mut connection = None;
                let mut polls = 0usize;
                while started.elapsed() < run_for {
                    let Some(stream) = reuse_or_connect(&mut connection, addr, &mut mine) else {
                        continue;
                    };
                    let mut stream = stream;
                    let t = Instant::now();
                    let Ok((200, playlist)) = get(&mut stream, addr, &playlist_path) else {
                        mine.errors += 1;
                        continue;
                    };
                    mine.playlist_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                    polls += 1;
                    if polls.is_multiple_of(4) {
                        let text = String::from_utf8_lossy(&playlist);
                        let names: Vec<&str> = text.lines().filter(|l| l.ends_with(".ts")).collect();
                        if let Some(name) = names.get((n + polls) % names.len().max(1)) {
                            let t = Instant::now();
                            match get(&mut stream, addr, &format!("/{ring}/{name}")) {
                                Ok((200, body)) if !body.is_empty() => {
                                    mine.segment_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                                    mine.segment_bytes += body.len() as u64;
                                }
                                _ => {
                                    mine.errors += 1;
                                    continue;
                                }
                            }
                        }
                    }
                    connection = Some(stream);
                    // A player polls about every half second.
                    std::thread::sleep(Duration::from_millis(200));
                }
                tally
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .add(mine);
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let (cpu, rss) = usage(server.id());
    let _ = server.kill();
    let _ = server.wait();
    let mut guard = tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let all = &mut *guard;
    for times in [
        &mut all.playlist_ms,
        &mut all.segment_ms,
        &mut all.blocking_ms,
        &mut all.part_ms,
    ] {
        times.sort_by(f64::total_cmp);
    }
    println!(
        "clients={clients} requests={} errors={} playlist-p50-ms={:.1} playlist-p99-ms={:.1} segment-p50-ms={:.1} \
         segment-p99-ms={:.1} segment-mb={:.0} blocking={} blocking-p50-ms={:.1} blocking-p99-ms={:.1} \
         part-p50-ms={:.1} part-p99-ms={:.1} server-cpu-s={cpu:.2} server-rss-mb={rss:.0}",
        all.playlist_ms.len() + all.segment_ms.len() + all.blocking_ms.len() + all.part_ms.len(),
        all.errors,
        percentile(&all.playlist_ms, 0.5),
        percentile(&all.playlist_ms, 0.99),
        percentile(&all.segment_ms, 0.5),
        percentile(&all.segment_ms, 0.99),
        all.segment_bytes as f64 / 1e6,
        all.blocking_ms.len(),
        percentile(&all.blocking_ms, 0.5),
        percentile(&all.blocking_ms, 0.99),
        percentile(&all.part_ms, 0.5),
        percentile(&all.part_ms, 0.99),
    );
    Ok(())
}
