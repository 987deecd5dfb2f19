#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| monitor::fuzzing::web_config(data));
