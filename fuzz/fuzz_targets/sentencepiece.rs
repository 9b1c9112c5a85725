//! SentencePiece `tokenizer.model` (protobuf) and encoding/decoding with what it loaded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use osum::model::tokenizer::sentencepiece::SentencePiece;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = SentencePiece::from_bytes(data, "fuzz.model") {
        let ids = s.encode("Hello wörld, 12 <0x41> \u{1}\u{7f} 你好");
        let _ = s.decode(&ids);
        let _ = s.decode(&[0, 1, 2, 3, u32::MAX]);
    }
});
