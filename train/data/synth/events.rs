//! Sound events made procedurally (no downloaded audio): each event label of REFERENCE §6 has a
//! small recipe of noise bursts, voiced tones with pitch contours and filters that gives it a
//! distinct, recognisable shape. They are cartoons of the real sounds, labelled as such in the
//! README; the benchmark asks a model to tell them apart, not to recognise real recordings.

use super::dsp::{add_at, envelope, noise, normalize_peak, samples, voiced, Biquad};
use crate::engine::Rng;

/// The event labels the generator makes (every label of [`crate::model::tags::Task::Event`]).
pub const EVENTS: &[&str] = &[
    "laugh",
    "cough",
    "cry",
    "screaming",
    "sigh",
    "throat clearing",
    "sneeze",
    "other",
];

fn between(rng: &mut Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.uniform()
}

/// A vowel-like sound: a voiced source through two formant band-passes, plus breath noise.
fn vowel(
    rng: &mut Rng,
    secs: f32,
    f0: impl Fn(f32) -> f32,
    formants: (f32, f32),
    breath: f32,
) -> Vec<f32> {
    let n = samples(secs);
    let src = voiced(rng, n, 30, f0);
    let mut out = Biquad::bandpass(formants.0, 4.0).run(&src);
    let f2 = Biquad::bandpass(formants.1, 5.0).run(&src);
    let air = Biquad::bandpass(formants.1, 1.5).run(&noise(rng, n));
    for ((o, b), a) in out.iter_mut().zip(&f2).zip(&air) {
        *o += 0.6 * b + breath * a;
    }
    out
}

/// A filtered noise burst.
fn burst(rng: &mut Rng, secs: f32, centre: f32, q: f32) -> Vec<f32> {
    let n = samples(secs);
    Biquad::bandpass(centre, q).run(&noise(rng, n))
}

