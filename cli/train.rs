//! `osum train`: one stage of the three-stage OSUM recipe (REFERENCE §7) on a manifest, with a
//! progress line, a JSONL log, a loss curve and resumable checkpoints in `--out`.

use clap::{Args, ValueEnum};
use osum::engine::Device;
use osum::model::preset::Preset;
use osum::train::log::{human_secs, progress_line};
use osum::train::stages::{
    train, ScheduleKind, Stage, TextQaMix, TrainOptions, CURVE_FILE, LOG_FILE,
};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

/// The learning-rate decay after warmup.
#[derive(Clone, Copy, ValueEnum)]
enum Decay {
    /// `lr·√(warmup/step)` (OSUM-Pangu's).
    InverseSqrt,
    /// Cosine to a tenth of the peak at the last step.
    Cosine,
}

/// Which stages mix in the manifest's text QA items.
#[derive(Clone, Copy, ValueEnum)]
enum TextQa {
    /// Stage 1 only (REFERENCE §7's recipe).
    Stage1,
    /// Every stage, so stage 2 learns a question about text from an instruction to parse.
    All,
    /// None.
    None,
}

/// Options of `osum train`.
#[derive(Args)]
pub struct TrainArgs {
    /// 1: fixed task tags + audio (adapter + LoRA); 2: text-only instruction → tags (LoRA);
    /// 3: instruction + audio → tags + answer (adapter + LoRA).
    #[arg(long)]
    stage: u8,
    /// A built-in preset (osum-tiny) or a path to a preset .json file.
    #[arg(long, default_value = "osum-tiny")]
    preset: String,
    /// The data folder (its train.jsonl is used) or a manifest file.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// The checkpoint folder to write (adapter.safetensors, lora.safetensors, trainer state,
    /// train-log.jsonl, loss.svg).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Continue the interrupted run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// The previous stage's checkpoint folder (required for stages 2 and 3).
    #[arg(long, value_name = "CKPT_DIR")]
    from: Option<PathBuf>,
    /// Seed of initialisation, data order and dropout.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// Warmup steps.
    #[arg(long, default_value_t = 20)]
    warmup: u64,
    /// Decay after warmup.
    #[arg(long, value_enum, default_value = "inverse-sqrt")]
    decay: Decay,
    /// Optimizer steps (default: --epochs passes over the stage's items).
    #[arg(long)]
    steps: Option<u64>,
    /// Passes over the data when --steps is not given.
    #[arg(long, default_value_t = 1.0)]
    epochs: f64,
    /// Items per micro-batch (right-padded; causal attention keeps padding invisible).
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Micro-batches per optimizer step (gradient accumulation).
    #[arg(long, default_value_t = 1)]
    accum: usize,
    /// Global gradient-norm clip.
    #[arg(long, default_value_t = 5.0)]
    clip: f32,
    /// LoRA dropout (default: the preset's).
    #[arg(long)]
    lora_dropout: Option<f32>,
    /// Weight of the auxiliary CTC alignment of speech rows with the transcript's tokens
    /// (train/ctc.rs); 0 = off, as in the paper's recipe. Stages 1 and 3 only.
    #[arg(long, default_value_t = 0.0)]
    ctc_weight: f32,
    /// Weight of the auxiliary alignment of each clip's mean speech row with the LLM's
    /// embedding of its gender/age/style/emotion/event label words (train/attributes.rs);
    /// 0 = off, as in the paper's recipe. Stages 1 and 3 only.
    #[arg(long, default_value_t = 0.0)]
    attr_weight: f32,
    /// Weight of the answer (LLM cross-entropy) loss; 0 skips the LLM entirely, so with
    /// --ctc-weight and/or --attr-weight only the adapter trains, at a fraction of the cost per
    /// item.
    #[arg(long, default_value_t = 1.0)]
    llm_weight: f32,
    /// Which stages mix in the manifest's text QA items (`osum synth --text-qa`); they train
    /// through the answer loss only, so --llm-weight 0 leaves them out.
    #[arg(long, value_enum, default_value = "stage1")]
    text_qa: TextQa,
    /// Checkpoint every this many steps (and at the end).
    #[arg(long, default_value_t = 50)]
    save_every: u64,
    /// Stop after this step without a final checkpoint, as if killed (to test --resume).
    #[arg(long, hide = true)]
    stop_after: Option<u64>,
    /// Folder of cached encoder features (default: $OSUM_HOME/cache/features).
    #[arg(long, value_name = "DIR")]
    feature_cache: Option<PathBuf>,
}

