//! The few signal-processing pieces the generator needs beyond sox: biquad filters (RBJ audio-EQ
//! cookbook formulas), white noise, a harmonic voice source with a moving pitch, envelopes and peak
//! normalization. All at [`RATE`], all deterministic for a given [`Rng`].

use crate::engine::Rng;
use std::f32::consts::PI;

/// The sample rate of everything the benchmark writes.
pub const RATE: u32 = 16_000;

/// A second-order IIR section (direct form I).
#[derive(Debug, Clone)]
pub struct Biquad {
    b: [f32; 3],
    a: [f32; 2],
    x: [f32; 2],
    y: [f32; 2],
}

impl Biquad {
    fn new(b: [f32; 3], a0: f32, a: [f32; 2]) -> Biquad {
        Biquad {
            b: [b[0] / a0, b[1] / a0, b[2] / a0],
            a: [a[0] / a0, a[1] / a0],
            x: [0.0; 2],
            y: [0.0; 2],
        }
    }

    /// Band-pass around `freq` Hz with quality `q` (0 dB peak gain).
    pub fn bandpass(freq: f32, q: f32) -> Biquad {
        let w = 2.0 * PI * freq.clamp(10.0, RATE as f32 * 0.45) / RATE as f32;
        let alpha = w.sin() / (2.0 * q);
        Biquad::new(
            [alpha, 0.0, -alpha],
            1.0 + alpha,
            [-2.0 * w.cos(), 1.0 - alpha],
        )
    }

    /// Low-pass at `freq` Hz (Butterworth q = 0.707).
    pub fn lowpass(freq: f32) -> Biquad {
        let w = 2.0 * PI * freq.clamp(10.0, RATE as f32 * 0.45) / RATE as f32;
        let alpha = w.sin() / (2.0 * std::f32::consts::FRAC_1_SQRT_2);
        let c = w.cos();
        Biquad::new(
            [(1.0 - c) / 2.0, 1.0 - c, (1.0 - c) / 2.0],
            1.0 + alpha,
            [-2.0 * c, 1.0 - alpha],
        )
    }

    /// High-pass at `freq` Hz (Butterworth q = 0.707).
    pub fn highpass(freq: f32) -> Biquad {
        let w = 2.0 * PI * freq.clamp(10.0, RATE as f32 * 0.45) / RATE as f32;
        let alpha = w.sin() / (2.0 * std::f32::consts::FRAC_1_SQRT_2);
        let c = w.cos();
        Biquad::new(
            [(1.0 + c) / 2.0, -(1.0 + c), (1.0 + c) / 2.0],
            1.0 + alpha,
            [-2.0 * c, 1.0 - alpha],
        )
    }

    /// Filter one sample.
    pub fn step(&mut self, x: f32) -> f32 {
        let y = self.b[0] * x + self.b[1] * self.x[0] + self.b[2] * self.x[1]
            - self.a[0] * self.y[0]
            - self.a[1] * self.y[1];
        self.x = [x, self.x[0]];
        self.y = [y, self.y[0]];
        y
    }

    /// Filter a whole signal (from a fresh state).
    pub fn run(mut self, xs: &[f32]) -> Vec<f32> {
        xs.iter().map(|&x| self.step(x)).collect()
    }
}

/// `n` samples of uniform white noise in [-1, 1).
pub fn noise(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.uniform() * 2.0 - 1.0).collect()
}

/// Number of samples in `secs` seconds.
pub fn samples(secs: f32) -> usize {
    (secs.max(0.0) * RATE as f32).round() as usize
}

