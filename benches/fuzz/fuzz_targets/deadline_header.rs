//! Deadline headers (`grpc-timeout`, plain milliseconds): the parser agrees with the grammar, and
//! every parsed budget survives `encode` then `parse` exactly.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/bin/reliability/hostile.rs"]
mod hostile;

libfuzzer_sys::fuzz_target!(|data: &[u8]| hostile::check_deadline(data));
