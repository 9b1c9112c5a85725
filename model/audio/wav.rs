//! RIFF/WAVE decoding via hound: integer PCM of 8/16/24/32 bits or 32-bit float, any channel
//! count, mixed down to mono by averaging the channels (REFERENCE.md §2.1).

use std::io::Read;
use std::path::{Path, PathBuf};

use hound::{SampleFormat, WavReader};

use super::AudioError;

/// Largest magnitude accepted in a float WAV: full scale is 1, anything near this is garbage
/// (and far larger values overflow the FFTs downstream).
const MAX_FLOAT_SAMPLE: f32 = 1.0e4;

/// A WAV file's samples, read a block of frames at a time and mixed down to mono.
pub(super) struct WavFrames {
    reader: WavReader<Box<dyn Read + Send>>,
    path: PathBuf,
    channels: usize,
    /// `None` for 32-bit float, else the full scale of the signed integer samples.
    int_scale: Option<f64>,
    /// Interleaved samples read so far, and in all.
    read: usize,
    total: usize,
    /// The sample rate of the header (not checked here).
    pub(super) rate: u32,
}

impl WavFrames {
    /// Parse the header of a WAV stream of `file_len` bytes and check it: channels, encoding,
    /// and the data length it claims against what the file holds, before anything is
    /// allocated by it (a corrupt header may claim 4 GB).
    pub(super) fn open(
        path: &Path,
        input: Box<dyn Read + Send>,
        file_len: u64,
    ) -> Result<WavFrames, AudioError> {
        let err = |msg: String| AudioError::Wav {
            path: path.into(),
            msg,
        };
        let reader = WavReader::new(input).map_err(|e| err(header_error(e)))?;
        let spec = reader.spec();
        let channels = spec.channels as usize;
        if channels == 0 {
            return Err(err("zero channels".into()));
        }
        let int_scale = match (spec.sample_format, spec.bits_per_sample) {
            (SampleFormat::Float, 32) => None,
            // Full scale of a signed `bits`-bit integer; hound already recentres unsigned 8-bit.
            (SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
                Some(1.0 / (1u64 << (bits - 1)) as f64)
            }
            (format, bits) => {
                return Err(err(format!(
                    "unsupported encoding {format:?} {bits}-bit (expected integer PCM \
                     8/16/24/32-bit or 32-bit float)"
                )))
            }
        };
        let bytes_per_sample = (spec.bits_per_sample as u64).div_ceil(8);
        let claimed = reader.len() as u64 * bytes_per_sample;
        if claimed > file_len {
            return Err(err(format!(
                "header claims {claimed} bytes of sample data but the file has only \
                 {file_len} bytes"
            )));
        }
        Ok(WavFrames {
            total: reader.len() as usize,
            reader,
            path: path.into(),
            channels,
            int_scale,
            read: 0,
            rate: spec.sample_rate,
        })
    }

    /// Mono frames in the file (a trailing partial frame is dropped).
    pub(super) fn frames(&self) -> u64 {
        (self.total / self.channels) as u64
    }

    /// Append up to `max` mono frames to `out`; 0 at the end of the data.
    pub(super) fn read_block(
        &mut self,
        max: usize,
        out: &mut Vec<f32>,
    ) -> Result<usize, AudioError> {
        // At most ~64 Ki interleaved samples per block whatever the channel count claims.
        let frames = ((self.total - self.read) / self.channels)
            .min(max)
            .min((1 << 16) / self.channels)
            .max(1)
            .min((self.total - self.read) / self.channels);
        let n = frames * self.channels;
        let (path, total, start) = (&self.path, self.total, self.read);
        let err = |i: usize, e: hound::Error| AudioError::Wav {
            path: path.clone(),
            msg: format!("sample {} of {total}: {e}", start + i),
        };
        let mut block = Vec::with_capacity(n);
        match self.int_scale {
            None => {
                for (i, s) in self.reader.samples::<f32>().take(n).enumerate() {
                    let x = s.map_err(|e| err(i, e))?;
                    // NaN, infinities and huge values would poison the resampler's FFT and the
                    // log-mel (found by fuzzing: rubato panics on a NaN spectrum).
                    if !x.is_finite() || x.abs() > MAX_FLOAT_SAMPLE {
                        return Err(AudioError::Wav {
                            path: path.clone(),
                            msg: format!(
                                "sample {} of {total} is {x}: float samples must be finite \
                                 (nominally in [-1, 1])",
                                start + i
                            ),
                        });
                    }
                    block.push(x);
                }
            }
            Some(scale) => {
                for (i, s) in self.reader.samples::<i32>().take(n).enumerate() {
                    block.push((s.map_err(|e| err(i, e))? as f64 * scale) as f32);
                }
            }
        }
        if self.channels == 1 {
            out.extend_from_slice(&block);
        } else {
            let inv = 1.0 / self.channels as f32;
            out.extend(
                block
                    .chunks_exact(self.channels)
                    .map(|f| f.iter().sum::<f32>() * inv),
            );
        }
        self.read += n;
        Ok(frames)
    }
}

