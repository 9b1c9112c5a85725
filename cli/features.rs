//! `osum features`: every encoder layer's output for a manifest's clips, pooled over time, as one
//! safetensors file for the linear probes of scripts/probe_encoder_features.py (train/probe.rs).

use clap::Args;
use osum::engine::Device;
use osum::model::osum::OsumModel;
use osum::model::preset::Preset;
use osum::train::data::Manifest;
use osum::train::probe::pool_layers;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Options of `osum features`.
#[derive(Args)]
pub struct FeaturesArgs {
    /// The manifest whose clips to encode (e.g. the `train.jsonl` or `test.jsonl` of `osum synth`).
    #[arg(long, value_name = "FILE")]
    manifest: PathBuf,
    /// A built-in preset (osum-tiny) or a path to a preset .json file: its speech encoder is used.
    #[arg(long, default_value = "osum-tiny")]
    preset: String,
    /// The safetensors file to write (`pooled` `[clips, layers, 2·d]`, clip names in metadata).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Load the encoder, pool every clip's layers, write the file.
pub fn run(a: FeaturesArgs, dev: &Arc<dyn Device>) -> Result<(), String> {
    let manifest = Manifest::load(&a.manifest)?;
    let preset = Preset::find(&a.preset).map_err(|e| e.to_string())?;
    let encoder = preset
        .encoder
        .clone()
        .unwrap_or_else(|| preset.name.clone());
    // Only the frozen encoder runs: no trained adapter or LoRA is needed.
    let model = OsumModel::open(preset, None, dev)?;
    let t0 = Instant::now();
    let pooled = pool_layers(&model, &encoder, &manifest, |done, total| {
        if done == total || done.is_multiple_of((total / 10).max(1)) {
            eprintln!(
                "features: {done}/{total} clips, {:.1} s",
                t0.elapsed().as_secs_f64()
            );
        }
    })?;
    pooled.save(&a.out)?;
    println!(
        "wrote {}: {} clips × {} layers ({}) × 2·{} (mean, std) of {encoder}",
        a.out.display(),
        pooled.audio.len(),
        pooled.layers.len(),
        pooled.layers.join(", "),
        pooled.dim
    );
    Ok(())
}
