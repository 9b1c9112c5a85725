//! The Whisper log-mel spectrogram, exactly as REFERENCE.md §2 (= librosa/whisper).

use std::sync::Arc;

use rayon::prelude::*;

use crate::engine::{Device, Result, Tensor};

use super::fft::{Fft, C};

/// STFT window and FFT length (25 ms at 16 kHz).
pub const N_FFT: usize = 400;
/// STFT hop (10 ms: 100 frames per second).
pub const HOP: usize = 160;
/// One-sided frequency bins: `N_FFT/2 + 1`.
pub const N_FREQ: usize = N_FFT / 2 + 1;
/// Mel bands.
pub const N_MELS: usize = 80;
/// Whisper's fixed input: 30 s of samples…
pub const WHISPER_SAMPLES: usize = 480_000;
/// …giving 3000 frames.
pub const WHISPER_FRAMES: usize = WHISPER_SAMPLES / HOP;

/// How the input length is treated (§2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MelMode {
    /// Pad with zeros or trim to 30 s (480000 samples) → always 3000 frames, as OpenAI Whisper.
    Whisper,
    /// Variable length, no padding (as OSUM): `len / 160` frames.
    Osum,
}

/// The Slaney mel filterbank `[80, 201]` row-major (librosa `filters.mel(sr=16000, n_fft=400,
/// n_mels=80)`: htk=False, norm='slaney', fmin 0, fmax 8000), §2.3. Computed in f64, stored f32.
pub fn mel_filterbank() -> Vec<f32> {
    // Slaney's Hz↔mel: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    let hz_to_mel = |f: f64| {
        if f >= MIN_LOG_HZ {
            MIN_LOG_MEL + (f / MIN_LOG_HZ).ln() / logstep
        } else {
            f / F_SP
        }
    };
    let mel_to_hz = |m: f64| {
        if m >= MIN_LOG_MEL {
            MIN_LOG_HZ * (logstep * (m - MIN_LOG_MEL)).exp()
        } else {
            m * F_SP
        }
    };
    let sr = super::SAMPLE_RATE as f64;
    let top = hz_to_mel(sr / 2.0);
    // N_MELS + 2 band edges evenly spaced in mel.
    let h: Vec<f64> = (0..N_MELS + 2)
        .map(|i| mel_to_hz(top * i as f64 / (N_MELS + 1) as f64))
        .collect();
    let mut w = vec![0f32; N_MELS * N_FREQ];
    for i in 0..N_MELS {
        let enorm = 2.0 / (h[i + 2] - h[i]);
        for j in 0..N_FREQ {
            let f = j as f64 * sr / N_FFT as f64; // bin j is at 40·j Hz
            let lower = (f - h[i]) / (h[i + 1] - h[i]);
            let upper = (h[i + 2] - f) / (h[i + 2] - h[i + 1]);
            w[i * N_FREQ + j] = (lower.min(upper).max(0.0) * enorm) as f32;
        }
    }
    w
}

/// One mel band as its nonzero run of bins: `mel = Σ weights[k]·power[start + k]`.
struct Band {
    start: usize,
    weights: Vec<f32>,
}

fn sparse_bands() -> Vec<Band> {
    let w = mel_filterbank();
    w.chunks_exact(N_FREQ)
        .map(|row| {
            let start = row.iter().position(|&v| v != 0.0).unwrap_or(0);
            let end = row.iter().rposition(|&v| v != 0.0).map_or(start, |e| e + 1);
            Band {
                start,
                weights: row[start..end].to_vec(),
            }
        })
        .collect()
}

/// Reflect index into `0..n` (numpy `pad(mode="reflect")`, repeated for very short inputs).
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let i = i.rem_euclid(period);
    (if i >= n as isize { period - i } else { i }) as usize
}

