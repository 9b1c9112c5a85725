//! `osum chat`: a text-only prompt to a preset's LLM, the reply streamed to stdout. By default
//! the text is continued as written (`"The capital of France is"` → `" Paris."`); `--chat` wraps
//! it in the preset's chat template as a user turn. An OSUM preset (`osum-tiny`) answers with its
//! trained LoRA (`--checkpoint`, else the shipped one): what the speech training left of the
//! LLM's text answers.

use clap::Args;
use osum::engine::Device;
use osum::model::llm::{GenerationConfig, Strategy};
use osum::model::osum::{OsumModel, LORA_FILE};
use osum::model::preset::Preset;
use osum::model::prompt::Segment;
use osum::model::text::TextModel;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Options of `osum chat`.
#[derive(Args)]
pub struct ChatArgs {
    /// A built-in preset (smollm2, openpangu-7b, qwen2-7b) or a path to a preset .json file.
    #[arg(long, default_value = "smollm2")]
    preset: String,
    /// OSUM presets only: the trained checkpoint folder whose LoRA the LLM answers with
    /// (default: the preset's shipped checkpoint, e.g. `assets/osum-tiny`).
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<PathBuf>,
    /// Wrap the text in the preset's chat template as a user turn (default: continue the text
    /// as written).
    #[arg(long)]
    chat: bool,
    /// With --chat: system prompt instead of the template's default.
    #[arg(long, requires = "chat")]
    system: Option<String>,
    /// At most this many new tokens (default: the preset's).
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// Sample at this temperature instead of greedy decoding.
    #[arg(long)]
    temperature: Option<f32>,
    /// With --temperature: keep the k most likely tokens (0 = all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// With --temperature: nucleus sampling threshold.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// With --temperature: the seed (same seed, same reply).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Beam search with this many beams instead of greedy decoding.
    #[arg(long, conflicts_with = "temperature")]
    beams: Option<usize>,
    /// Repetition penalty (default: the preset's).
    #[arg(long)]
    repetition_penalty: Option<f32>,
    /// Print one JSON object (prompt ids, reply, tokens, timings) instead of streaming text.
    #[arg(long)]
    json: bool,
    /// The prompt.
    #[arg(value_name = "TEXT")]
    text: String,
}

/// Load the preset's LLM, build the prompt, stream the reply.
pub fn run(a: ChatArgs, dev: &Arc<dyn Device>) -> Result<(), String> {
    let preset = Preset::find(&a.preset).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let model = if preset.checkpoint.is_some() {
        // A released checkpoint holds the LLM's weights with the speech parts: load it whole.
        OsumModel::open(preset.clone(), a.checkpoint.as_deref(), dev)?.text
    } else if preset.adapter.is_some() {
        // A trained preset: the LLM and its LoRA only; a text prompt needs no encoder.
        let checkpoint = preset.checkpoint_or_shipped(a.checkpoint.as_deref());
        match &checkpoint {
            None => eprintln!(
                "note: no --checkpoint and no shipped one: LoRA is zero, so this is {}'s base LLM",
                preset.name
            ),
            // Without its LoRA a checkpoint would change nothing: say so rather than answer
            // with the base LLM.
            Some(dir) if !dir.join(LORA_FILE).is_file() => {
                return Err(format!(
                    "--checkpoint {}: no {LORA_FILE} in it (a trained checkpoint folder holds one)",
                    dir.display()
                ))
            }
            Some(_) => {}
        }
        OsumModel::open_llm(&preset, checkpoint.as_deref(), dev)?
    } else if let Some(dir) = &a.checkpoint {
        return Err(format!(
            "--checkpoint {}: preset {} is a text model without LoRA; a checkpoint needs an OSUM \
             preset such as osum-tiny",
            dir.display(),
            preset.name
        ));
    } else {
        TextModel::open_source(&preset.llm, &osum::model::home(), preset.template, dev)
            .map_err(|e| e.to_string())?
    };
    let load_s = t0.elapsed().as_secs_f64();
    let segs = if a.chat {
        let system = a.system.as_deref().or(preset.system.as_deref());
        preset.template.build(system, &a.text, false, false)
    } else {
        vec![Segment::Text(a.text.clone())]
    };
    let prompt: Vec<u32> = model
        .encode_segments(&segs)
        .map_err(|e| e.to_string())?
        .concat();
    if prompt.is_empty() {
        return Err("the prompt is empty".into());
    }
    let strategy = match (a.temperature, a.beams) {
        (Some(temperature), _) => Strategy::Sample {
            temperature,
            top_k: a.top_k,
            top_p: a.top_p,
            seed: a.seed,
        },
        (None, Some(num_beams)) => Strategy::Beam {
            num_beams,
            length_penalty: 1.0,
        },
        (None, None) => Strategy::Greedy,
    };
    let cfg = GenerationConfig {
        max_new_tokens: a.max_new_tokens.unwrap_or(preset.generation.max_new_tokens),
        eos_ids: model.stop_ids(),
        repetition_penalty: a
            .repetition_penalty
            .unwrap_or(preset.generation.repetition_penalty),
        strategy,
    };
    let t1 = Instant::now();
    let mut stdout = std::io::stdout();
    let json = a.json;
    let (gen, text) = model
        .generate_text(&prompt, None, &cfg, &mut |piece| {
            if !json {
                let _ = stdout.write_all(piece.as_bytes());
                let _ = stdout.flush();
            }
        })
        .map_err(|e| e.to_string())?;
    let gen_s = t1.elapsed().as_secs_f64();
    let tps = gen.tokens.len() as f64 / gen_s.max(1e-9);
    if json {
        let v = serde_json::json!({
            "preset": preset.name, "device": dev.name(), "prompt_ids": prompt, "reply": text,
            "tokens": gen.tokens, "stopped_at_eos": gen.eos.is_some(),
            "load_s": load_s, "generate_s": gen_s, "tokens_per_s": tps,
        });
        println!("{v}");
    } else {
        println!();
        eprintln!(
            "[{} tokens in {gen_s:.2} s, {tps:.1} tokens/s; load {load_s:.2} s; device {}]",
            gen.tokens.len(),
            dev.name()
        );
    }
    Ok(())
}
