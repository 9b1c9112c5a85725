//! Turning one planned clip into a 16 kHz mono WAV with the external tools: espeak-ng or flite
//! speaks the sentence, sox resamples and applies the prosody effects, whispering and sound events
//! are made here ([`super::whispering`], [`super::events`]) and sox mixes them in and sets the final
//! level. Every sox call runs with `-R -D` (repeatable, no dither) so the same plan gives the same
//! bytes.

use super::dsp::{self, samples, RATE};
use super::events;
use super::made_voices;
use super::prosody::Prosody;
use super::voices::{flite_moves_f0, Engine, Voice, VOICES};
use super::whispering::whisper;
use crate::engine::Rng;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Debian packages that provide the tools (README, `.ci/run`).
pub const INSTALL_HINT: &str = "sudo apt-get install espeak-ng flite sox";

/// Where a sound event sits relative to the speech.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Placement {
    /// The event, a short gap, then the speech.
    Before,
    /// The speech, a short gap, then the event.
    After,
    /// Inside the speech, softer (speech over a background sound).
    Over,
}

/// A sound event to mix into a clip.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSpec {
    /// The event label (one of [`events::EVENTS`]).
    pub label: &'static str,
    /// Where it goes.
    pub placement: Placement,
    /// Its peak relative to the speech's peak.
    pub gain: f32,
    /// Silence between event and speech (Before/After) or the start as a fraction of the speech
    /// (Over).
    pub offset: f32,
}

/// Everything needed to render one clip.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipSpec {
    /// File stem, also the manifest id.
    pub id: String,
    /// Who speaks.
    pub voice: Voice,
    /// What is said.
    pub text: String,
    /// How (label proxies and per-clip jitter already folded in).
    pub prosody: Prosody,
    /// An optional sound event.
    pub event: Option<EventSpec>,
    /// Seed for the noise of whispering and events.
    pub seed: u64,
}

/// Check that espeak-ng, flite and sox run and that the voices the benchmark uses exist; the
/// error lists every missing tool or voice and how to install it.
pub fn check_tools() -> Result<(), String> {
    let mut missing = Vec::new();
    for tool in ["espeak-ng", "flite", "sox"] {
        if Command::new(tool).arg("--version").output().is_err() {
            missing.push(tool);
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "`osum synth` needs {} (not found on PATH): it speaks with espeak-ng and flite and \
             edits audio with sox; install them with `{INSTALL_HINT}` (Debian/Ubuntu)",
            missing.join(", ")
        ));
    }
    let flite = stdout_of(Command::new("flite").arg("-lv"))?;
    let espeak = stdout_of(Command::new("espeak-ng").arg("--voices=variant"))?;
    let absent: Vec<String> = VOICES
        .iter()
        .filter(|v| match v.engine {
            Engine::Flite => !flite.split_whitespace().any(|w| w == v.name),
            Engine::Espeak => !lists_variant(&espeak, v.name),
            Engine::EspeakMade => false,
        })
        .map(|v| v.id())
        .collect();
    if !absent.is_empty() {
        return Err(format!(
            "voices missing from the installed synthesizers: {} (reinstall with `{INSTALL_HINT}`)",
            absent.join(", ")
        ));
    }
    Ok(())
}