/// A voiced source: harmonics 1..=`harmonics` with 1/k amplitudes, the fundamental following
/// `f0(t)` (t in seconds), with a little random pitch jitter so it does not sound like a pure tone.
pub fn voiced(rng: &mut Rng, n: usize, harmonics: usize, f0: impl Fn(f32) -> f32) -> Vec<f32> {
    let mut phase = 0.0f32;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = i as f32 / RATE as f32;
        let f = f0(t) * (1.0 + 0.01 * (rng.uniform() - 0.5));
        phase = (phase + 2.0 * PI * f / RATE as f32) % (2.0 * PI);
        let mut s = 0.0;
        for k in 1..=harmonics {
            if f * k as f32 >= RATE as f32 * 0.45 {
                break;
            }
            s += (phase * k as f32).sin() / k as f32;
        }
        out.push(s);
    }
    out
}

/// Multiply by an attack–hold–release envelope (linear attack, exponential release).
pub fn envelope(xs: &mut [f32], attack_s: f32, release_s: f32) {
    let n = xs.len();
    let att = samples(attack_s).max(1);
    let rel = samples(release_s).max(1);
    for (i, x) in xs.iter_mut().enumerate() {
        let a = (i as f32 / att as f32).min(1.0);
        let from_end = n - i;
        let r = if from_end < rel {
            (from_end as f32 / rel as f32).powf(2.0)
        } else {
            1.0
        };
        *x *= a * r;
    }
}

/// Add `src` into `dst` starting at sample `at`, growing `dst` as needed.
pub fn add_at(dst: &mut Vec<f32>, src: &[f32], at: usize, gain: f32) {
    if dst.len() < at + src.len() {
        dst.resize(at + src.len(), 0.0);
    }
    for (d, s) in dst[at..].iter_mut().zip(src) {
        *d += gain * s;
    }
}

/// Scale so the largest magnitude is `peak` (silence stays silence).
pub fn normalize_peak(xs: &mut [f32], peak: f32) {
    let m = xs.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if m > 0.0 {
        let g = peak / m;
        xs.iter_mut().for_each(|x| *x *= g);
    }
}

/// Write 16-bit mono PCM at [`RATE`] (clipped to [-1, 1]).
pub fn write_wav(path: &std::path::Path, xs: &[f32]) -> Result<(), String> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let fail = |e: hound::Error| format!("{}: {e}", path.display());
    let mut w = hound::WavWriter::create(path, spec).map_err(fail)?;
    for &x in xs {
        w.write_sample((x.clamp(-1.0, 1.0) * 32767.0).round() as i16)
            .map_err(fail)?;
    }
    w.finalize().map_err(fail)
}

/// Root-mean-square level.
pub fn rms(xs: &[f32]) -> f32 {
    if xs.is_empty() {
        return 0.0;
    }
    (xs.iter().map(|x| x * x).sum::<f32>() / xs.len() as f32).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (2.0 * PI * freq * i as f32 / RATE as f32).sin())
            .collect()
    }

    #[test]
    fn filters_pass_their_band_and_stop_the_rest() {
        let n = RATE as usize;
        let tail = |v: Vec<f32>| rms(&v[n / 2..]) / std::f32::consts::FRAC_1_SQRT_2;
        // A pure tone at the centre passes with gain ≈ 1; two octaves away it is well below.
        assert!((tail(Biquad::bandpass(1000.0, 2.0).run(&sine(1000.0, n))) - 1.0).abs() < 0.02);
        assert!(tail(Biquad::bandpass(1000.0, 2.0).run(&sine(4000.0, n))) < 0.2);
        assert!(tail(Biquad::lowpass(500.0).run(&sine(4000.0, n))) < 0.03);
        assert!((tail(Biquad::lowpass(500.0).run(&sine(50.0, n))) - 1.0).abs() < 0.02);
        assert!(tail(Biquad::highpass(2000.0).run(&sine(200.0, n))) < 0.02);
    }

    #[test]
    fn normalize_and_add_at_do_what_they_say() {
        let mut a = vec![0.5, -2.0, 1.0];
        normalize_peak(&mut a, 0.5);
        assert_eq!(a, [0.125, -0.5, 0.25]);
        let mut d = vec![1.0];
        add_at(&mut d, &[1.0, 2.0], 2, 0.5);
        assert_eq!(d, [1.0, 0.0, 0.5, 1.0]);
    }
}
