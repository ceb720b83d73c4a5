// SPDX-License-Identifier: MPL-2.0
//! `streambuffer`: look at a ring, export a range of it, check it. The
//! command line is parsed here with clap (the `cli` feature, so that the
//! plugin's shared library does not link it); the commands are the
//! library's `tool` module.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use gststreambuffer::tool::{self, Status, WallTime};

/// Look at a ring that streambuffersink writes, export a range of it, check
/// it. Read-only; safe while a writer records.
///
/// Exit status: 0 ok, 1 a problem found or the command failed, 2 bad usage.
const EXAMPLES: &str = "\
Examples:
  streambuffer info /var/buffer/ch1 --json
  streambuffer export /var/buffer/ch1 --from 2026-11-30T14:00:00Z --to 2026-11-30T15:00:00Z hour.ts
  streambuffer keep /var/buffer/ch1 --from 2026-11-30T14:00:00Z --to 2026-11-30T15:00:00Z final-2026
  streambuffer check /var/buffer/ch1 && echo fine";

#[derive(Parser)]
#[command(name = "streambuffer", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The window (ring time and wall clock), segments, holes, size on disk,
    /// whether a writer is running, segments recordings share.
    Info {
        /// The ring's directory.
        ring: PathBuf,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The range as one decodable MPEG-TS file, from the keyframe at or
    /// before --from to the keyframe at or after --to; never a partial file.
    Export {
        /// The ring's directory.
        ring: PathBuf,
        /// Start, RFC 3339: 2026-11-30T14:32:05Z or 2026-11-30T15:32:05.250+01:00.
        #[arg(long, value_name = "DATE-TIME", value_parser = tool::parse_date_time)]
        from: WallTime,
        /// End, RFC 3339, after --from.
        #[arg(long, value_name = "DATE-TIME", value_parser = tool::parse_date_time)]
        to: WallTime,
        /// The file to write (OUT.ts).
        out: PathBuf,
    },
    /// Keeps the range of the ring's archive as a recording in the bucket
    /// (recordings/NAME.m3u8, a VOD playlist): players play it from there,
    /// and the archive's retention does not delete its segments until the
    /// playlist is deleted.
    Keep {
        /// The ring's directory (its sink archives).
        ring: PathBuf,
        /// Start, RFC 3339.
        #[arg(long, value_name = "DATE-TIME", value_parser = tool::parse_date_time)]
        from: WallTime,
        /// End, RFC 3339, after --from.
        #[arg(long, value_name = "DATE-TIME", value_parser = tool::parse_date_time)]
        to: WallTime,
        /// The recording's name: letters, digits, '.', '-', '_'.
        name: String,
    },
    /// Serves the rings under each ROOT over HTTP, read-only: playlists
    /// (with Low-Latency HLS parts and blocking reloads for live rings, and
    /// windows: ?start=&end=, ?delay=), segments and indexes, byte ranges,
    /// validators, caching a CDN can use, CORS. Prints the address it
    /// listens on, then runs until stopped.
    #[cfg(feature = "serve")]
    Serve {
        /// Address and port (port 0: any free one). Bound to loopback unless
        /// told otherwise.
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Low-Latency HLS: the longest part of the segment being written
        /// (EXT-X-PART-INF PART-TARGET), in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=1000))]
        part_target: u64,
        /// Directories whose rings are served: /RING/index.m3u8 is
        /// ROOT/RING/index.m3u8 (RING may be several directories deep).
        #[arg(required = true)]
        roots: Vec<PathBuf>,
    },
    /// Every segment whole packets, headed by PAT, PMT and a random-access
    /// point; journal, index and playlist agreeing. Exit status 0 if so, 1 if not.
    Check {
        /// The ring's directory.
        ring: PathBuf,
    },
}

/// Exits with clap's usage error unless `to` is after `from`.
fn require_order(from: WallTime, to: WallTime) {
    if to <= from {
        Cli::command()
            .error(clap::error::ErrorKind::ValueValidation, "--to must be after --from")
            .exit();
    }
}

fn main() -> ExitCode {
    let status = match Cli::parse().command {
        Command::Info { ring, json } => tool::info(&ring, json),
        Command::Export { ring, from, to, out } => {
            require_order(from, to);
            tool::export(&ring, from, to, &out)
        }
        Command::Keep { ring, from, to, name } => {
            require_order(from, to);
            tool::keep(&ring, from, to, &name)
        }
        Command::Check { ring } => tool::check(&ring),
        #[cfg(feature = "serve")]
        Command::Serve {
            listen,
            roots,
            part_target,
        } => tool::serve(listen, roots, part_target),
    };
    match status {
        Status::Ok => ExitCode::SUCCESS,
        Status::Failed => ExitCode::FAILURE,
    }
}