/// Train one stage and report throughput.
pub fn run(a: TrainArgs, dev: &Arc<dyn Device>) -> Result<(), String> {
    let stage = Stage::from_number(a.stage)?;
    let preset = Preset::find(&a.preset).map_err(|e| e.to_string())?;
    let manifest = if a.data.is_dir() {
        a.data.join("train.jsonl")
    } else {
        a.data.clone()
    };
    let mut opts = TrainOptions::recipe(stage, preset, manifest, a.out.clone());
    opts.from = a.from;
    opts.resume = a.resume;
    opts.seed = a.seed;
    opts.lr = a.lr;
    opts.warmup = a.warmup;
    opts.schedule = match a.decay {
        Decay::InverseSqrt => ScheduleKind::InverseSqrt,
        Decay::Cosine => ScheduleKind::Cosine,
    };
    opts.steps = a.steps;
    opts.epochs = a.epochs;
    opts.batch = a.batch;
    opts.accum = a.accum;
    opts.clip = a.clip;
    opts.lora_dropout = a.lora_dropout;
    opts.ctc_weight = a.ctc_weight;
    opts.attr_weight = a.attr_weight;
    opts.llm_weight = a.llm_weight;
    opts.text_qa = match a.text_qa {
        TextQa::Stage1 => TextQaMix::StageOne,
        TextQa::All => TextQaMix::Every,
        TextQa::None => TextQaMix::Off,
    };
    opts.save_every = a.save_every;
    opts.stop_after = a.stop_after;
    if let Some(c) = a.feature_cache {
        opts.feature_cache = c;
    }
    // CPU time is counted from the end of the first step (model loading and the first step's
    // warm-up excluded) to the end.
    let mut cpu0: Option<(f64, usize, usize)> = None;
    let tty = std::io::stderr().is_terminal();
    let mut shown = 0u64;
    let mut err = std::io::stderr();
    let summary = train(&opts, dev, &mut |rec, s| {
        shown += 1;
        if shown == 1 {
            cpu0 = process_cpu_secs().map(|c| (c, s.items, s.tokens));
        }
        let line = progress_line(rec, s.total_steps, s.secs, s.tokens, s.items, shown);
        if tty {
            let _ = write!(err, "\r{line}\x1b[K");
            let _ = err.flush();
        } else if rec.step == 1 || rec.step % 10 == 0 || rec.step == s.total_steps {
            let _ = writeln!(err, "{line}");
        }
    })?;
    if tty {
        eprintln!();
    }
    let s = &summary;
    let train_secs = (s.secs - s.encoder_secs).max(1e-9);
    println!(
        "stage {} done: step {}/{} over {} examples{}; loss {} → {}",
        stage.number(),
        s.step,
        s.total_steps,
        s.examples,
        if s.text_qa_examples > 0 {
            format!(" ({} of them text QA)", s.text_qa_examples)
        } else {
            String::new()
        },
        s.records
            .first()
            .map_or("-".into(), |r| format!("{:.4}", r.loss)),
        s.records
            .last()
            .map_or("-".into(), |r| format!("{:.4}", r.loss)),
    );
    println!(
        "this run: {} items, {} tokens ({} scored) in {} ({:.3} items/s, {:.0} tokens/s; \
         encoder {:.1} s for {} uncached clips, {} cached; without it {:.3} items/s, {:.0} tokens/s)",
        s.items,
        s.tokens,
        s.target_tokens,
        human_secs(s.secs),
        s.items as f64 / s.secs.max(1e-9),
        s.tokens as f64 / s.secs.max(1e-9),
        s.encoder_secs,
        s.cache_misses,
        s.cache_hits,
        s.items as f64 / train_secs,
        s.tokens as f64 / train_secs,
    );
    if let (Some((c0, i0, t0)), Some(c1)) = (cpu0, process_cpu_secs()) {
        // On a shared machine wall time depends on the other load; CPU seconds per item do not
        // (much), and divided by the cores used they estimate the unshared wall time.
        let (cpu, items, tokens) = (c1 - c0, s.items - i0, s.tokens - t0);
        if items > 0 {
            println!(
                "CPU time after step 1: {cpu:.1} s for {items} items ({:.2} CPU-s per item, \
                 {:.0} tokens per CPU-s; {} worker threads)",
                cpu / items as f64,
                tokens as f64 / cpu.max(1e-9),
                rayon::current_num_threads(),
            );
        }
    }
    if opts.ctc_weight > 0.0 && s.ctc_skipped > 0 {
        println!(
            "ctc: {} clips had fewer speech rows than their transcript needs and were left out \
             of the CTC term",
            s.ctc_skipped
        );
    }
    println!(
        "checkpoint: {} (log {LOG_FILE}, curve {CURVE_FILE})",
        a.out.display()
    );
    Ok(())
}

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`, in USER_HZ =
/// 100 ticks per second); `None` elsewhere.
fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
