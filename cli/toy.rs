//! `osum toy`: train the engine's toy transformer to reverse digit sequences (the engine's
//! end-to-end training check; the speech demo is `osum demo`).

use clap::Args;
use osum::engine::{Device, Error, Result};
use osum::train::toy::{train_reversal, TinyConfig, TrainOptions};
use std::sync::Arc;
use std::time::Instant;

/// Options of `osum toy`.
#[derive(Args)]
pub struct ToyArgs {
    /// Optimizer steps.
    #[arg(long, default_value_t = 600)]
    steps: u64,
    /// Sequences per step.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Peak learning rate (linear warmup, cosine decay).
    #[arg(long, default_value_t = 3e-3)]
    lr: f32,
    /// Seed for initialisation and data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Length of the digit sequence to reverse.
    #[arg(long, default_value_t = 6)]
    seq_len: usize,
}

/// Train and report.
pub fn run(a: ToyArgs, dev: &Arc<dyn Device>) -> Result<()> {
    if a.steps == 0 || a.batch == 0 || a.seq_len == 0 {
        return Err(Error::invalid(
            "toy",
            "--steps, --batch and --seq-len must be positive",
        ));
    }
    let cfg = TinyConfig {
        seq_len: a.seq_len,
        ..TinyConfig::default()
    };
    let opts = TrainOptions {
        steps: a.steps,
        batch: a.batch,
        lr: a.lr,
        seed: a.seed,
    };
    let steps = a.steps;
    println!(
        "training a {}-layer transformer (d_model {}, {} heads / {} kv heads) to reverse {} digits, {} steps × {} sequences, seed {}",
        cfg.layers, cfg.d_model, cfg.heads, cfg.kv_heads, a.seq_len, steps, a.batch, a.seed
    );
    let start = Instant::now();
    let every = (steps / 20).max(1);
    let report = train_reversal(cfg, opts, dev, |s| {
        if s.step == 1 || s.step % every == 0 || s.step == steps {
            println!(
                "step {:>5}  loss {:.4}  lr {:.2e}  grad-norm {:.3}  {:.1}s",
                s.step,
                s.loss,
                s.lr,
                s.grad_norm,
                start.elapsed().as_secs_f32()
            );
        }
    })?;
    let secs = start.elapsed().as_secs_f32();
    println!(
        "done in {secs:.1}s ({:.1} steps/s); held-out answer-token accuracy {:.1}%",
        steps as f32 / secs,
        100.0 * report.eval_accuracy
    );
    Ok(())
}
