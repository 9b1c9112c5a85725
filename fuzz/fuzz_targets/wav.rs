//! WAV / raw PCM decoding (`osum::model::audio::decode`), any bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = osum::model::audio::decode(Path::new("fuzz.wav"), data, None);
    let _ = osum::model::audio::decode(Path::new("fuzz.raw"), data, Some(22_050));
});