/// hound's header error, said in terms of what was expected.
fn header_error(e: hound::Error) -> String {
    match e {
        // hound reports running out of bytes as an `Other` I/O error; the input is in memory,
        // so any I/O error here means the file ended early.
        hound::Error::IoError(_) => {
            "truncated header (the file ends before the fmt and data chunks)".into()
        }
        hound::Error::Unsupported => "unsupported format tag in the fmt chunk (expected PCM (1), \
             IEEE float (3) or WAVE_FORMAT_EXTENSIBLE with a PCM/float subformat)"
            .into(),
        e => format!("header: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hound::{WavSpec, WavWriter};
    use std::io::Cursor;

    /// The whole file as (mono samples, rate).
    fn decode(path: &Path, bytes: &[u8]) -> Result<(Vec<f32>, u32), AudioError> {
        let input: Box<dyn Read + Send> = Box::new(Cursor::new(bytes.to_vec()));
        let mut w = WavFrames::open(path, input, bytes.len() as u64)?;
        let mut out = Vec::new();
        // Small blocks, so frames cross block boundaries.
        while w.read_block(3, &mut out)? > 0 {}
        Ok((out, w.rate))
    }

    fn write<S: hound::Sample + Copy>(spec: WavSpec, samples: &[S]) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        let mut w = WavWriter::new(&mut buf, spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        buf.into_inner()
    }

    fn spec(channels: u16, bits: u16, format: SampleFormat) -> WavSpec {
        WavSpec {
            channels,
            sample_rate: 16000,
            bits_per_sample: bits,
            sample_format: format,
        }
    }

    #[test]
    fn int_depths_scale_to_unit_range() {
        let p = Path::new("t.wav");
        let b8 = write(spec(1, 8, SampleFormat::Int), &[-128i8, 64, 0]);
        assert_eq!(decode(p, &b8).unwrap().0, vec![-1.0, 0.5, 0.0]);
        let b16 = write(spec(1, 16, SampleFormat::Int), &[-32768i16, 16384]);
        assert_eq!(decode(p, &b16).unwrap().0, vec![-1.0, 0.5]);
        let b24 = write(spec(1, 24, SampleFormat::Int), &[-(1i32 << 23), 1 << 22]);
        assert_eq!(decode(p, &b24).unwrap().0, vec![-1.0, 0.5]);
        let b32 = write(spec(1, 32, SampleFormat::Int), &[i32::MIN, 1 << 30]);
        assert_eq!(decode(p, &b32).unwrap().0, vec![-1.0, 0.5]);
        let f32s = write(spec(1, 32, SampleFormat::Float), &[0.25f32, -0.75]);
        let (s, rate) = decode(p, &f32s).unwrap();
        assert_eq!((s, rate), (vec![0.25, -0.75], 16000));
    }

    #[test]
    fn channels_are_averaged() {
        let b = write(
            spec(2, 16, SampleFormat::Int),
            &[16384i16, 0, -32768, -16384],
        );
        assert_eq!(decode(Path::new("s.wav"), &b).unwrap().0, vec![0.25, -0.75]);
        let b = write(spec(3, 32, SampleFormat::Float), &[0.3f32, 0.3, 0.3]);
        let s = decode(Path::new("s.wav"), &b).unwrap().0;
        assert!((s[0] - 0.3).abs() < 1e-7);
    }

    /// Fuzzing regression (fuzz/ wav target): a 48 kHz float WAV holding a NaN made the
    /// resampler panic; non-finite or huge float samples are now an error naming the sample.
    #[test]
    fn non_finite_float_samples_are_refused() {
        let crash =
            "524946463c00000057415645666d7420100000000300010080bb000000ee02000400200064617461\
                     18000000000000000000003f000000bf0000efffffff80bf000000803e";
        let bytes: Vec<u8> = (0..crash.len() / 2)
            .map(|i| u8::from_str_radix(&crash[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let e = crate::model::audio::decode(Path::new("crash.wav"), &bytes, None).unwrap_err();
        assert!(e.to_string().contains("sample 3 of 6 is NaN"), "{e}");
        for bad in [f32::INFINITY, -1e30] {
            let b = write(spec(1, 32, SampleFormat::Float), &[0.5f32, bad]);
            let e = decode(Path::new("f.wav"), &b).unwrap_err().to_string();
            assert!(e.contains("sample 1 of 2") && e.contains("finite"), "{e}");
        }
    }
}
