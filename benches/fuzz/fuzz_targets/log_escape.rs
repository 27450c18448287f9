//! Log-value escaping: one line, no control, bidirectional or line-breaking character, and the
//! output decodes back to the input.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/bin/reliability/hostile.rs"]
mod hostile;

libfuzzer_sys::fuzz_target!(|data: &[u8]| hostile::check_escape(data));
