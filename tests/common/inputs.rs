// SPDX-License-Identifier: MPL-2.0
//! Streams made by ffmpeg's MPEG-TS muxer (not by us, not by GStreamer),
//! 320x240 at 25 fps (MPEG audio as broadcast radio sends it: stereo Layer
//! II at 192 kb/s), for the interoperability tests, and what a player
//! needs to decode each.

use std::path::PathBuf;
use std::process::Command;

/// One kind of input of the interoperability matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    H264Aac,
    HevcAac,
    Mpeg2Mp2,
    H264Ac3,
    AacRadio,
    Mp2Radio,
    /// x264 with open GOPs and B-frames.
    OpenGop,
    /// x264's default keyframe interval: 250 frames, 10 s.
    LongGop,
    /// H.264 (a keyframe a second) and AAC, 90 s: trick play's window.
    Minutes,
}

impl Input {
    pub fn name(self) -> &'static str {
        match self {
            Input::H264Aac => "h264-aac",
            Input::HevcAac => "hevc-aac",
            Input::Mpeg2Mp2 => "mpeg2-mp2",
            Input::H264Ac3 => "h264-ac3",
            Input::AacRadio => "aac-radio",
            Input::Mp2Radio => "mp2-radio",
            Input::OpenGop => "open-gop",
            Input::LongGop => "long-gop",
            Input::Minutes => "h264-aac-90s",
        }
    }

    pub fn seconds(self) -> u32 {
        match self {
            Input::LongGop => 30,
            Input::Minutes => 90,
            _ => 12,
        }
    }

    /// ffmpeg's encoding arguments.
    fn codec_args(self) -> &'static str {
        match self {
            Input::H264Aac | Input::Minutes => "-c:v libx264 -preset ultrafast -g 25 -c:a aac",
            Input::HevcAac => "-c:v libx265 -preset ultrafast -g 50 -x265-params log-level=error -c:a aac",
            Input::Mpeg2Mp2 => "-c:v mpeg2video -g 12 -b:v 1M -c:a mp2 -ac 2 -b:a 192k",
            Input::H264Ac3 => "-c:v libx264 -preset ultrafast -g 25 -c:a ac3",
            Input::AacRadio => "-vn -c:a aac",
            Input::Mp2Radio => "-vn -c:a mp2 -ac 2 -b:a 192k",
            Input::OpenGop => "-c:v libx264 -preset fast -bf 3 -g 50 -x264-params open-gop=1 -c:a aac",
            Input::LongGop => "-c:v libx264 -preset ultrafast -g 250 -keyint_min 250 -sc_threshold 0 -c:a aac",
        }
    }

    pub fn has_video(self) -> bool {
        !matches!(self, Input::AacRadio | Input::Mp2Radio)
    }

    /// GStreamer parser and decoder of the video, if any.
    pub fn video_decoder(self) -> Option<&'static str> {
        match self {
            Input::H264Aac | Input::H264Ac3 | Input::OpenGop | Input::LongGop | Input::Minutes => {
                Some("h264parse ! avdec_h264")
            }
            Input::HevcAac => Some("h265parse ! avdec_h265"),
            Input::Mpeg2Mp2 => Some("mpegvideoparse ! avdec_mpeg2video"),
            Input::AacRadio | Input::Mp2Radio => None,
        }
    }

    /// GStreamer parser and decoder of the audio.
    pub fn audio_decoder(self) -> &'static str {
        match self {
            Input::Mpeg2Mp2 | Input::Mp2Radio => "mpegaudioparse ! avdec_mp2float",
            Input::H264Ac3 => "ac3parse ! avdec_ac3",
            _ => "aacparse ! avdec_aac",
        }
    }

    /// Why hls.js in this machine's Chromium cannot play it, if it cannot:
    /// such cases are reported as skipped, never as passed.
    pub fn browser_cannot_play(self) -> Option<&'static str> {
        match self {
            Input::HevcAac => Some("Chromium here has no HEVC decoder (MediaSource rejects hvc1)"),
            Input::H264Ac3 => Some("Chromium has no AC-3 decoder (MediaSource rejects ac-3)"),
            Input::Mpeg2Mp2 => Some("hls.js does not transmux MPEG-2 video"),
            _ => None,
        }
    }

    /// The input file, encoded once per test binary.
    pub fn path(self) -> PathBuf {
        static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let dir = DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"));
        let path = dir.path().join(format!("{}.ts", self.name()));
        let _guard = LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if path.exists() {
            return path;
        }
        let seconds = self.seconds();
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size=320x240:rate=25:duration={seconds}"))
            .args(["-f", "lavfi", "-i"])
            .arg(format!("sine=frequency=440:sample_rate=48000:duration={seconds}"))
            .args(self.codec_args().split_whitespace())
            .args(["-f", "mpegts"])
            .arg(&path)
            .status()
            .expect("run ffmpeg");
        assert!(status.success(), "ffmpeg could not make {}", self.name());
        path
    }
}
