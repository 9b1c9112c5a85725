//! CTranslate2 `model.bin`: header, variables, aliases and every tensor load.
#![no_main]
#[path = "common.rs"]
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = common::scratch_file(data, "bin");
    if let Ok(m) = osum::model::weights::CtModel::open(&p) {
        common::load_all(&m);
    }
});
