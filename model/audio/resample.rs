//! Any supported rate → 16 kHz with rubato's synchronous FFT resampler: band-limited (the
//! spectrum is cut at the lower Nyquist, so no aliasing when downsampling), exact rational ratio.

use std::path::Path;

use rubato::{FftFixedIn, Resampler};

use super::{AudioError, SAMPLE_RATE};

/// Input frames per call into the resampler.
const CHUNK: usize = 4096;

/// Resamples mono `samples` at `rate` Hz to 16 kHz. The output has `round(len·16000/rate)`
/// samples, aligned with the input: the resampler's delay is removed to within a constant
/// sub-sample offset (< 0.5 output sample, measured in the tests).
pub(super) fn to_16k(path: &Path, samples: &[f32], rate: u32) -> Result<Vec<f32>, AudioError> {
    let fail = |e: &dyn std::fmt::Display| AudioError::Resample {
        path: path.into(),
        rate,
        msg: e.to_string(),
    };
    let out_len =
        ((samples.len() as u64 * SAMPLE_RATE as u64 + rate as u64 / 2) / rate as u64) as usize;
    let mut r = FftFixedIn::<f32>::new(rate as usize, SAMPLE_RATE as usize, CHUNK, 2, 1)
        .map_err(|e| fail(&e))?;
    let delay = r.output_delay();
    let mut out = Vec::with_capacity(out_len + delay + 2 * r.output_frames_max());
    let mut pos = 0;
    while samples.len() - pos >= r.input_frames_next() {
        let n = r.input_frames_next();
        let y = r
            .process(&[&samples[pos..pos + n]], None)
            .map_err(|e| fail(&e))?;
        out.extend_from_slice(&y[0]);
        pos += n;
    }
    if pos < samples.len() {
        let y = r
            .process_partial(Some(&[&samples[pos..]]), None)
            .map_err(|e| fail(&e))?;
        out.extend_from_slice(&y[0]);
    }
    // Flush the tail still inside the resampler.
    while out.len() < out_len + delay {
        let y = r
            .process_partial::<&[f32]>(None, None)
            .map_err(|e| fail(&e))?;
        out.extend_from_slice(&y[0]);
    }
    Ok(out[delay..delay + out_len].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, hz: f64, secs: f64) -> Vec<f32> {
        let n = (rate as f64 * secs) as usize;
        (0..n)
            .map(|i| {
                (0.5 * (2.0 * std::f64::consts::PI * hz * i as f64 / rate as f64).sin()) as f32
            })
            .collect()
    }

    /// Amplitude and time offset (in output samples) of a `hz` tone in 16 kHz `y`, by projection.
    fn tone_fit(y: &[f32], hz: f64) -> (f64, f64) {
        let (mut c, mut s) = (0f64, 0f64);
        let range = 1000..y.len() - 1000;
        let n = range.len() as f64;
        for i in range {
            let a = 2.0 * std::f64::consts::PI * hz * i as f64 / 16000.0;
            c += y[i] as f64 * a.cos();
            s += y[i] as f64 * a.sin();
        }
        let phase = c.atan2(s);
        (
            2.0 * (c * c + s * s).sqrt() / n,
            phase / (2.0 * std::f64::consts::PI * hz) * 16000.0,
        )
    }

    /// A 440 Hz tone keeps its amplitude (to 1e-3) and its timing (to under half an output
    /// sample: rubato's FFT resampler leaves a constant sub-sample delay when downsampling).
    #[test]
    fn tone_survives_resampling() {
        for rate in [8000, 22050, 32000, 44100, 48000, 96000] {
            let y = to_16k(Path::new("t.wav"), &sine(rate, 440.0, 1.0), rate).unwrap();
            assert_eq!(y.len(), 16000, "{rate} Hz");
            let (amp, shift) = tone_fit(&y, 440.0);
            assert!(
                (amp - 0.5).abs() < 1e-3 && shift.abs() < 0.5,
                "{rate} Hz: amplitude {amp}, shift {shift}"
            );
        }
    }

    /// A 10 kHz tone at 48 kHz is above the new Nyquist (8 kHz) and must vanish, not alias.
    #[test]
    fn no_aliasing() {
        let y = to_16k(Path::new("t.wav"), &sine(48000, 10000.0, 0.5), 48000).unwrap();
        let peak = y[500..7500].iter().map(|v| v.abs()).fold(0.0, f32::max);
        assert!(peak < 1e-2, "aliased peak {peak}");
    }

    #[test]
    fn upsampling_and_short_inputs() {
        let y = to_16k(Path::new("t.wav"), &sine(8000, 300.0, 0.5), 8000).unwrap();
        assert_eq!(y.len(), 8000);
        let want = sine(16000, 300.0, 0.5);
        // Upsampling by an integer factor is exact up to the filter ripple.
        let err = y[500..7500]
            .iter()
            .zip(&want[500..7500])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-3, "max error {err}");
        assert_eq!(
            to_16k(Path::new("t.wav"), &[0.1; 3], 22050).unwrap().len(),
            2
        );
        assert!(to_16k(Path::new("t.wav"), &[], 22050).unwrap().is_empty());
    }
}
