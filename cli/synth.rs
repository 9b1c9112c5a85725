//! `osum synth`: generate the seeded synthetic speech benchmark (WAVs + train/dev/test manifests)
//! with espeak-ng, flite and sox.

use clap::Args;
use osum::train::data::synth::{generate, Size};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

/// The most text QA items `--text-qa` takes (about 100 MB of manifest).
const MAX_TEXT_QA: usize = 1_000_000;

/// Options of `osum synth`.
#[derive(Args)]
pub struct SynthArgs {
    /// The folder to write (created; an existing benchmark folder is regenerated in place).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The seed: the same seed and size give the same manifests, byte for byte.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// tiny (40 clips, for tests), small (600 clips) or default (3800 clips).
    #[arg(long, default_value = "default")]
    size: String,
    /// Also write this many text QA items (a written question and its answer, no audio) to
    /// train.jsonl, for stage I to mix in (REFERENCE §7), and a fifth as many held-out ones to
    /// test-text-qa.jsonl (for `osum eval`); 0 leaves the manifests as they were.
    #[arg(long, default_value_t = 0, value_name = "N")]
    text_qa: usize,
}

/// Generate, printing progress to stderr and a summary to stdout.
pub fn run(a: SynthArgs) -> Result<(), String> {
    let size = Size::from_name(&a.size)
        .ok_or_else(|| format!("unknown --size `{}` (tiny, small or default)", a.size))?;
    if a.text_qa > MAX_TEXT_QA {
        return Err(format!(
            "--text-qa {} is more than the {MAX_TEXT_QA} items a benchmark takes",
            a.text_qa
        ));
    }
    let t0 = Instant::now();
    let last = Mutex::new(0usize);
    let progress = |done: usize, total: usize| {
        // About twenty lines per run, whatever its size.
        let step = (total / 20).max(1);
        if let Ok(mut last) = last.lock() {
            if done == total || done >= *last + step {
                *last = done;
                eprintln!(
                    "synth: {done}/{total} clips ({:.0}%), {:.1} s",
                    100.0 * done as f64 / total as f64,
                    t0.elapsed().as_secs_f64()
                );
            }
        }
    };
    let s = generate(&a.out, a.seed, size, a.text_qa, &progress)?;
    let mut lines: Vec<String> = s
        .lines
        .iter()
        .map(|(split, n)| format!("{}.jsonl {n} lines", split.name()))
        .collect();
    if s.test_text_qa > 0 {
        lines.push(format!(
            "{} {} lines",
            osum::train::data::synth::text_qa::TEST_FILE,
            s.test_text_qa
        ));
    }
    println!(
        "wrote {} clips ({:.1} min of audio, longest {:.1} s) and {} to {} in {:.1} s (seed {}, size {})",
        s.clips,
        s.audio_seconds / 60.0,
        s.longest_seconds,
        lines.join(", "),
        a.out.display(),
        t0.elapsed().as_secs_f64(),
        a.seed,
        size.name()
    );
    Ok(())
}
