// SPDX-License-Identifier: MPL-2.0
//! The `streambuffer` command-line tool's commands: look at a ring, export a
//! range of it, keep a range of its archive, check it. `src/bin/streambuffer.rs` parses the command line
//! (with clap, which only the tool links) and calls them.
//!
//! It reads a ring as `streambuffersrc` does, through [`crate::reader`] and
//! [`crate::layout`]: read-only, trusting nothing on disk, and while a
//! writer records.

mod check;
#[cfg(feature = "archive")]
mod check_archive;
mod export;
mod info;
mod keep;

use std::io::{self, IsTerminal, Write};
use std::path::Path;

pub use crate::layout::WallTime;

/// How a command ended, as the exit status says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Done, and (`check`) nothing wrong found.
    Ok = 0,
    /// `check` found problems, or the command failed (said on stderr).
    Failed = 1,
}

/// `streambuffer info RING [--json]`.
pub fn info(ring: &Path, json: bool) -> Status {
    finish(info::run(ring, json, &mut io::stdout().lock()))
}

/// `streambuffer export RING --from DATE-TIME --to DATE-TIME OUT`; the
/// caller has checked that `to` is after `from`.
pub fn export(ring: &Path, from: WallTime, to: WallTime, out: &Path) -> Status {
    let progress = io::stderr().is_terminal();
    finish(export::run(ring, from, to, out, progress))
}

/// `streambuffer keep RING --from DATE-TIME --to DATE-TIME NAME`; the
/// caller has checked that `to` is after `from`.
pub fn keep(ring: &Path, from: WallTime, to: WallTime, name: &str) -> Status {
    finish(keep::run(ring, from, to, name, &mut io::stdout().lock()))
}

/// `streambuffer serve [--listen ADDR:PORT] ROOT...`: prints where it
/// listens (`listening on http://ADDR/`), then serves until stopped.
#[cfg(feature = "serve")]
pub fn serve(listen: std::net::SocketAddr, roots: Vec<std::path::PathBuf>, part_target_ms: u64) -> Status {
    finish(crate::origin::serve(
        listen,
        roots,
        part_target_ms * 1_000_000,
        |bound| {
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "listening on http://{bound}/");
            let _ = out.flush();
        },
    ))
}

/// `streambuffer check RING`.
pub fn check(ring: &Path) -> Status {
    match check::run(ring, &mut io::stdout().lock()) {
        Ok(true) => Status::Ok,
        Ok(false) => Status::Failed,
        Err(e) => finish(Err(e)),
    }
}

/// A command-line date-time: RFC 3339 (any offset), to the millisecond.
///
/// # Errors
/// A message for the user when `s` is not one.
pub fn parse_date_time(s: &str) -> Result<WallTime, String> {
    WallTime::parse_rfc3339(s).ok_or_else(|| format!("'{s}' is not an RFC 3339 date-time"))
}

fn finish(result: Result<(), String>) -> Status {
    match result {
        Ok(()) => Status::Ok,
        Err(why) => {
            let _ = writeln!(io::stderr(), "streambuffer: {why}");
            Status::Failed
        }
    }
}

/// A date-time for people: RFC 3339 in UTC, to the millisecond.
fn date(t: WallTime) -> String {
    t.to_string()
}
