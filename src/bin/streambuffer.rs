// SPDX-License-Identifier: MPL-2.0
//! `streambuffer`: look at a ring, export a range of it, check it. See
//! `streambuffer --help`; the work is done in the library's `tool` module.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(gststreambuffer::tool::run(&args));
}
