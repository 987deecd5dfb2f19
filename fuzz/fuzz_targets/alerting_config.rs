#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| monitor::fuzzing::alerting_config(data));
