//! `osum demo`: the README's main job. Installs the weights when they are missing (`osum setup`),
//! loads osum-tiny with its shipped trained checkpoint, and answers the natural-language
//! instructions of the bundled sample clips (`assets/samples/samples.jsonl`, a manifest in the
//! `osum eval` format; the voices are held out from training), printing each structured answer
//! beside the truth, then the scores and timings. The scoring is `osum eval`'s own.

use super::setup::{self, SetupArgs};
use clap::Args;
use osum::engine::Device;
use osum::model::llm::{GenerationConfig, Strategy};
use osum::model::osum::OsumModel;
use osum::model::preset::Preset;
use osum::train::data::Manifest;
use osum::train::eval::{evaluate, Options};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The sample manifest, relative to the project root.
const SAMPLES: &str = "assets/samples/samples.jsonl";

/// Options of `osum demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// A built-in preset or a path to a preset .json file.
    #[arg(long, default_value = "osum-tiny")]
    preset: String,
    /// A trained checkpoint folder (default: the preset's shipped one, `assets/osum-tiny`).
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<PathBuf>,
    /// The sample manifest (default: the bundled `assets/samples/samples.jsonl`).
    #[arg(long, value_name = "FILE")]
    samples: Option<PathBuf>,
    /// At most this many new tokens per answer (default: the preset's).
    #[arg(long)]
    max_new_tokens: Option<usize>,
}

/// Whether the files the preset reads from the model home are all there.
fn weights_installed(preset: &Preset) -> bool {
    let home = osum::model::home();
    let encoder_ok = preset
        .encoder
        .as_ref()
        .is_none_or(|e| home.join(e).join("model.bin").exists());
    encoder_ok && preset.llm.path(&home).exists()
}

/// Set up if needed, then answer every sample.
pub fn run(a: DemoArgs, dev: &Arc<dyn Device>) -> Result<(), String> {
    let preset = Preset::find(&a.preset).map_err(|e| e.to_string())?;
    if !weights_installed(&preset) {
        eprintln!("demo: the weights are not installed yet; running `osum setup` first");
        setup::run(SetupArgs { models: Vec::new() })?;
    }
    let manifest_path = a
        .samples
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(SAMPLES));
    let manifest = Manifest::load(&manifest_path)?;
    let checkpoint = preset
        .checkpoint_or_shipped(a.checkpoint.as_deref())
        .ok_or_else(|| {
            format!(
                "preset {} has no trained checkpoint (shipped or --checkpoint DIR): the demo \
                 needs a trained adapter and LoRA (`osum train`)",
                preset.name
            )
        })?;
    let max_new = a.max_new_tokens.unwrap_or(preset.generation.max_new_tokens);
    let penalty = preset.generation.repetition_penalty;
    let t0 = Instant::now();
    let model = OsumModel::open(preset, Some(&checkpoint), dev)?;
    println!(
        "osum-tiny demo: {} ({}), checkpoint {}, device {}; loaded in {:.2} s",
        model.preset.name,
        model.preset.description,
        checkpoint.display(),
        dev.name(),
        t0.elapsed().as_secs_f64()
    );
    let cfg = GenerationConfig {
        max_new_tokens: max_new,
        eos_ids: model.stop_ids(),
        repetition_penalty: penalty,
        strategy: Strategy::Greedy,
    };
    let audio_items: Vec<_> = manifest
        .items
        .iter()
        .filter(|i| i.audio.is_some())
        .collect();
    let report = evaluate(
        &model,
        &manifest,
        &cfg,
        &Options::default(),
        &mut |done, total, report| {
            if let (Some(line), Some(item)) = (report.predictions.last(), audio_items.get(done - 1))
            {
                print_answer(done, total, line, item);
            }
        },
    )?;
    let t = &report.natural;
    let pct = |x: Option<f64>| x.map_or("—".into(), |v| format!("{:.0}%", 100.0 * v));
    println!(
        "\n{} answers: instruction following {}, WER {}, labels right: {}; mean {:.2} s per answer",
        t.n,
        pct(t.ifr()),
        pct(t.wer()),
        t.label_counts().join(", "),
        t.to_json()["latency_ms"]["mean"].as_f64().unwrap_or(0.0) / 1e3
    );
    println!("(age and emotion are prosody proxies of synthetic speech, not real-world labels)");
    Ok(())
}

/// One answer: the instruction, the raw tagged output, and each field against the truth.
fn print_answer(k: usize, n: usize, line: &Value, item: &osum::train::data::Item) {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    println!(
        "\n[{k}/{n}] {} ({})",
        s(&line["audio"]),
        item.speaker.as_deref().unwrap_or("unknown voice")
    );
    println!("  Q: {}", s(&line["instruction"]));
    println!("  A: {}", s(&line["raw"]).trim());
    let followed = line["followed"].as_bool().unwrap_or(false);
    println!(
        "     tasks {} ({})",
        line["answer"]["tasks"],
        if followed { "as asked" } else { "NOT as asked" }
    );
    if let Some(truth) = &item.transcript {
        if let Some(said) = line["answer"]["transcript"].as_str() {
            let we = &line["word_errors"];
            println!(
                "     transcript \"{said}\" (truth \"{truth}\": {} of {} words wrong)",
                we[0], we[1]
            );
        }
    }
    if let Some(correct) = line["correct"].as_object() {
        for (task, ok) in correct {
            let said = line["answer"][task.as_str()].as_str().unwrap_or("—");
            let mark = if ok.as_bool().unwrap_or(false) {
                "right"
            } else {
                "wrong"
            };
            println!("     {task} {said} ({mark})");
        }
    }
    println!(
        "     {:.2} s",
        line["latency_ms"].as_f64().unwrap_or(0.0) / 1e3
    );
}
