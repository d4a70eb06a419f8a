#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tagcfg_fuzz::http_router(data));
