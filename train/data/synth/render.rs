//! Turning one planned clip into a 16 kHz mono WAV with the external tools: espeak-ng or flite
//! speaks the sentence, sox resamples and applies the prosody effects, whispering and sound events
//! are made here ([`super::whispering`], [`super::events`]) and sox mixes them in and sets the final
//! level. Every sox call runs with `-R -D` (repeatable, no dither) so the same plan gives the same
//! bytes.

use super::dsp::{self, samples, RATE};
use super::events;
use super::made_voices;
use super::prosody::Prosody;
use super::voices::{Engine, Voice, VOICES};
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

/// Run `cmd` to completion, capturing its output; an error names the program that would not
/// start.
fn output_of(cmd: &mut Command) -> Result<std::process::Output, String> {
    cmd.output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))
}

/// What a command prints to stdout (for listings and version lines).
pub(super) fn stdout_of(cmd: &mut Command) -> Result<String, String> {
    Ok(String::from_utf8_lossy(&output_of(cmd)?.stdout).into_owned())
}

/// Whether `espeak-ng --voices=variant` output lists the variant `name`.
pub(super) fn lists_variant(listing: &str, name: &str) -> bool {
    listing.contains(&format!("!v/{name} "))
}

/// Run `cmd`; a non-zero exit is an error quoting its stderr.
fn run(cmd: &mut Command) -> Result<(), String> {
    let out = output_of(cmd)?;
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
            sox_pitch_cents += 100.0 * p.f0_semitones;
            let mut cmd = Command::new("flite");
            cmd.args(["-voice", spec.voice.name, "--setf"])
                .arg(format!("duration_stretch={:.3}", 1.0 / p.rate));
            if let Some(hz) = spec.voice.f0_hz {
                cmd.arg("--setf").arg(format!("int_f0_target_mean={hz}"));
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
