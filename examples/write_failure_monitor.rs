// SPDX-License-Identifier: MPL-2.0
//! Records a test stream with `streambuffersink` and prints every event the
//! sink reports: the signals (`write-failure`, `write-failure-clear`,
//! `encryption-on`, `encryption-off`) and the element messages on the bus.
//!
//! ```text
//! cargo run --example write_failure_monitor -- RING_DIR [SECONDS] [--live]
//! ```
//!
//! Without `--live` the stream is encoded as fast as possible; with it, in
//! real time. Provoke a failure by filling the disk holding RING_DIR, or run
//! it under a file size limit: `bash -c "trap '' XFSZ; ulimit -f 200; exec ..."`.

use std::process::ExitCode;

use gst::glib;
use gst::prelude::*;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: write_failure_monitor RING_DIR [SECONDS] [--live]");
        return Ok(ExitCode::from(2));
    };
    let mut seconds = 20u32;
    let mut live = false;
    for a in args {
        match a.as_str() {
            "--live" => live = true,
            n => seconds = n.parse()?,
        }
    }
    gst::init()?;
    gststreambuffer::plugin_register_static()?;

    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live={live} num-buffers={} pattern=snow ! video/x-raw,width=320,height=240,framerate=25/1 ! \
         x264enc tune=zerolatency key-int-max=25 speed-preset=ultrafast bitrate=1500 ! mpegtsmux ! \
         streambuffersink name=sink location=\"{dir}\" segment-duration=4000000000 max-duration=0 \
         retry-interval=10000000",
        seconds * 25
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let sink = pipeline.by_name("sink").ok_or_else(|| anyhow::anyhow!("no sink"))?;

    // Signals are emitted from the streaming thread: keep handlers short.
    sink.connect("write-failure", false, |args| {
        if let Some(Ok(err)) = args.get(1).map(|v| v.get::<glib::Error>()) {
            let code = err
                .kind::<gst::ResourceError>()
                .map_or("other".into(), |k| format!("{k:?}"));
            println!("write-failure: code={code} message={}", err.message());
        }
        None
    });
    sink.connect("write-failure-clear", false, |args| {
        let bytes = args.get(1).and_then(|v| v.get::<u64>().ok()).unwrap_or(0);
        let ns = args.get(2).and_then(|v| v.get::<u64>().ok()).unwrap_or(u64::MAX);
        let duration = if ns == u64::MAX {
            "unknown".to_string()
        } else {
            format!("{ns}ns")
        };
        println!("write-failure-clear: dropped-bytes={bytes} dropped-duration={duration}");
        None
    });
    sink.connect("encryption-on", false, |_| {
        println!("encryption-on");
        None
    });
    sink.connect("encryption-off", false, |_| {
        println!("encryption-off");
        None
    });

    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().ok_or_else(|| anyhow::anyhow!("no bus"))?;
    let mut code = ExitCode::SUCCESS;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Element(m) => {
                if let Some(s) = m.structure().filter(|s| s.name().starts_with("streambuffer-")) {
                    println!("message: {s}");
                }
            }
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                eprintln!("ERROR: {} ({:?})", e.error(), e.debug());
                code = ExitCode::FAILURE;
                break;
            }
            _ => {}
        }
    }
    let stats = sink.property::<gst::Structure>("stats");
    println!("stats: {stats}");
    pipeline.set_state(gst::State::Null)?;
    Ok(code)
}
