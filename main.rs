//! The `osum` command line.

use clap::{Parser, Subcommand};
use osum::engine::{cpu_device, Result};
use osum::train::demo::{train_reversal, TinyConfig, TrainOptions};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "osum",
    version,
    about = "OSUM-Pangu speech understanding on a from-scratch Rust tensor engine"
)]
struct Cli {
    /// Worker threads for CPU kernels (default: all cores; also OSUM_THREADS).
    #[arg(long, global = true, env = "OSUM_THREADS")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a small transformer from scratch on the CPU to reverse digit sequences, printing
    /// the loss as it falls and the held-out accuracy at the end.
    ///
    /// Example: osum demo --steps 600 --seed 1
    Demo {
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
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            eprintln!("error: cannot set {n} threads: {e}");
            return ExitCode::from(2);
        }
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Demo {
            steps,
            batch,
            lr,
            seed,
            seq_len,
        } => {
            if steps == 0 || batch == 0 || seq_len == 0 {
                return Err(osum::engine::Error::invalid(
                    "demo",
                    "--steps, --batch and --seq-len must be positive",
                ));
            }
            let cfg = TinyConfig {
                seq_len,
                ..TinyConfig::default()
            };
            let opts = TrainOptions {
                steps,
                batch,
                lr,
                seed,
            };
            println!(
                "training a {}-layer transformer (d_model {}, {} heads / {} kv heads) to reverse {} digits, {} steps × {} sequences, seed {}",
                cfg.layers, cfg.d_model, cfg.heads, cfg.kv_heads, seq_len, steps, batch, seed
            );
            let start = Instant::now();
            let every = (steps / 20).max(1);
            let report = train_reversal(cfg, opts, &cpu_device(), |s| {
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
    }
}
