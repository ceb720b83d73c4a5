// SPDX-License-Identifier: MPL-2.0
//! The `streambuffer` command-line tool (`src/bin/streambuffer.rs` is its
//! `main`): look at a ring, export a range of it, check it.
//!
//! It reads a ring as `streambuffersrc` does, through [`crate::reader`] and
//! [`crate::layout`]: read-only, trusting nothing on disk, and while a
//! writer records.

mod check;
mod export;
mod info;

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

use crate::layout::WallTime;

const USAGE: &str = "\
usage:
  streambuffer info RING [--json]
      the window (ring time and wall-clock), segments, holes, size on disk,
      whether a writer is running, segments recordings share
  streambuffer export RING --from DATE-TIME --to DATE-TIME OUT.ts
      the range as one decodable MPEG-TS file, from the keyframe at or before
      --from to the keyframe at or after --to; never a partial file
  streambuffer check RING
      every segment whole packets, headed by PAT, PMT and a random-access
      point; journal, index and playlist agreeing. Exit status 0 if so, 1 if not
DATE-TIME: RFC 3339, e.g. 2026-11-30T14:32:05Z or 2026-11-30T15:32:05.250+01:00
exit status: 0 ok, 1 a problem found or the command failed, 2 bad usage";

/// Runs the tool with `args` (without the program name); returns the exit
/// status.
pub fn run(args: &[String]) -> i32 {
    let result = match args.first().map(String::as_str) {
        Some("info") => parse_ring(&args[1..], &["--json"]).and_then(|(ring, flags)| {
            info::run(&ring, flags.contains(&"--json"), &mut io::stdout().lock()).map_err(Failure::Failed)
        }),
        Some("export") => parse_export(&args[1..]).and_then(|(ring, from, to, out)| {
            let progress = io::stderr().is_terminal();
            export::run(&ring, from, to, &out, progress).map_err(Failure::Failed)
        }),
        Some("check") => {
            parse_ring(&args[1..], &[]).and_then(|(ring, _)| match check::run(&ring, &mut io::stdout().lock()) {
                Ok(true) => Ok(()),
                Ok(false) => Err(Failure::Problems),
                Err(e) => Err(Failure::Failed(e)),
            })
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(Failure::Usage(String::new())),
    };
    match result {
        Ok(()) => 0,
        Err(Failure::Problems) => 1,
        Err(Failure::Failed(why)) => {
            let _ = writeln!(io::stderr(), "streambuffer: {why}");
            1
        }
        Err(Failure::Usage(why)) => {
            let _ = writeln!(
                io::stderr(),
                "{}{USAGE}",
                if why.is_empty() {
                    why
                } else {
                    format!("streambuffer: {why}\n")
                }
            );
            2
        }
    }
}

/// Why a command did not succeed.
enum Failure {
    Usage(String),
    Failed(String),
    /// `check` found problems (already printed).
    Problems,
}

/// `RING [flags...]`, with the flags allowed.
fn parse_ring<'a>(args: &'a [String], allowed: &[&'a str]) -> Result<(PathBuf, Vec<&'a str>), Failure> {
    let mut ring = None;
    let mut flags = Vec::new();
    for a in args {
        if let Some(&flag) = allowed.iter().find(|&&f| f == a) {
            flags.push(flag);
        } else if a.starts_with('-') || ring.is_some() {
            return Err(Failure::Usage(format!("unexpected argument '{a}'")));
        } else {
            ring = Some(PathBuf::from(a));
        }
    }
    let ring = ring.ok_or_else(|| Failure::Usage("no RING given".into()))?;
    Ok((ring, flags))
}

/// `RING --from DATE --to DATE OUT`.
fn parse_export(args: &[String]) -> Result<(PathBuf, WallTime, WallTime, PathBuf), Failure> {
    let (mut from, mut to, mut plain) = (None, None, Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--from" | "--to" => {
                let value = it
                    .next()
                    .ok_or_else(|| Failure::Usage(format!("{a} needs a date-time")))?;
                let t = WallTime::parse_rfc3339(value)
                    .ok_or_else(|| Failure::Usage(format!("{a} '{value}' is not an RFC 3339 date-time")))?;
                if a == "--from" {
                    from = Some(t);
                } else {
                    to = Some(t);
                }
            }
            other if other.starts_with('-') => return Err(Failure::Usage(format!("unexpected argument '{other}'"))),
            other => plain.push(PathBuf::from(other)),
        }
    }
    let [ring, out] =
        <[PathBuf; 2]>::try_from(plain).map_err(|_| Failure::Usage("export takes RING and OUT.ts".into()))?;
    let (from, to) = from
        .zip(to)
        .ok_or_else(|| Failure::Usage("export needs --from and --to".into()))?;
    if to <= from {
        return Err(Failure::Usage("--to must be after --from".into()));
    }
    Ok((ring, from, to, out))
}

/// A date-time for people: RFC 3339 in UTC, to the millisecond.
fn date(t: WallTime) -> String {
    t.to_string()
}
