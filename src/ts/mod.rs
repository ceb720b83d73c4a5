// SPDX-License-Identifier: MPL-2.0
//! MPEG-TS handling, free of GStreamer so it can be tested on plain byte slices.
//!
//! The sink only ever looks at transport-level structure: packet headers, the
//! adaptation field (PCR, random-access flag), the PAT/PMT sections and the first
//! bytes of each video PES. It never demuxes or rewrites payloads, which is what
//! keeps it as cheap as a plain file sink; the one exception is opt-in: with
//! `programs` set, [`program_filter`] drops other programs' packets and
//! rewrites the PAT.

pub mod aligner;
pub mod analyzer;
pub mod crc;
pub mod packet;
pub mod program_filter;
pub mod psi;
pub mod random_access;
pub mod timeline;

pub use aligner::{AlignerStats, PacketAligner};
pub use analyzer::StreamAnalyzer;
pub use packet::{NULL_PACKET, PACKET_SIZE, PAT_PID, Packet, Pid, SYNC_BYTE};
pub use psi::ProgramNumber;
pub use timeline::Timeline;
