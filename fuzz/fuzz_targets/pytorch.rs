//! PyTorch zip checkpoints: the zip, the restricted unpickler, storages, and every tensor load.
#![no_main]
#[path = "common.rs"]
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = common::scratch_file(data, "pt");
    if let Ok(c) = osum::model::weights::PtCheckpoint::open(&p) {
        common::load_all(&c);
        let _ = c.osum_mapping();
    }
});