/// What a command prints to stdout (for listings and version lines).
pub(super) fn stdout_of(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `espeak-ng --voices=variant` output lists the variant `name`.
pub(super) fn lists_variant(listing: &str, name: &str) -> bool {
    listing.contains(&format!("!v/{name} "))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{:?} failed ({}): {}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

fn sox() -> Command {
    let mut c = Command::new("sox");
    c.args(["-R", "-D", "-V1"]);
    c
}

fn wav_seconds(path: &Path) -> Result<f32, String> {
    let r = hound::WavReader::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(r.duration() as f32 / r.spec().sample_rate as f32)
}

fn read_samples(path: &Path) -> Result<Vec<f32>, String> {
    crate::model::audio::load(path, None).map_err(|e| e.to_string())
}

/// Render `spec` to `out` (16 kHz mono 16-bit WAV), using `work` for intermediate files (removed
/// afterwards). Returns the clip's length in seconds.
pub fn render_clip(spec: &ClipSpec, work: &Path, out: &Path) -> Result<f32, String> {
    let p = &spec.prosody;
    let tmp = |ext: &str| -> PathBuf { work.join(format!("{}.{ext}.wav", spec.id)) };
    let (tts, speech, event_wav) = (tmp("tts"), tmp("speech"), tmp("event"));
    // 1. Speech synthesis at the engine's own rate.
    let mut sox_pitch_cents = 100.0 * p.spectrum_semitones;
    match spec.voice.engine {
        Engine::Espeak | Engine::EspeakMade => {
            // espeak-ng's -p spans about two octaves over 0–99: ~4 steps per semitone.
            let pitch = (50.0 + 4.0 * p.f0_semitones).round().clamp(0.0, 99.0);
            let wpm = (165.0 * p.rate).round().clamp(80.0, 450.0);
            let mut cmd = Command::new("espeak-ng");
            if spec.voice.engine == Engine::EspeakMade {
                cmd.arg(format!("--path={}", made_voices::data_root(work).display()));
            }
            run(cmd
                .arg("-v")
                .arg(format!("en-us+{}", spec.voice.name))
                .args(["-s", &format!("{wpm}"), "-p", &format!("{pitch}"), "-w"])
                .arg(&tts)
                .arg(&spec.text))?;
        }
        Engine::Flite => {
            let mut cmd = Command::new("flite");
            cmd.args(["-voice", spec.voice.name, "--setf"])
                .arg(format!("duration_stretch={:.3}", 1.0 / p.rate));
            if let Some(hz) = spec.voice.f0_hz {
                cmd.arg("--setf").arg(format!("int_f0_target_mean={hz}"));
            }
            // The F0 proxies move F0 alone, as espeak-ng's -p does; sox `pitch` would move the
            // formants with it and turn a male voice at +7 semitones into a female-sounding one
            // that is still labelled male. Only voices that ignore flite's F0 settings (rms)
            // keep the sox shift.
            if flite_moves_f0(spec.voice.name) {
                if p.f0_semitones != 0.0 {
                    cmd.arg("--setf")
                        .arg(format!("f0_shift={:.4}", 2f32.powf(p.f0_semitones / 12.0)));
                }
            } else {
                sox_pitch_cents += 100.0 * p.f0_semitones;
            }
            run(cmd.args(["-t", &spec.text, "-o"]).arg(&tts))?;
        }
    }
    // The event is made first: placing it before the speech means padding the speech.
    let mut rng = Rng::new(spec.seed);
    let event = match &spec.event {
        Some(e) => Some((e, events::render(e.label, &mut rng)?)),
        None => None,
    };
    let lead_in = match &event {
        Some((e, s)) if e.placement == Placement::Before => s.len() as f32 / RATE as f32 + e.offset,
        _ => 0.0,
    };
    let plain = !p.whisper && event.is_none();
    // 2. Resample + prosody effects; straight to the final file when nothing else follows.
    let mut cmd = sox();
    cmd.arg(&tts)
        .args(["-r", "16000", "-c", "1", "-b", "16"])
        .arg(if plain { out } else { &speech });
    if sox_pitch_cents.abs() > 1.0 {
        cmd.args(["pitch", &format!("{sox_pitch_cents:.0}")]);
    }
    if let Some((hz, depth)) = p.tremolo {
        cmd.args(["tremolo", &format!("{hz}"), &format!("{depth}")]);
    }
    if let Some(g) = p.overdrive_db {
        cmd.args(["overdrive", &format!("{g}")]);
    }
    let level = if plain { p.level_db } else { -1.0 };
    cmd.args(["gain", "-n", &format!("{level:.2}")]);
    if lead_in > 0.0 {
        cmd.args(["pad", &format!("{lead_in:.3}")]);
    }
    run(&mut cmd)?;
    let _ = std::fs::remove_file(&tts);
    if plain {
        return wav_seconds(out);
    }
    // 3. Whispering replaces the voiced speech by noise-vocoded speech.
    if p.whisper {
        let voiced = read_samples(&speech)?;
        let pad = samples(lead_in);
        let mut w = vec![0.0; pad.min(voiced.len())];
        w.extend(whisper(&voiced[pad.min(voiced.len())..], &mut rng));
        dsp::write_wav(&speech, &w)?;
    }
    // 4. Mix the event in (or just set the level).
    let mut cmd = sox();
    match event {
        Some((e, ev)) => {
            let speech_len = samples(wav_seconds(&speech)?);
            let at = match e.placement {
                Placement::Before => 0,
                Placement::After => speech_len + samples(e.offset),
                Placement::Over => (speech_len as f32 * e.offset) as usize,
            };
            let mut placed = vec![0.0f32; at];
            placed.extend(ev.iter().map(|x| x * 0.89 * e.gain));
            dsp::write_wav(&event_wav, &placed)?;
            cmd.args(["-m", "-v", "1"])
                .arg(&speech)
                .args(["-v", "1"])
                .arg(&event_wav);
        }
        None => {
            cmd.arg(&speech);
        }
    }
    cmd.args(["-b", "16"])
        .arg(out)
        .args(["gain", "-n", &format!("{:.2}", p.level_db)]);
    run(&mut cmd)?;
    let _ = std::fs::remove_file(&speech);
    let _ = std::fs::remove_file(&event_wav);
    wav_seconds(out)
}

#[cfg(test)]
mod tests {
    use super::super::prosody::PLAIN;
    use super::*;
    use crate::model::audio::{log_mel, MelMode};

    /// Render `voice` saying a fixed sentence with its F0 moved by `semitones`.
    fn render(voice: &str, semitones: f32, work: &Path) -> Vec<f32> {
        let voice = *VOICES
            .iter()
            .find(|v| v.engine == Engine::Flite && v.name == voice && v.f0_hz.is_none())
            .unwrap();
        let spec = ClipSpec {
            id: format!("{}-{semitones}", voice.name),
            voice,
            text: "the quick brown fox jumped over the lazy dog near the river bank".into(),
            prosody: Prosody {
                f0_semitones: semitones,
                ..PLAIN
            },
            event: None,
            seed: 1,
        };
        let out = work.join(format!("{}.wav", spec.id));
        render_clip(&spec, work, &out).unwrap();
        read_samples(&out).unwrap()
    }

    /// The mean log-mel profile `[80]` of the louder half of the frames (the voiced speech).
    fn mel_profile(samples: &[f32]) -> Vec<f32> {
        let (mel, t) = log_mel(samples, MelMode::Osum);
        let energy: Vec<f32> = (0..t)
            .map(|f| (0..80).map(|b| mel[b * t + f]).sum())
            .collect();
        let mut sorted = energy.clone();
        sorted.sort_by(f32::total_cmp);
        let median = sorted[t / 2];
        let loud: Vec<usize> = (0..t).filter(|&f| energy[f] > median).collect();
        (0..80)
            .map(|b| loud.iter().map(|&f| mel[b * t + f]).sum::<f32>() / loud.len() as f32)
            .collect()
    }

    /// The shift in mel bins (−4..=12) that best lines `moved`'s profile up with `plain`'s over
    /// bins 10–60 (~0.7–3.5 kHz, the formant region): 0 when the spectral envelope stayed put,
    /// ~6 for a whole-spectrum shift by a factor of 1.5.
    fn envelope_shift(plain: &[f32], moved: &[f32]) -> i32 {
        let centred = |xs: &[f32]| -> Vec<f32> {
            let m = xs.iter().sum::<f32>() / xs.len() as f32;
            xs.iter().map(|x| x - m).collect()
        };
        let a = centred(&plain[10..60]);
        let corr = |k: i32| -> f32 {
            let b = centred(&moved[(10 + k) as usize..(60 + k) as usize]);
            let ab: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let bb: f32 = b.iter().map(|y| y * y).sum();
            ab / bb.sqrt().max(1e-6)
        };
        (-4..=12)
            .max_by(|&i, &j| corr(i).total_cmp(&corr(j)))
            .unwrap()
    }

    /// The median F0 (Hz) of the clip's loud 40 ms frames by autocorrelation over 60–400 Hz.
    fn median_f0(xs: &[f32]) -> f32 {
        let (frame, hop) = (640, 160);
        let mut f0s = Vec::new();
        for start in (0..xs.len().saturating_sub(frame)).step_by(hop) {
            let s = &xs[start..start + frame];
            let ac = |lag: usize| -> f32 { (0..frame - lag).map(|i| s[i] * s[i + lag]).sum() };
            let zero = ac(0);
            // Skip near-silent frames (mean square below 1e-4, i.e. -40 dBFS).
            if zero < 1e-4 * frame as f32 {
                continue;
            }
            let best = (40..=266).max_by(|&i, &j| ac(i).total_cmp(&ac(j))).unwrap();
            if ac(best) > 0.5 * zero {
                f0s.push(16000.0 / best as f32);
            }
        }
        f0s.sort_by(f32::total_cmp);
        f0s[f0s.len() / 2]
    }

    #[test]
    fn flite_f0_proxies_move_f0_and_keep_formants_except_on_rms_where_sox_moves_both() {
        if check_tools().is_err() {
            eprintln!("skipped: espeak-ng, flite or sox is missing (`osum setup` installs them)");
            return;
        }
        let work = std::env::temp_dir().join(format!("osum-flite-f0-{}", std::process::id()));
        std::fs::create_dir_all(&work).unwrap();
        let (awb, awb_up) = (render("awb", 0.0, &work), render("awb", 7.0, &work));
        let (rms, rms_up) = (render("rms", 0.0, &work), render("rms", 7.0, &work));
        let _ = std::fs::remove_dir_all(&work);
        // +7 semitones is a factor of 1.498 in F0.
        let ratio = median_f0(&awb_up) / median_f0(&awb);
        assert!((1.35..1.65).contains(&ratio), "awb F0 ratio {ratio}");
        let kept = envelope_shift(&mel_profile(&awb), &mel_profile(&awb_up));
        assert!(kept.abs() <= 1, "awb's envelope moved {kept} mel bins");
        let moved = envelope_shift(&mel_profile(&rms), &mel_profile(&rms_up));
        assert!(moved >= 4, "rms's envelope moved only {moved} mel bins");
    }
}
