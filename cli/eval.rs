//! `osum eval`: score the OSUM model on a manifest — IFR, per-task accuracy, WER/CER, latency —
//! and optionally compare fixed tag instructions with natural-language ones.

use clap::Args;
use osum::engine::Device;
use osum::model::llm::{GenerationConfig, Strategy};
use osum::model::osum::OsumModel;
use osum::model::preset::Preset;
use osum::train::atomic::write_atomic;
use osum::train::data::Manifest;
use osum::train::eval::metrics::{comparison_table, Totals};
use osum::train::eval::{evaluate, Options, Report};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Options of `osum eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// The manifest to evaluate on (e.g. the `test.jsonl` of `osum synth`).
    #[arg(long, value_name = "FILE")]
    manifest: PathBuf,
    /// A built-in preset (osum-tiny) or a path to a preset .json file.
    #[arg(long, default_value = "osum-tiny")]
    preset: String,
    /// A trained checkpoint folder (adapter.safetensors, lora.safetensors). Default: the
    /// preset's shipped checkpoint (osum-tiny: `assets/osum-tiny`); without either the adapter
    /// is untrained and the answers are noise.
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<PathBuf>,
    /// Make the last line of stdout one JSON object with the metrics.
    #[arg(long)]
    json: bool,
    /// Write one JSON line per item (instruction, raw answer, parsed fields, scores) to this file.
    #[arg(long, value_name = "OUT.jsonl")]
    predictions: Option<PathBuf>,
    /// Also ask every item with its fixed tag instruction (e.g. `<asr><gender>`) and print the
    /// fixed-vs-natural-language table.
    #[arg(long)]
    compare_fixed: bool,
    /// Evaluate only the first N items.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// At most this many new tokens per answer (default: the preset's).
    #[arg(long)]
    max_new_tokens: Option<usize>,
}

fn pct(x: Option<f64>) -> String {
    x.map_or("—".into(), |v| format!("{:.1}%", 100.0 * v))
}

/// IFR, WER/CER and per-task accuracy of one set of totals.
fn print_totals(what: &str, t: &Totals) {
    println!(
        "{what} {}  IFR {}  WER {}  CER {}",
        t.n,
        pct(t.ifr()),
        pct(t.wer()),
        pct(t.cer())
    );
    for (task, &(c, n)) in &t.labels {
        let note = match *task {
            "age" | "emotion" => " (prosody proxy)",
            "chat" => " (exact match)",
            _ => "",
        };
        println!(
            "  {task:<8} accuracy {} ({c}/{n}){note}",
            pct((n > 0).then(|| c as f64 / n as f64))
        );
    }
}

/// One line per speaker: items, IFR, WER and each task's correct/asked.
fn print_speakers(r: &Report) {
    println!("per speaker:");
    let width = r.by_speaker.keys().map(String::len).max().unwrap_or(0);
    for (speaker, t) in &r.by_speaker {
        println!(
            "  {speaker:<width$} {:>4} items  IFR {:>6}  WER {:>6}  {}",
            t.n,
            pct(t.ifr()),
            pct(t.wer()),
            t.label_counts().join("  ")
        );
    }
}

fn print_summary(r: &Report) {
    let t = &r.natural;
    print_totals("items", t);
    let v = t.to_json();
    println!(
        "latency per item: mean {:.0} ms, p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        v["latency_ms"]["mean"].as_f64().unwrap_or(0.0),
        v["latency_ms"]["p50"].as_f64().unwrap_or(0.0),
        v["latency_ms"]["p90"].as_f64().unwrap_or(0.0),
        v["latency_ms"]["max"].as_f64().unwrap_or(0.0),
    );
    if r.text.n > 0 {
        print_totals("text-only items", &r.text);
    }
    if !r.by_speaker.is_empty() {
        print_speakers(r);
    }
    if let Some(f) = &r.fixed {
        println!("\nfixed tag instruction vs natural-language instruction:");
        print!("{}", comparison_table(f, t));
    }
}

/// Load, evaluate, print.
pub fn run(a: EvalArgs, dev: &Arc<dyn Device>) -> Result<(), String> {
    let manifest = Manifest::load(&a.manifest)?;
    let preset = Preset::find(&a.preset).map_err(|e| e.to_string())?;
    let max_new = a.max_new_tokens.unwrap_or(preset.generation.max_new_tokens);
    let penalty = preset.generation.repetition_penalty;
    let checkpoint = preset.checkpoint_or_shipped(a.checkpoint.as_deref());
    let model = OsumModel::open(preset, checkpoint.as_deref(), dev)?;
    if !model.trained {
        eprintln!(
            "note: no --checkpoint and no shipped one: the adapter is untrained (random) and LoRA is zero, so the \
             answers about audio are noise and text-only items get the base LLM's answers"
        );
    }
    let cfg = GenerationConfig {
        max_new_tokens: max_new,
        eos_ids: model.text.stop_ids(),
        repetition_penalty: penalty,
        strategy: Strategy::Greedy,
    };
    let opts = Options {
        limit: a.limit,
        compare_fixed: a.compare_fixed,
    };
    let t0 = Instant::now();
    let mut progress = |done: usize, total: usize, r: &Report| {
        let step = (total / 20).max(1);
        if done == total || done.is_multiple_of(step) {
            let text = if r.text.n > 0 {
                format!(", text-only IFR {}", pct(r.text.ifr()))
            } else {
                String::new()
            };
            eprintln!(
                "eval: {done}/{total} items, IFR {} WER {}{text}, {:.1} s",
                pct(r.natural.ifr()),
                pct(r.natural.wer()),
                t0.elapsed().as_secs_f64()
            );
        }
    };
    let report = evaluate(&model, &manifest, &cfg, &opts, &mut progress)?;
    if let Some(path) = &a.predictions {
        let mut out = String::new();
        for line in &report.predictions {
            out.push_str(&line.to_string());
            out.push('\n');
        }
        write_atomic(path, out.as_bytes())?;
    }
    print_summary(&report);
    if a.json {
        let mut v = report.to_json();
        v["trained"] = model.trained.into();
        v["device"] = dev.name().into();
        println!("{v}");
    }
    Ok(())
}
