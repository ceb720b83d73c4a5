// SPDX-License-Identifier: MPL-2.0
//! A monotonic media timeline for segment durations, built from whatever clock
//! the input offers.
//!
//! Preference order: the program clock reference (exact, in the stream itself),
//! then buffer timestamps (when the upstream element sets them), then the byte
//! count at the last measured bitrate (raw TS from a socket with no PCR at all).
//! Jumps in the source clock (a splice, a restarted encoder, PCR going backwards)
//! are not added to the position: they are reported so the caller can mark an
//! `EXT-X-DISCONTINUITY`, and the position keeps counting media time only.

/// PCR ticks per second (27 MHz).
pub const PCR_HZ: u64 = 27_000_000;
/// The PCR is a 33-bit 90 kHz base times 300 plus a 9-bit extension below 300.
pub const PCR_MODULUS: u64 = (1 << 33) * 300;
/// A forward step of a clock larger than this is a jump, not elapsed time.
pub const MAX_CLOCK_STEP_NS: u64 = 5_000_000_000;
/// Bitrate assumed for the byte-count clock until one has been measured.
pub const DEFAULT_BITRATE: u64 = 8_000_000;

const NS: u64 = 1_000_000_000;
const PACKET_BITS: u64 = 188 * 8;

/// A program clock reference value in 27 MHz ticks, already reduced modulo
/// [`PCR_MODULUS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pcr(u64);

impl Pcr {
    #[must_use]
    pub fn from_ticks(ticks: u64) -> Self {
        Pcr(ticks % PCR_MODULUS)
    }

    /// The 90 kHz base of the PCR, the clock PTS values count in.
    #[must_use]
    pub fn base_90k(self) -> u64 {
        self.0 / 300
    }

    /// Forward distance from `earlier` to `self`, across the 33-bit wrap.
    #[must_use]
    pub fn ticks_since(self, earlier: Pcr) -> u64 {
        (self.0 + PCR_MODULUS - earlier.0) % PCR_MODULUS
    }
}

/// Which clock currently drives the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockSource {
    Pcr,
    BufferTime,
    ByteRate,
}

impl ClockSource {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ClockSource::Pcr => "pcr",
            ClockSource::BufferTime => "buffer-time",
            ClockSource::ByteRate => "byte-rate",
        }
    }
}