/// The log-mel spectrogram of 16 kHz mono `samples` (§2): returns `(mel, T)` with `mel` the
/// row-major `[80, T]` matrix (band-major: `mel[b·T + t]`), ready to wrap as an engine tensor
/// of shape `[80, T]` on any device.
///
/// STFT: n_fft 400, hop 160, periodic Hann, centred with reflect padding of 200, last frame
/// dropped → `T = len/160` (3000 in [`MelMode::Whisper`]). Then power, Slaney mel,
/// `log10(max(·, 1e-10))`, `max(x, max − 8)`, `(x + 4)/4`. Frames are computed in parallel
/// (rayon), two real frames per complex FFT. Empty input in [`MelMode::Osum`] gives `T = 0`.
pub fn log_mel(samples: &[f32], mode: MelMode) -> (Vec<f32>, usize) {
    let padded_input;
    let x: &[f32] = match mode {
        MelMode::Osum => samples,
        MelMode::Whisper => {
            let mut v = samples[..samples.len().min(WHISPER_SAMPLES)].to_vec();
            v.resize(WHISPER_SAMPLES, 0.0);
            padded_input = v;
            &padded_input
        }
    };
    let t = x.len() / HOP;
    if t == 0 {
        return (Vec::new(), 0);
    }
    // Centre: reflect-pad N_FFT/2 each side; frame f starts at f·HOP in the padded signal.
    let half = (N_FFT / 2) as isize;
    let padded: Vec<f32> = (-half..x.len() as isize + half)
        .map(|i| x[reflect(i, x.len())])
        .collect();
    let window: Vec<f32> = (0..N_FFT)
        .map(|n| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos()) as f32)
        .collect();
    let fft = Fft::new(N_FFT);
    let bands = sparse_bands();

    // Frame-major log10 mel, [T][80]; one task per pair of frames.
    let mut frames = vec![0f32; t * N_MELS];
    frames.par_chunks_mut(2 * N_MELS).enumerate().for_each_init(
        || {
            (
                vec![C::default(); N_FFT],
                vec![C::default(); N_FFT],
                vec![0f32; 2 * N_FREQ],
            )
        },
        |(z, y, power), (pair, out)| {
            let f0 = 2 * pair;
            let two = out.len() == 2 * N_MELS;
            // z = frame f0 + i·frame f0+1 (the second may not exist).
            for n in 0..N_FFT {
                let a = padded[f0 * HOP + n] * window[n];
                let b = if two {
                    padded[(f0 + 1) * HOP + n] * window[n]
                } else {
                    0.0
                };
                z[n] = C { re: a, im: b };
            }
            fft.forward(z, y);
            // Split: X_a[k] = (Y[k] + conj Y[N−k])/2, X_b[k] = (Y[k] − conj Y[N−k])/(2i).
            for k in 0..N_FREQ {
                let p = y[k];
                let q = y[(N_FFT - k) % N_FFT];
                let (ar, ai) = (0.5 * (p.re + q.re), 0.5 * (p.im - q.im));
                let (br, bi) = (0.5 * (p.im + q.im), -0.5 * (p.re - q.re));
                power[k] = ar * ar + ai * ai;
                power[N_FREQ + k] = br * br + bi * bi;
            }
            for (f, o) in out.chunks_exact_mut(N_MELS).enumerate() {
                let p = &power[f * N_FREQ..(f + 1) * N_FREQ];
                for (m, band) in o.iter_mut().zip(&bands) {
                    let s: f32 = band
                        .weights
                        .iter()
                        .zip(&p[band.start..])
                        .map(|(w, v)| w * v)
                        .sum();
                    *m = s.max(1e-10).log10();
                }
            }
        },
    );
    let max = frames
        .par_iter()
        .copied()
        .reduce(|| f32::NEG_INFINITY, f32::max);
    let floor = max - 8.0;
    let mut mel = vec![0f32; N_MELS * t];
    mel.par_chunks_mut(t).enumerate().for_each(|(b, row)| {
        for (f, v) in row.iter_mut().enumerate() {
            *v = (frames[f * N_MELS + b].max(floor) + 4.0) / 4.0;
        }
    });
    (mel, t)
}

/// [`log_mel`] as an engine tensor: f32 `[80, T]` on `device` (the layout the Whisper encoder's
/// first conv1d takes after adding a batch dimension).
pub fn log_mel_tensor(samples: &[f32], mode: MelMode, device: &Arc<dyn Device>) -> Result<Tensor> {
    let (mel, t) = log_mel(samples, mode);
    Tensor::from_vec(mel, &[N_MELS, t], device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// §2.3's check values for the filterbank (tolerance 1e-6 / 1e-4 for the f32 sum).
    #[test]
    fn filterbank_matches_reference_checks() {
        let w = mel_filterbank();
        let row0: Vec<(usize, f32)> = w[..N_FREQ]
            .iter()
            .copied()
            .enumerate()
            .filter(|&(_, v)| v != 0.0)
            .collect();
        assert_eq!(row0.len(), 1, "row 0 nonzeros: {row0:?}");
        assert_eq!(row0[0].0, 1);
        assert!(
            (row0[0].1 - 0.0248626).abs() < 1e-6,
            "row 0 weight {}",
            row0[0].1
        );
        let total: f64 = w.iter().map(|&v| v as f64).sum();
        assert!((total - 1.99902).abs() < 1e-4, "sum of weights {total}");
    }

    #[test]
    fn shapes_per_mode() {
        let x: Vec<f32> = (0..16000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let (m, t) = log_mel(&x, MelMode::Osum);
        assert_eq!((t, m.len()), (100, 80 * 100));
        let (m, t) = log_mel(&x, MelMode::Whisper);
        assert_eq!((t, m.len()), (3000, 80 * 3000));
        assert!(m.iter().all(|v| v.is_finite()));
        let long = vec![0.1f32; WHISPER_SAMPLES + 5000];
        assert_eq!(log_mel(&long, MelMode::Whisper).1, 3000);
    }

    #[test]
    fn tensor_has_the_same_values() {
        let x: Vec<f32> = (0..3200).map(|i| (i as f32 * 0.3).cos() * 0.2).collect();
        let dev = crate::engine::cpu_device();
        let tensor = log_mel_tensor(&x, MelMode::Osum, &dev).unwrap();
        assert_eq!(tensor.shape(), &[N_MELS, 20]);
        assert_eq!(
            tensor.to_vec::<f32>().unwrap(),
            log_mel(&x, MelMode::Osum).0
        );
    }

    #[test]
    fn tiny_and_empty_inputs() {
        assert_eq!(log_mel(&[], MelMode::Osum), (Vec::new(), 0));
        assert_eq!(log_mel(&[0.5; 100], MelMode::Osum).1, 0);
        let (m, t) = log_mel(&[0.5; 170], MelMode::Osum);
        assert_eq!(t, 1);
        assert!(m.iter().all(|v| v.is_finite()));
        // Silence: every value is log10(1e-10) clamped = (-10 + 4)/4.
        let (m, _) = log_mel(&[], MelMode::Whisper);
        assert!(m.iter().all(|&v| v == -1.5));
    }

    #[test]
    fn reflect_matches_numpy() {
        // numpy.pad([0,1,2,3], 5, mode="reflect") = [1,2,3,2,1, 0,1,2,3, 2,1,0,1,2]
        let got: Vec<usize> = (-5..9).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, vec![1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2]);
    }
}
