//! GGUF: header, metadata, tensor infos, dequantization, and the embedded tokenizer.
#![no_main]
#[path = "common.rs"]
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = common::scratch_file(data, "gguf");
    if let Ok(f) = osum::model::weights::GgufFile::open(&p) {
        common::load_all(&f);
        let _ = osum::model::tokenizer::gguf_bpe::from_gguf(&f);
    }
    if let Ok(l) = osum::model::weights::GgufLlama::open(&p) {
        common::load_all(&l);
    }
});
