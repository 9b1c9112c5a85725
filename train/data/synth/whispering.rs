//! Whispered speech from voiced speech: neither espeak-ng's normal variants nor flite can whisper,
//! so the generator removes the voicing with a noise-excited channel vocoder (the classic
//! "noise-vocoded speech" of hearing research): the signal is split into 16 log-spaced bands, each
//! band's envelope modulates band-limited noise, and the bands are summed. What remains is the
//! spectral envelope (formants, so words and a rough sense of the vocal tract survive) without a
//! pitch — which is what whispering is.

use super::dsp::{noise, normalize_peak, rms, Biquad};
use crate::engine::Rng;

const BANDS: usize = 16;
const LOW_HZ: f32 = 150.0;
const HIGH_HZ: f32 = 7000.0;
/// Envelope smoothing: fast enough to keep syllables, slow enough to drop the pitch period.
const ENVELOPE_HZ: f32 = 40.0;

/// The whispered version of `speech` (same length, peak 0.9).
pub fn whisper(speech: &[f32], rng: &mut Rng) -> Vec<f32> {
    let ratio = (HIGH_HZ / LOW_HZ).powf(1.0 / (BANDS - 1) as f32);
    // Adjacent bands meet at their -3 dB points: Q = 1 / (√r − 1/√r).
    let q = 1.0 / (ratio.sqrt() - 1.0 / ratio.sqrt());
    let carrier = noise(rng, speech.len());
    let mut out = vec![0.0f32; speech.len()];
    for b in 0..BANDS {
        let fc = LOW_HZ * ratio.powi(b as i32);
        // Two cascaded sections: one biquad's 6 dB/octave skirts would let the strong low
        // bands leak into every other band and smear the formants away.
        let filter = |x: &[f32]| Biquad::bandpass(fc, q).run(&Biquad::bandpass(fc, q).run(x));
        let band = filter(speech);
        let rectified: Vec<f32> = band.iter().map(|x| x.abs()).collect();
        let env = Biquad::lowpass(ENVELOPE_HZ).run(&rectified);
        let hiss = filter(&carrier);
        let norm = rms(&hiss).max(1e-9);
        for ((o, e), h) in out.iter_mut().zip(&env).zip(&hiss) {
            *o += e.max(0.0) * h / norm;
        }
    }
    let mut out = Biquad::highpass(300.0).run(&out);
    normalize_peak(&mut out, 0.9);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f32::consts::PI;

    /// Energy at the harmonics of `f0` (2nd–10th) over the energy halfway between them: large
    /// for a periodic buzz, near 1 for noise.
    fn harmonicity(xs: &[f32], f0: f32) -> f32 {
        let power = |f: f32| {
            let (mut re, mut im) = (0.0f32, 0.0f32);
            for (i, x) in xs.iter().enumerate() {
                let ph = 2.0 * PI * f * i as f32 / 16_000.0;
                re += x * ph.cos();
                im += x * ph.sin();
            }
            re * re + im * im
        };
        let on: f32 = (2..=10).map(|k| power(f0 * k as f32)).sum();
        let off: f32 = (2..=10).map(|k| power(f0 * (k as f32 + 0.5))).sum();
        on / off
    }

    #[test]
    fn whispering_removes_the_pitch_but_keeps_the_loudness_contour() {
        // A 125 Hz buzz that is loud in the first half, quiet in the second.
        let n = 16_000;
        let buzz: Vec<f32> = (0..n)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                let amp = if i < n / 2 { 1.0 } else { 0.1 };
                amp * (1..20)
                    .map(|k| (2.0 * PI * 125.0 * k as f32 * t).sin() / k as f32)
                    .sum::<f32>()
            })
            .collect();
        assert!(harmonicity(&buzz[1000..7000], 125.0) > 100.0);
        let w = whisper(&buzz, &mut Rng::new(1));
        assert_eq!(w.len(), n);
        let h = harmonicity(&w[1000..7000], 125.0);
        assert!(h < 4.0, "{h}");
        let (first, second) = (rms(&w[1000..7000]), rms(&w[9000..15000]));
        assert!(first > 4.0 * second, "{first} vs {second}");
    }
}
