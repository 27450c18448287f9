//! Request-id validation and `SetRequestIdLayer`: a valid id is kept, anything else replaced by
//! a fresh UUID v7, and the handler and the response always agree.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/bin/reliability/hostile.rs"]
mod hostile;

libfuzzer_sys::fuzz_target!(|data: &[u8]| hostile::check_request_id(data));
