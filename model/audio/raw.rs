//! Headerless signed 16-bit little-endian mono PCM (`.raw` / `.pcm`), read a block at a time.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::AudioError;

/// A raw s16le stream of a known length.
pub(super) struct RawFrames {
    input: Box<dyn Read + Send>,
    path: PathBuf,
    /// Samples not yet read.
    left: u64,
    total: u64,
}

impl RawFrames {
    /// A stream of `len` bytes; an odd length is an error (not whole 16-bit samples).
    pub(super) fn open(
        path: &Path,
        input: Box<dyn Read + Send>,
        len: u64,
    ) -> Result<RawFrames, AudioError> {
        if !len.is_multiple_of(2) {
            return Err(AudioError::RawOddLength {
                path: path.into(),
                len,
            });
        }
        Ok(RawFrames {
            input,
            path: path.into(),
            left: len / 2,
            total: len / 2,
        })
    }

    /// Samples in the stream.
    pub(super) fn frames(&self) -> u64 {
        self.total
    }

    /// Append up to `max` samples in [-1, 1) (divided by 32768, as Whisper's loader does) to
    /// `out`; 0 at the end.
    pub(super) fn read_block(
        &mut self,
        max: usize,
        out: &mut Vec<f32>,
    ) -> Result<usize, AudioError> {
        let n = (max as u64).min(self.left) as usize;
        let mut bytes = vec![0u8; 2 * n];
        self.input
            .read_exact(&mut bytes)
            .map_err(|source| AudioError::Io {
                path: self.path.clone(),
                source,
            })?;
        out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0),
        );
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn decode_s16le(path: &Path, bytes: &[u8]) -> Result<Vec<f32>, AudioError> {
        let input: Box<dyn Read + Send> = Box::new(Cursor::new(bytes.to_vec()));
        let mut r = RawFrames::open(path, input, bytes.len() as u64)?;
        let mut out = Vec::new();
        while r.read_block(3, &mut out)? > 0 {}
        Ok(out)
    }

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
