//! RIFF/WAVE decoding via hound: integer PCM of 8/16/24/32 bits or 32-bit float, any channel
//! count, mixed down to mono by averaging the channels (REFERENCE.md §2.1).

use std::io::Cursor;
use std::path::Path;

use hound::{SampleFormat, WavReader};

use super::AudioError;

/// Bytes of a WAV file → (mono samples in [-1, 1], sample rate). The rate is not checked here.
pub(super) fn decode(path: &Path, bytes: &[u8]) -> Result<(Vec<f32>, u32), AudioError> {
    let err = |msg: String| AudioError::Wav {
        path: path.into(),
        msg,
    };
    let mut reader = WavReader::new(Cursor::new(bytes)).map_err(|e| err(header_error(e)))?;
    let spec = reader.spec();
    let channels = spec.channels as usize;
    if channels == 0 {
        return Err(err("zero channels".into()));
    }
    // The data length is a header field: check it against what the file holds before we
    // allocate by it (a corrupt header may claim 4 GB).
    let bytes_per_sample = (spec.bits_per_sample as u64).div_ceil(8);
    let claimed = reader.len() as u64 * bytes_per_sample;
    if claimed > bytes.len() as u64 {
        return Err(err(format!(
            "header claims {claimed} bytes of sample data but the file has only {} bytes",
            bytes.len()
        )));
    }
    let n = reader.len() as usize;
    let mut interleaved = Vec::with_capacity(n);
    match (spec.sample_format, spec.bits_per_sample) {
        (SampleFormat::Float, 32) => {
            for (i, s) in reader.samples::<f32>().enumerate() {
                interleaved.push(s.map_err(|e| err(format!("sample {i} of {n}: {e}")))?);
            }
        }
        (SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            // Full scale of a signed `bits`-bit integer; hound already recentres unsigned 8-bit.
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            for (i, s) in reader.samples::<i32>().enumerate() {
                let s = s.map_err(|e| err(format!("sample {i} of {n}: {e}")))?;
                interleaved.push((s as f64 * scale) as f32);
            }
        }
        (format, bits) => {
            return Err(err(format!(
                "unsupported encoding {format:?} {bits}-bit (expected integer PCM 8/16/24/32-bit or 32-bit float)"
            )))
        }
    }
    let mono = if channels == 1 {
        interleaved
    } else {
        let inv = 1.0 / channels as f32;
        interleaved
            .chunks_exact(channels)
            .map(|f| f.iter().sum::<f32>() * inv)
            .collect()
    };
    Ok((mono, spec.sample_rate))
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
}
