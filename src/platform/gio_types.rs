// SPDX-License-Identifier: MPL-2.0
//! GIO's two interface types as glib-rs asks for them, without libgio
//! (see build.rs): by name, from GLib's type registry.
//!
//! glib-rs's `Object::new` asks whether the type to create implements
//! `GInitable` or `GAsyncInitable`. A type can only implement an interface
//! that is registered, so when libgio has not registered it (or is not
//! loaded at all) no type implements it, and `G_TYPE_INVALID` (0), which
//! no type "is a", gives the same answer. When it is registered, the name
//! gives the very type libgio's function returns.

use gst::glib::gobject_ffi;

fn registered(name: &std::ffi::CStr) -> gst::glib::ffi::GType {
    // SAFETY: `g_type_from_name` only reads GLib's type registry; the name
    // is a valid NUL-terminated string.
    unsafe { gobject_ffi::g_type_from_name(name.as_ptr()) }
}

/// `g_initable_get_type`, in the plugin library.
#[unsafe(no_mangle)]
pub extern "C" fn gststreambuffer_initable_type() -> gst::glib::ffi::GType {
    registered(c"GInitable")
}

/// `g_async_initable_get_type`, in the plugin library.
#[unsafe(no_mangle)]
pub extern "C" fn gststreambuffer_async_initable_type() -> gst::glib::ffi::GType {
    registered(c"GAsyncInitable")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Once an object was created through glib-rs (whose `Object::new`
    /// registers both interfaces in the test binary, which links libgio),
    /// the answers are those interfaces.
    #[test]
    fn the_answers_are_the_registered_interfaces() {
        gst::init().expect("gst init");
        let _element = gst::ElementFactory::make("fakesink").build().expect("fakesink");
        for (answer, name) in [
            (gststreambuffer_initable_type(), "GInitable"),
            (gststreambuffer_async_initable_type(), "GAsyncInitable"),
        ] {
            assert_ne!(answer, 0, "{name} is not registered");
            // SAFETY: a type GLib's registry just returned.
            let ty: gst::glib::Type = unsafe { gst::glib::translate::from_glib(answer) };
            assert_eq!(ty.name(), name);
            assert!(ty.is_a(gst::glib::Type::INTERFACE), "{name} is not an interface");
        }
    }
}
