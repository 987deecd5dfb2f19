#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| monitor::fuzzing::kernel_record(data));
