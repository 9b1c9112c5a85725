//! `osum transcribe`: speech → text with a Whisper checkpoint (greedy, 30 s windows read from
//! the file one at a time).

use clap::Args;
use osum::engine::Device;
use osum::model::audio;
use osum::model::whisper::transcribe::Transcriber;
use osum::model::whisper::WhisperError;
use std::path::PathBuf;
use std::sync::Arc;

/// Options of `osum transcribe`.
#[derive(Args)]
pub struct TranscribeArgs {
    /// A model directory under the model home (OSUM_HOME, else ./models), or a path to one;
    /// it holds a CTranslate2 `model.bin` and `tokenizer.json` (`osum setup` installs tiny.en).
    #[arg(long, default_value = "whisper-tiny.en")]
    model: String,
    /// Print one JSON object per file: file, text, tokens, and the 30 s segments.
    #[arg(long)]
    json: bool,
    /// Sample rate of headerless `.raw`/`.pcm` s16le input (WAV files carry their own).
    #[arg(long, value_name = "HZ")]
    raw_rate: Option<u32>,
    /// Audio files: WAV (any rate and channel count) or raw s16le.
    #[arg(required = true, value_name = "AUDIO")]
    audio: Vec<PathBuf>,
}

/// Load the model once, then transcribe each file in order.
pub fn run(a: TranscribeArgs, dev: &Arc<dyn Device>) -> Result<(), String> {
    // Every file's header first: a broken last file is reported before any model is loaded.
    for path in &a.audio {
        audio::AudioStream::open(path, a.raw_rate).map_err(|e| e.to_string())?;
    }
    let dir = {
        let p = PathBuf::from(&a.model);
        if p.is_dir() {
            p
        } else {
            osum::model::home().join(&a.model)
        }
    };
    if !dir.join("model.bin").exists() {
        return Err(format!(
            "no model at {} (run `osum setup`, or pass --model DIR)",
            dir.join("model.bin").display()
        ));
    }
    let t = Transcriber::open(&dir, dev).map_err(|e| e.to_string())?;
    for path in &a.audio {
        // Window by window: hours of audio in a bounded amount of memory.
        let mut stream = audio::AudioStream::open(path, a.raw_rate).map_err(|e| e.to_string())?;
        let mut segs = Vec::new();
        let mut audio_error = None;
        let done = t.transcribe_stream(
            |want| {
                stream.read(want).map_err(|e| {
                    let msg = e.to_string();
                    audio_error = Some(e);
                    WhisperError::Invalid(msg)
                })
            },
            |seg| {
                segs.push(seg);
                Ok(())
            },
        );
        if let Some(e) = audio_error {
            return Err(e.to_string());
        }
        done.map_err(|e| e.to_string())?;
        let text = segs
            .iter()
            .map(|s| s.text.trim())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if a.json {
            let segments: Vec<_> = segs
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "start": s.start, "end": s.end, "text": s.text.trim(), "tokens": s.tokens,
                    })
                })
                .collect();
            let tokens: Vec<u32> = segs.iter().flat_map(|s| s.tokens.iter().copied()).collect();
            let line = serde_json::json!({
                "file": path.display().to_string(), "text": text, "tokens": tokens,
                "segments": segments,
            });
            println!("{line}");
        } else if a.audio.len() > 1 {
            println!("{}: {text}", path.display());
        } else {
            println!("{text}");
        }
    }
    Ok(())
}
