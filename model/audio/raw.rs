//! Headerless signed 16-bit little-endian mono PCM (`.raw` / `.pcm`).

use std::path::Path;

use super::AudioError;

/// Bytes → samples in [-1, 1) (divided by 32768, as Whisper's loader does).
pub(super) fn decode_s16le(path: &Path, bytes: &[u8]) -> Result<Vec<f32>, AudioError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(AudioError::RawOddLength {
            path: path.into(),
            len: bytes.len() as u64,
        });
    }
    Ok(bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_scales() {
        let bytes = [0x00, 0x80, 0xff, 0x7f, 0x00, 0x00, 0x00, 0x40];
        let s = decode_s16le(Path::new("a.raw"), &bytes).unwrap();
        assert_eq!(s, vec![-1.0, 32767.0 / 32768.0, 0.0, 0.5]);
    }

    #[test]
    fn odd_length_is_an_error() {
        let e = decode_s16le(Path::new("odd.raw"), &[1, 2, 3]).unwrap_err();
        assert!(e.to_string().contains("odd.raw"), "{e}");
    }
}
