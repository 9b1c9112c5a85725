//! safetensors: header, offsets, dtypes and every tensor load.
#![no_main]
#[path = "common.rs"]
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = common::scratch_file(data, "safetensors");
    if let Ok(f) = osum::model::weights::SafeTensors::open(&p) {
        common::load_all(&f);
    }
});
