//! `osum ask`: an instruction about a speech clip, answered by the OSUM model with task tags and
//! text; `--json` prints the parsed fields (timings go to stderr, so the JSON line depends only on
//! the answer).

use clap::Args;
use osum::engine::Device;
use osum::model::audio;
use osum::model::llm::{GenerationConfig, Strategy};
use osum::model::osum::{OsumModel, MAX_SECONDS};
use osum::model::preset::Preset;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Options of `osum ask`.
#[derive(Args)]
pub struct AskArgs {
    /// A built-in preset (osum-tiny) or a path to a preset .json file.
    #[arg(long, default_value = "osum-tiny")]
    preset: String,
    /// A trained checkpoint folder (adapter.safetensors, lora.safetensors). Default: the
    /// preset's shipped checkpoint (osum-tiny: `assets/osum-tiny`); without either the adapter
    /// is untrained and the answer is noise.
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<PathBuf>,
    /// At most this many new tokens (default: the preset's).
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// Beam search with this many beams instead of greedy decoding.
    #[arg(long)]
    beams: Option<usize>,
    /// Sample rate of headerless `.raw`/`.pcm` s16le input (WAV files carry their own).
    #[arg(long, value_name = "HZ")]
    raw_rate: Option<u32>,
    /// Print one JSON object: the parsed answer (tasks, transcript, labels) and raw text; the
    /// timings stay on stderr.
    #[arg(long)]
    json: bool,
    /// The audio: WAV (any rate and channel count) or raw s16le, at most 30 s.
    #[arg(value_name = "AUDIO")]
    audio: PathBuf,
    /// The instruction, e.g. "Transcribe the audio and tell me the speaker's gender."
    #[arg(value_name = "INSTRUCTION")]
    instruction: String,
}

/// Load the model, answer, print.
pub fn run(a: AskArgs, dev: &Arc<dyn Device>) -> Result<(), String> {
    let preset = Preset::find(&a.preset).map_err(|e| e.to_string())?;
    let samples = audio::load_clip(&a.audio, a.raw_rate, MAX_SECONDS).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let max_new = a.max_new_tokens.unwrap_or(preset.generation.max_new_tokens);
    let penalty = preset.generation.repetition_penalty;
    let checkpoint = preset.checkpoint_or_shipped(a.checkpoint.as_deref());
    let model = OsumModel::open(preset, checkpoint.as_deref(), dev)?;
    if !model.trained {
        eprintln!(
            "note: no --checkpoint and no shipped one: the adapter is untrained (random) and LoRA is zero, so the \
             answer is noise; train one with `osum train`"
        );
    }
    let load_s = t0.elapsed().as_secs_f64();
    let cfg = GenerationConfig {
        max_new_tokens: max_new,
        eos_ids: model.stop_ids(),
        repetition_penalty: penalty,
        strategy: match a.beams {
            Some(num_beams) => Strategy::Beam {
                num_beams,
                length_penalty: 1.0,
            },
            None => Strategy::Greedy,
        },
    };
    let t1 = Instant::now();
    let mut stdout = std::io::stdout();
    let json = a.json;
    let ans = model.ask(&samples, &a.instruction, &cfg, &mut |piece| {
        if !json {
            let _ = stdout.write_all(piece.as_bytes());
            let _ = stdout.flush();
        }
    })?;
    let gen_s = t1.elapsed().as_secs_f64();
    if json {
        // Only what the model answered, so the line is the same bytes on every device and run
        // (timings go to stderr below).
        let mut v = ans.parsed.to_json();
        v["raw"] = ans.text.clone().into();
        v["audio"] = a.audio.display().to_string().into();
        v["instruction"] = a.instruction.clone().into();
        v["trained"] = model.trained.into();
        v["speech_positions"] = ans.speech_positions.into();
        v["tokens"] = ans.tokens.len().into();
        println!("{v}");
    } else {
        println!();
    }
    eprintln!(
        "[{} tokens in {gen_s:.2} s; {} speech positions; load {load_s:.2} s; device {}]",
        ans.tokens.len(),
        ans.speech_positions,
        dev.name()
    );
    Ok(())
}
