// SPDX-License-Identifier: MPL-2.0
//! Load on `streambuffer serve`, on loopback, bounded in clients and time:
//! it starts the server on the rings under ROOT, then CLIENTS threads, each
//! on a keep-alive connection, poll RING's playlist and fetch one of its
//! segments after every fourth poll, for SECONDS. Every response is checked
//! (status, length); the server's CPU and peak memory are read from /proc.
//!
//! ```text
//! cargo run --release --example origin_load -- STREAMBUFFER ROOT RING CLIENTS SECONDS
//! ```
//! Prints one line: `clients=N requests=R errors=E playlist-p50-ms=…
//! playlist-p99-ms=… segment-p50-ms=… segment-p99-ms=… segment-mb=…
//! server-cpu-s=… server-rss-mb=…`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One response's status and body length, on a keep-alive connection.
fn get(stream: &mut BufReader<TcpStream>, addr: SocketAddr, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
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
    errors: u64,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, tool, root, ring, clients, seconds] = args.as_slice() else {
        anyhow::bail!("usage: origin_load STREAMBUFFER ROOT RING CLIENTS SECONDS");
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
            std::thread::spawn(move || {
                let mut mine = Tally::default();
                let mut connection = None;
                let mut polls = 0usize;
                while started.elapsed() < run_for {
                    let stream = match connection.take() {
                        Some(s) => s,
                        None => match TcpStream::connect(addr) {
                            Ok(s) => BufReader::new(s),
                            Err(_) => {
                                mine.errors += 1;
                                std::thread::sleep(Duration::from_millis(50));
                                continue;
                            }
                        },
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
                let mut all = tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                all.playlist_ms.extend(mine.playlist_ms);
                all.segment_ms.extend(mine.segment_ms);
                all.segment_bytes += mine.segment_bytes;
                all.errors += mine.errors;
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let (cpu, rss) = usage(server.id());
    let _ = server.kill();
    let _ = server.wait();
    let mut all = tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    all.playlist_ms.sort_by(f64::total_cmp);
    all.segment_ms.sort_by(f64::total_cmp);
    println!(
        "clients={clients} requests={} errors={} playlist-p50-ms={:.1} playlist-p99-ms={:.1} segment-p50-ms={:.1} \
         segment-p99-ms={:.1} segment-mb={:.0} server-cpu-s={cpu:.2} server-rss-mb={rss:.0}",
        all.playlist_ms.len() + all.segment_ms.len(),
        all.errors,
        percentile(&all.playlist_ms, 0.5),
        percentile(&all.playlist_ms, 0.99),
        percentile(&all.segment_ms, 0.5),
        percentile(&all.segment_ms, 0.99),
        all.segment_bytes as f64 / 1e6,
    );
    Ok(())
}