/// The samples of one event at 16 kHz, peak 1.0, 0.15–1.5 s long.
pub fn render(label: &str, rng: &mut Rng) -> Result<Vec<f32>, String> {
    let mut out = Vec::new();
    match label {
        "laugh" => {
            // "ha-ha-ha": 3–6 breathy voiced syllables at ~5 per second, falling in pitch/level.
            let k = 3 + rng.below(4) as usize;
            let f0 = between(rng, 180.0, 320.0);
            for i in 0..k {
                let fi = f0 * (1.0 - 0.04 * i as f32);
                let mut syl = vowel(rng, 0.12, |_| fi, (750.0, 1250.0), 0.8);
                envelope(&mut syl, 0.01, 0.06);
                add_at(
                    &mut out,
                    &syl,
                    samples(0.2 * i as f32),
                    1.0 - 0.1 * i as f32,
                );
            }
        }
        "cough" => {
            // 1–3 explosive bursts: sharp attack, quick decay, mid-band noise with a voiced edge.
            for i in 0..1 + rng.below(3) as usize {
                let len = between(rng, 0.15, 0.25);
                let centre = between(rng, 600.0, 1200.0);
                let mut b = burst(rng, len, centre, 0.8);
                let v = vowel(rng, len, |_| 140.0, (500.0, 1500.0), 0.3);
                for (x, y) in b.iter_mut().zip(&v) {
                    *x += 0.3 * y;
                }
                envelope(&mut b, 0.004, len * 0.8);
                add_at(&mut out, &b, samples(0.32 * i as f32), 1.0);
            }
        }
        "cry" => {
            // Wails: a high voiced tone with vibrato, each rising then falling, with sobbing gaps.
            let f0 = between(rng, 380.0, 520.0);
            for i in 0..2 {
                let len = between(rng, 0.45, 0.6);
                let mut w = vowel(
                    rng,
                    len,
                    |t| {
                        f0 * (1.0 + 0.15 * (t / len * std::f32::consts::PI).sin())
                            * (1.0 + 0.03 * (2.0 * std::f32::consts::PI * 6.0 * t).sin())
                    },
                    (900.0, 1700.0),
                    0.4,
                );
                envelope(&mut w, 0.05, 0.2);
                add_at(&mut out, &w, samples(0.7 * i as f32), 1.0);
            }
        }
        "screaming" => {
            // One loud, high, rough tone that rises.
            let len = between(rng, 0.7, 1.1);
            let f0 = between(rng, 800.0, 1100.0);
            let mut s = vowel(
                rng,
                len,
                |t| f0 * (1.0 + 0.2 * t / len),
                (1600.0, 2800.0),
                0.5,
            );
            for x in s.iter_mut() {
                *x = (2.5 * *x).tanh();
            }
            envelope(&mut s, 0.03, 0.15);
            out = s;
        }
        "sigh" => {
            // A long breath: low-mid noise that swells and fades, no voicing.
            let len = between(rng, 0.8, 1.3);
            let centre = between(rng, 500.0, 900.0);
            let mut s = burst(rng, len, centre, 0.7);
            let n = s.len();
            for (i, x) in s.iter_mut().enumerate() {
                let t = i as f32 / n as f32;
                *x *= (t / 0.3).min(1.0) * (1.0 - t).powf(1.5);
            }
            out = s;
        }
        "throat clearing" => {
            // Two low rattling pushes: low-passed noise amplitude-modulated at ~30 Hz.
            for i in 0..2 {
                let len = between(rng, 0.22, 0.35);
                let mut s = Biquad::lowpass(450.0).run(&noise(rng, samples(len)));
                let rate = between(rng, 25.0, 40.0);
                for (j, x) in s.iter_mut().enumerate() {
                    let t = j as f32 / 16_000.0;
                    *x *= 0.6 + 0.4 * (2.0 * std::f32::consts::PI * rate * t).sin();
                }
                envelope(&mut s, 0.02, 0.08);
                add_at(&mut out, &s, samples(0.4 * i as f32), 1.0 - 0.3 * i as f32);
            }
        }
        "sneeze" => {
            // "ah—" rising voiced inhale, then a sharp high-frequency "choo" burst.
            let len = between(rng, 0.3, 0.45);
            let f0 = between(rng, 200.0, 300.0);
            let mut ah = vowel(
                rng,
                len,
                |t| f0 * (1.0 + 0.5 * t / len),
                (800.0, 1300.0),
                0.6,
            );
            envelope(&mut ah, 0.1, 0.05);
            add_at(&mut out, &ah, 0, 0.5);
            let mut choo = Biquad::highpass(2500.0).run(&noise(rng, samples(0.25)));
            envelope(&mut choo, 0.003, 0.2);
            add_at(&mut out, &choo, samples(len + 0.05), 1.0);
        }
        "other" => {
            // Not a vocal sound: a short run of decaying chime tones (a doorbell-like cue).
            let base = between(rng, 500.0, 900.0);
            for (i, ratio) in [1.0, 1.26, 1.5].iter().enumerate() {
                let f = base * ratio;
                let mut tone: Vec<f32> = (0..samples(0.35))
                    .map(|j| (2.0 * std::f32::consts::PI * f * j as f32 / 16_000.0).sin())
                    .collect();
                envelope(&mut tone, 0.005, 0.3);
                add_at(&mut out, &tone, samples(0.18 * i as f32), 1.0);
            }
        }
        other => return Err(format!("no recipe for the sound event `{other}`")),
    }
    normalize_peak(&mut out, 1.0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::dsp::rms;
    use super::*;
    use crate::model::tags::Task;

    #[test]
    fn every_event_label_has_a_seeded_recipe_of_plausible_length() {
        assert_eq!(Some(EVENTS), Task::Event.labels());
        for &e in EVENTS {
            let a = render(e, &mut Rng::new(5)).unwrap();
            let b = render(e, &mut Rng::new(5)).unwrap();
            assert_eq!(a, b, "{e}");
            let secs = a.len() as f32 / 16_000.0;
            assert!((0.15..=1.6).contains(&secs), "{e}: {secs} s");
            assert!(rms(&a) > 0.05, "{e} is nearly silent");
        }
        assert!(render("applause", &mut Rng::new(1)).is_err());
    }
}
