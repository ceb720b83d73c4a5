// SPDX-License-Identifier: MPL-2.0
//! `streambuffer keep`: a range of a ring's archive kept in the bucket as
//! a recording (`recordings/<name>.m3u8`, a VOD playlist naming the
//! archived segments), which HLS players play from the bucket and the
//! archive's retention does not delete. Deleting the playlist object lets
//! retention have its segments.

use std::io::Write;
use std::path::Path;

use crate::layout::WallTime;

/// Keeps `from` .. `to` of the archive of the ring in `ring` as `name`.
pub(super) fn run(ring: &Path, from: WallTime, to: WallTime, name: &str, out: &mut impl Write) -> Result<(), String> {
    #[cfg(feature = "archive")]
    {
        let (config, store) = crate::archive::catalog::open(ring)
            .ok_or_else(|| format!("'{}' has no archive (its sink had no archive-location)", ring.display()))??;
        let kept = crate::archive::catalog::keep(&store, from, to, name)?;
        let first = kept.first().map(|s| s.program_date_time);
        let end = kept.last().map(|s| s.program_date_time.after(s.duration_ns));
        if let (Some(first), Some(end)) = (first, end) {
            writeln!(
                out,
                "kept {} segment(s), {} .. {}, as {}/{}",
                kept.len(),
                super::date(first),
                super::date(end),
                config.location,
                crate::layout::archive::recording_key(name).unwrap_or_default()
            )
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
    #[cfg(not(feature = "archive"))]
    {
        let _ = (ring, from, to, name, out);
        Err("this build of streambuffer has no archive tier (cargo feature 'archive')".into())
    }
}
