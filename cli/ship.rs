//! `osum ship`: pack a trained checkpoint as bf16 files with its provenance (how the preset's
//! shipped checkpoint in `assets/` is made).

use clap::Args;
use osum::train::ship::{ship, PROVENANCE_FILE};
use std::path::PathBuf;

/// Options of `osum ship`.
#[derive(Args)]
pub struct ShipArgs {
    /// The last stage's checkpoint folder (`osum train --out`); earlier stages are found through
    /// each run's `--from`.
    #[arg(long, value_name = "DIR")]
    checkpoint: PathBuf,
    /// Where to write adapter.safetensors, lora.safetensors (bf16) and provenance.json.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Pack and say what was written.
pub fn run(a: ShipArgs) -> Result<(), String> {
    let p = ship(&a.checkpoint, &a.out)?;
    let stages = p["stages"].as_array().map_or(0, Vec::len);
    println!(
        "shipped {} ({} stages, {:.0} s of logged training) to {} with {PROVENANCE_FILE}",
        a.checkpoint.display(),
        stages,
        p["train_seconds_total"].as_f64().unwrap_or(0.0),
        a.out.display()
    );
    Ok(())
}
