#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| credlock_sim::fuzz::decode(data));
