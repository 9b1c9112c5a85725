//! Any supported rate → 16 kHz with rubato's synchronous FFT resampler: band-limited (the
//! spectrum is cut at the lower Nyquist, so no aliasing when downsampling), exact rational ratio,
//! fed block by block.

use std::path::Path;

use rubato::{FftFixedIn, Resampler};

use super::{AudioError, SAMPLE_RATE};

/// Input frames per call into the resampler.
const CHUNK: usize = 4096;

/// A resampler fed block by block (so long files need not be held in memory): the output has
/// `round(total·16000/rate)` samples for `total` input samples, aligned with the input: the
/// resampler's delay is removed to within a constant sub-sample offset (< 0.5 output sample,
/// measured in the tests).
pub(super) struct To16k {
    r: FftFixedIn<f32>,
    path: std::path::PathBuf,
    rate: u32,
    /// Input not yet passed to the resampler (less than one of its blocks).
    pending: Vec<f32>,
    /// Leading output samples still to drop (the resampler's delay).
    skip: usize,
    /// Output samples still to emit.
    left: u64,
}

impl To16k {
    /// A resampler from `rate` Hz for an input of `total` samples.
    pub(super) fn new(path: &Path, rate: u32, total: u64) -> Result<To16k, AudioError> {
        let r = FftFixedIn::<f32>::new(rate as usize, SAMPLE_RATE as usize, CHUNK, 2, 1).map_err(
            |e| AudioError::Resample {
                path: path.into(),
                rate,
                msg: e.to_string(),
            },
        )?;
        Ok(To16k {
            skip: r.output_delay(),
            r,
            path: path.into(),
            rate,
            pending: Vec::with_capacity(CHUNK),
            left: (total * SAMPLE_RATE as u64 + rate as u64 / 2) / rate as u64,
        })
    }

    /// Output samples not yet emitted.
    pub(super) fn remaining(&self) -> u64 {
        self.left
    }

    fn fail(&self, e: &dyn std::fmt::Display) -> AudioError {
        AudioError::Resample {
            path: self.path.clone(),
            rate: self.rate,
            msg: e.to_string(),
        }
    }

    /// Append the part of the resampler's output `y` that belongs to the signal to `out`.
    fn emit(&mut self, y: &[f32], out: &mut Vec<f32>) {
        let drop = self.skip.min(y.len());
        self.skip -= drop;
        let take = ((y.len() - drop) as u64).min(self.left) as usize;
        out.extend_from_slice(&y[drop..drop + take]);
        self.left -= take as u64;
    }

    /// Feed the next input samples; finished output blocks go to `out`.
    pub(super) fn push(&mut self, x: &[f32], out: &mut Vec<f32>) -> Result<(), AudioError> {
        self.pending.extend_from_slice(x);
        let mut pos = 0;
        while self.pending.len() - pos >= self.r.input_frames_next() {
            let n = self.r.input_frames_next();
            let y = self
                .r
                .process(&[&self.pending[pos..pos + n]], None)
                .map_err(|e| self.fail(&e))?;
            self.emit(&y[0], out);
            pos += n;
        }
        self.pending.drain(..pos);
        Ok(())
    }

    /// The input has ended: resample what is pending and flush the tail still inside the
    /// resampler into `out`.
    pub(super) fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), AudioError> {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            let y = self
                .r
                .process_partial(Some(&[&rest]), None)
                .map_err(|e| self.fail(&e))?;
            self.emit(&y[0], out);
        }
        while self.left > 0 {
            let y = self
                .r
                .process_partial::<&[f32]>(None, None)
                .map_err(|e| self.fail(&e))?;
            if y[0].is_empty() {
                return Err(self.fail(&"the resampler stopped producing output"));
            }
            self.emit(&y[0], out);
        }
        Ok(())
    }
}

/// Resamples mono `samples` at `rate` Hz to 16 kHz in one call (see [`To16k`]).
#[cfg(test)]
fn to_16k(path: &Path, samples: &[f32], rate: u32) -> Result<Vec<f32>, AudioError> {
    let mut r = To16k::new(path, rate, samples.len() as u64)?;
    let mut out = Vec::new();
    r.push(samples, &mut out)?;
    r.finish(&mut out)?;
    Ok(out)
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
