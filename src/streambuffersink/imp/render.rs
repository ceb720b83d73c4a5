// SPDX-License-Identifier: MPL-2.0
//! `streambuffersink`'s own `render` entry point, in place of the one the
//! subclassing glue installs.
//!
//! Why: the glue guards every call against a panic in the element, and to
//! do so looks the element's "has panicked" flag up in a per-instance map
//! for every buffer: some 30 ns, about 1.4 % of the sink's CPU at 1316-byte
//! buffers, where the goal is to cost no more than `filesink`. This entry
//! point keeps the same contract (a panic posts an error and every later
//! call fails at once, whichever of the element's functions panicked) but
//! finds the same flag through a pointer taken once, when the element is
//! constructed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use gst::glib::translate::{IntoGlib, from_glib_borrow};
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use super::StreamBufferSink;

/// The subclassing glue's "has panicked" flag of one element, found once.
#[derive(Debug, Default)]
pub(super) struct PanicFlag(AtomicPtr<AtomicBool>);

impl PanicFlag {
    /// Remembers where `imp`'s flag lives; called from `constructed`.
    pub(super) fn find(&self, imp: &StreamBufferSink) {
        let flag: *const AtomicBool = imp.panicked();
        self.0.store(flag.cast_mut(), Ordering::Release);
    }

    /// `imp`'s flag: the one remembered, or looked up when `find` has not
    /// run yet.
    fn get<'a>(&self, imp: &'a StreamBufferSink) -> &'a AtomicBool {
        let flag = self.0.load(Ordering::Acquire);
        if flag.is_null() {
            return imp.panicked();
        }
        // SAFETY: `find` stored the address of `imp`'s own flag, which
        // lives in the instance's private data as long as the instance, and
        // `imp` borrows the instance for 'a. The flag is only used through
        // shared references (it is atomic).
        unsafe { &*flag }
    }
}

/// Installs [`render`] as the class's `render`; called from `class_init`.
pub(super) fn install(klass: &mut gst_base::ffi::GstBaseSinkClass) {
    klass.render = Some(render);
}

/// What the glue's `render` does (hand the buffer to
/// `BaseSinkImpl::render`, a panic becomes an error message and
/// `GST_FLOW_ERROR`), with the flag found through [`PanicFlag`].
unsafe extern "C" fn render(
    sink: *mut gst_base::ffi::GstBaseSink,
    buffer: *mut gst::ffi::GstBuffer,
) -> gst::ffi::GstFlowReturn {
    // SAFETY: GstBaseSink calls `render` on an instance of this class,
    // whose instance struct is `StreamBufferSink`'s, with a buffer it keeps
    // alive for the call.
    let (imp, buffer) = unsafe {
        let instance = &*(sink as *mut <StreamBufferSink as ObjectSubclass>::Instance);
        (instance.imp(), from_glib_borrow::<_, gst::Buffer>(buffer))
    };
    let panicked = imp.panic_flag.get(imp);
    if panicked.load(Ordering::Relaxed) {
        gst::element_imp_error!(imp, gst::LibraryError::Failed, ("Panicked"));
        return gst::FlowReturn::Error.into_glib();
    }
    match catch_unwind(AssertUnwindSafe(|| imp.render(&buffer))) {
        Ok(result) => gst::FlowReturn::from(result).into_glib(),
        Err(panic) => {
            panicked.store(true, Ordering::Relaxed);
            let cause = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("unknown cause");
            gst::element_imp_error!(imp, gst::LibraryError::Failed, ("Panicked: {}", cause));
            gst::FlowReturn::Error.into_glib()
        }
    }
}