/// Whether a clock sample continued the timeline or jumped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Step {
    Continuous,
    Jump,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Timeline {
    position_ns: u64,
    last_pcr: Option<Pcr>,
    last_buffer_time: Option<u64>,
    /// Packets since the last clock sample.
    packets_since_sample: u64,
    /// Packets without a clock sample after which the clock counts as silent.
    silence_limit_packets: u64,
    /// Fractional nanoseconds carried by the byte-rate clock.
    byte_clock_rem: u64,
    /// Total bytes and nanoseconds measured by a real clock, for the bitrate.
    measured_bytes: u64,
    measured_ns: u64,
    source: ClockSource,
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Timeline {
    #[must_use]
    pub fn new() -> Self {
        Timeline {
            position_ns: 0,
            last_pcr: None,
            last_buffer_time: None,
            packets_since_sample: 0,
            silence_limit_packets: u64::MAX,
            byte_clock_rem: 0,
            measured_bytes: 0,
            measured_ns: 0,
            source: ClockSource::ByteRate,
        }
    }

    /// Media time elapsed since the timeline started, jumps excluded.
    #[must_use]
    pub fn position_ns(&self) -> u64 {
        self.position_ns
    }

    /// The last PCR, which [`Self::position_ns`] is the time of, while
    /// the PCR drives the timeline.
    #[must_use]
    pub fn last_pcr(&self) -> Option<Pcr> {
        self.last_pcr.filter(|_| self.source == ClockSource::Pcr)
    }

    #[must_use]
    pub fn source(&self) -> ClockSource {
        self.source
    }

    /// Bits per second measured from real clock samples, or the default.
    #[must_use]
    pub fn bitrate(&self) -> u64 {
        if self.measured_ns >= NS / 10 && self.measured_bytes > 0 {
            u64::try_from(u128::from(self.measured_bytes) * 8 * u128::from(NS) / u128::from(self.measured_ns))
                .unwrap_or(u64::MAX)
                .max(1)
        } else {
            DEFAULT_BITRATE
        }
    }

    /// Forgets the clock values (after a flush): the next sample starts afresh
    /// without adding time. The position is kept.
    pub fn rebase(&mut self) {
        self.last_pcr = None;
        self.last_buffer_time = None;
        self.packets_since_sample = 0;
    }

    /// A PCR from the program's PCR PID. `discontinuity` is the adaptation
    /// field's discontinuity_indicator, which announces a deliberate jump.
    pub fn on_pcr(&mut self, pcr: Pcr, discontinuity: bool) -> Step {
        self.source = ClockSource::Pcr;
        self.last_buffer_time = None;
        let step = match self.last_pcr {
            None => Step::Continuous,
            Some(_) if discontinuity => Step::Jump,
            Some(last) => {
                let ns = ticks_to_ns(pcr.ticks_since(last));
                if ns > MAX_CLOCK_STEP_NS {
                    Step::Jump
                } else {
                    self.advance_measured(ns);
                    Step::Continuous
                }
            }
        };
        self.last_pcr = Some(pcr);
        self.on_sample();
        step
    }

    /// A buffer timestamp in nanoseconds; ignored once the stream has a PCR.
    pub fn on_buffer_time(&mut self, ns: u64) -> Step {
        if self.source == ClockSource::Pcr {
            return Step::Continuous;
        }
        self.source = ClockSource::BufferTime;
        let step = match self.last_buffer_time {
            None => Step::Continuous,
            Some(last) if ns >= last && ns - last <= MAX_CLOCK_STEP_NS => {
                self.advance_measured(ns - last);
                Step::Continuous
            }
            Some(_) => Step::Jump,
        };
        self.last_buffer_time = Some(ns);
        self.on_sample();
        step
    }

    /// A buffer arrived without a timestamp. Buffer times only drive the
    /// timeline while every buffer has one (a source that stamps just its
    /// first buffer, as `filesrc` does, must not freeze time); until the next
    /// stamped buffer the byte count does.
    pub fn on_untimed_buffer(&mut self) {
        if self.source == ClockSource::BufferTime {
            self.source = ClockSource::ByteRate;
            self.last_buffer_time = None;
        }
    }

    /// One more 188-byte packet of input. Advances the position only while no
    /// real clock exists (or the real clock has been silent for too long).
    #[inline]
    pub fn on_packet(&mut self) {
        self.packets_since_sample += 1;
        if self.source != ClockSource::ByteRate {
            if self.packets_since_sample <= self.silence_limit_packets {
                return;
            }
            // A real clock went silent for longer than any sane PCR interval:
            // count bytes rather than freeze time, the silent stretch included.
            self.source = ClockSource::ByteRate;
            self.last_pcr = None;
            self.last_buffer_time = None;
            let silent = self.bytes_to_ns(self.packets_since_sample - 1);
            self.position_ns += silent;
        }
        let num = u128::from(PACKET_BITS) * u128::from(NS) + u128::from(self.byte_clock_rem);
        let rate = u128::from(self.bitrate());
        self.position_ns += u64::try_from(num / rate).unwrap_or(u64::MAX);
        self.byte_clock_rem = u64::try_from(num % rate).unwrap_or(0);
    }

    /// How many packets may pass through [`Self::on_quiet_packets`] now:
    /// packets that only add to the count since the last clock sample,
    /// because a real clock drives the timeline and has not gone silent.
    /// Zero when bytes are the clock: then every packet moves the position.
    #[must_use]
    pub fn quiet_packets_left(&self) -> u64 {
        if self.source == ClockSource::ByteRate {
            0
        } else {
            self.silence_limit_packets.saturating_sub(self.packets_since_sample)
        }
    }

    /// The same as `n` calls of [`Self::on_packet`], for `n` no larger than
    /// [`Self::quiet_packets_left`]: lets the caller count a run of packets
    /// without looking at each one.
    pub fn on_quiet_packets(&mut self, n: u64) {
        debug_assert!(n <= self.quiet_packets_left());
        self.packets_since_sample += n;
    }

    /// The position at the end of the last packet: like [`Self::position_ns`]
    /// plus the packets since the last clock sample at the measured bitrate.
    /// Used for the last segment of a stream, whose tail follows the last PCR.
    #[must_use]
    pub fn end_position_ns(&self) -> u64 {
        if self.source == ClockSource::ByteRate {
            return self.position_ns;
        }
        self.position_ns + self.bytes_to_ns(self.packets_since_sample).min(MAX_CLOCK_STEP_NS)
    }

    fn bytes_to_ns(&self, packets: u64) -> u64 {
        let bits = u128::from(packets) * u128::from(PACKET_BITS);
        u64::try_from(bits * u128::from(NS) / u128::from(self.bitrate())).unwrap_or(u64::MAX)
    }

    fn on_sample(&mut self) {
        self.packets_since_sample = 0;
        let packets_per_step =
            u128::from(self.bitrate()) * u128::from(MAX_CLOCK_STEP_NS) / u128::from(NS) / u128::from(PACKET_BITS);
        self.silence_limit_packets = u64::try_from(packets_per_step).unwrap_or(u64::MAX).max(1);
    }

    fn advance_measured(&mut self, ns: u64) {
        self.position_ns += ns;
        self.measured_ns += ns;
        self.measured_bytes += self.packets_since_sample * PACKET_BITS / 8;
    }
}

fn ticks_to_ns(ticks: u64) -> u64 {
    u64::try_from(u128::from(ticks) * u128::from(NS) / u128::from(PCR_HZ)).unwrap_or(u64::MAX)
}

/// A signed span in ticks of the 90 kHz clock PTS and DTS count in, as a
/// keyframe record holds it (32 bits): a stream's presentation delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ticks90k(i32);

impl Ticks90k {
    pub const ZERO: Ticks90k = Ticks90k(0);

    #[must_use]
    pub const fn new(ticks: i32) -> Ticks90k {
        Ticks90k(ticks)
    }

    #[must_use]
    pub const fn ticks(self) -> i32 {
        self.0
    }

    /// In nanoseconds: the one place 90 kHz ticks are converted (exact
    /// for whole milliseconds).
    #[must_use]
    pub fn nanos(self) -> i64 {
        i64::from(self.0) * 100_000 / 9
    }
}

/// A PES packet's PTS minus the program clock `pcr` (both 33-bit 90 kHz
/// values, so the difference is taken across the wrap and read as signed),
/// clamped to what a record holds; 0 when either is missing.
#[must_use]
pub fn presentation_delay(pts: Option<u64>, pcr: Option<Pcr>) -> Ticks90k {
    const WRAP: i64 = 1 << 33;
    let (Some(pts), Some(pcr)) = (pts, pcr) else {
        return Ticks90k::ZERO;
    };
    let pts = i64::try_from(pts).unwrap_or(0);
    let clock = i64::try_from(pcr.base_90k()).unwrap_or(0);
    let diff = (pts - clock).rem_euclid(WRAP);
    let signed = if diff >= WRAP / 2 { diff - WRAP } else { diff };
    Ticks90k(i32::try_from(signed).unwrap_or(if signed < 0 { i32::MIN } else { i32::MAX }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presentation_delay_is_signed_across_the_wrap() {
        let pcr = |base: u64| Some(Pcr::from_ticks(base * 300));
        assert_eq!(presentation_delay(Some(90_000 + 63_000), pcr(90_000)), Ticks90k(63_000));
        assert_eq!(presentation_delay(Some(90_000), pcr(90_000 + 9_000)), Ticks90k(-9_000));
        assert_eq!(presentation_delay(Some(100), pcr((1 << 33) - 900)), Ticks90k(1000));
        assert_eq!(presentation_delay(None, pcr(1)), Ticks90k::ZERO);
    }

    const TICKS_PER_MS: u64 = PCR_HZ / 1000;

    #[test]
    fn pcr_advances_position() {
        let mut t = Timeline::new();
        assert_eq!(t.on_pcr(Pcr::from_ticks(1000), false), Step::Continuous);
        for i in 1..=100 {
            for _ in 0..5 {
                t.on_packet();
            }
            assert_eq!(
                t.on_pcr(Pcr::from_ticks(1000 + i * 40 * TICKS_PER_MS), false),
                Step::Continuous
            );
        }
        assert_eq!(t.position_ns(), 4_000_000_000);
        assert_eq!(t.source(), ClockSource::Pcr);
        // 500 packets (94 kB) in 4 s = 188 kbit/s
        assert_eq!(t.bitrate(), 188_000);
        // Three packets after the last PCR: 3 * 1504 bits at 188 kbit/s = 24 ms.
        for _ in 0..3 {
            t.on_packet();
        }
        assert_eq!(t.position_ns(), 4_000_000_000);
        assert_eq!(t.end_position_ns(), 4_024_000_000);
    }

    #[test]
    fn pcr_wraps_around_33_bits() {
        let mut t = Timeline::new();
        let start = PCR_MODULUS - 10 * PCR_HZ; // 10 s before the wrap
        let _ = t.on_pcr(Pcr::from_ticks(start), false);
        for i in 1..=500 {
            let step = t.on_pcr(Pcr::from_ticks(start + i * 40 * TICKS_PER_MS), false);
            assert_eq!(step, Step::Continuous, "sample {i}");
        }
        assert_eq!(t.position_ns(), 20_000_000_000);
    }

    #[test]
    fn pcr_jumps_are_reported_and_not_counted() {
        let mut t = Timeline::new();
        let _ = t.on_pcr(Pcr::from_ticks(100 * PCR_HZ), false);
        let _ = t.on_pcr(Pcr::from_ticks(101 * PCR_HZ), false);
        assert_eq!(t.on_pcr(Pcr::from_ticks(50 * PCR_HZ), false), Step::Jump);
        assert_eq!(t.on_pcr(Pcr::from_ticks(51 * PCR_HZ), false), Step::Continuous);
        assert_eq!(t.on_pcr(Pcr::from_ticks(500 * PCR_HZ), false), Step::Jump);
        assert_eq!(t.on_pcr(Pcr::from_ticks(500 * PCR_HZ + PCR_HZ / 2), true), Step::Jump);
        assert_eq!(t.position_ns(), 2_000_000_000);
    }

    #[test]
    fn buffer_time_is_used_without_pcr_and_ignored_with_it() {
        let mut t = Timeline::new();
        let _ = t.on_buffer_time(5 * NS);
        let _ = t.on_buffer_time(7 * NS);
        assert_eq!(t.source(), ClockSource::BufferTime);
        assert_eq!(t.position_ns(), 2 * NS);
        assert_eq!(t.on_buffer_time(NS), Step::Jump);
        let _ = t.on_pcr(Pcr::from_ticks(0), false);
        let _ = t.on_buffer_time(100 * NS);
        assert_eq!(t.position_ns(), 2 * NS);
    }

    #[test]
    fn a_single_buffer_time_does_not_freeze_the_clock() {
        let mut t = Timeline::new();
        let _ = t.on_buffer_time(0);
        t.on_untimed_buffer();
        for _ in 0..DEFAULT_BITRATE / PACKET_BITS {
            t.on_packet();
        }
        assert_eq!(t.source(), ClockSource::ByteRate);
        assert!(t.position_ns() > NS / 2);
    }

    #[test]
    fn byte_rate_fallback_uses_default_then_measured_rate() {
        let mut t = Timeline::new();
        let per_second = DEFAULT_BITRATE / PACKET_BITS; // 5319 packets and a bit
        for _ in 0..per_second {
            t.on_packet();
        }
        assert!(NS - t.position_ns() < NS / 5000, "{}", t.position_ns());
        assert_eq!(t.source(), ClockSource::ByteRate);
    }

    #[test]
    fn silent_pcr_falls_back_to_byte_rate() {
        let mut t = Timeline::new();
        let _ = t.on_pcr(Pcr::from_ticks(0), false);
        for _ in 0..665 {
            t.on_packet();
        }
        let _ = t.on_pcr(Pcr::from_ticks(PCR_HZ), false); // 665 packets/s, 1 Mbit/s
        for _ in 0..665 * 10 {
            t.on_packet(); // 10 s of packets with no PCR
        }
        assert_eq!(t.source(), ClockSource::ByteRate);
        let p = t.position_ns();
        assert!((10_900_000_000..11_100_000_000).contains(&p), "{p}");
    }
}
