//! Packing a trained checkpoint for shipping (`osum ship`, issue 6 item 5): the adapter and LoRA
//! tensors of the last stage's folder, cast to bf16 (REFERENCE §7 trains in bf16; the loaders
//! widen to f32), plus `provenance.json`: every stage of the chain (followed through each run's
//! `from` setting) with its settings, steps, items and measured training time, so the shipped
//! files say how to reproduce them.

use crate::engine::{cpu_device, DType, Tensor};
use crate::model::adapter::safetensors_bytes;
use crate::model::osum::{ADAPTER_FILE, LORA_FILE};
use crate::model::weights::SafeTensors;
use crate::train::atomic::write_atomic;
use crate::train::checkpoint;
use crate::train::stages::LOG_FILE;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The provenance file written beside the shipped tensors.
pub const PROVENANCE_FILE: &str = "provenance.json";

/// What one stage's run folder says about itself.
fn stage_record(dir: &Path) -> Result<(Value, Option<PathBuf>), String> {
    let state = checkpoint::load(dir)?.state;
    let log = std::fs::read_to_string(dir.join(LOG_FILE))
        .map_err(|e| format!("{}: {e}", dir.join(LOG_FILE).display()))?;
    let (mut secs, mut items, mut tokens) = (0.0f64, 0u64, 0u64);
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v.get("loss").is_some() {
            secs += v["secs"].as_f64().unwrap_or(0.0);
            items += v["items"].as_u64().unwrap_or(0);
            tokens += v["tokens"].as_u64().unwrap_or(0);
        }
    }
    let from = state.settings["from"].as_str().map(PathBuf::from);
    let record = json!({
        "folder": dir.display().to_string(),
        "step": state.step,
        "settings": state.settings,
        "logged_steps": {"train_seconds": secs, "items": items, "tokens": tokens},
    });
    Ok((record, from))
}

/// Cast every tensor of `src` to bf16 and write them to `dst` atomically.
fn write_bf16(src: &Path, dst: &Path) -> Result<usize, String> {
    let file = SafeTensors::open(src).map_err(|e| e.to_string())?;
    let dev = cpu_device();
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for name in file.names() {
        let t = file.tensor(name, &dev).map_err(|e| e.to_string())?;
        let t = t.to_dtype(DType::BF16).map_err(|e| e.to_string())?;
        tensors.push((name.to_string(), t));
    }
    let bytes = safetensors_bytes(&tensors, None).map_err(|e| e.to_string())?;
    write_atomic(dst, &bytes)?;
    Ok(bytes.len())
}

/// Ship the checkpoint in `from` (a folder `osum train` wrote) to `out`: bf16 adapter and LoRA
/// files, and [`PROVENANCE_FILE`] listing the stage chain, oldest first. Returns the provenance.
pub fn ship(from: &Path, out: &Path) -> Result<Value, String> {
    let mut stages = Vec::new();
    let mut next = Some(from.to_path_buf());
    // The stage whose `from` setting named `next` (none for the folder given on the command line).
    let mut named_by: Option<PathBuf> = None;
    while let Some(dir) = next {
        if stages.len() > 8 {
            return Err(format!(
                "{}: the `from` chain of checkpoints loops",
                from.display()
            ));
        }
        let (record, prev) = stage_record(&dir).map_err(|e| match &named_by {
            Some(child) => {
                // `from` is recorded as typed, so a relative one is relative to where training ran.
                let hint = if dir.is_relative() {
                    "; run `osum ship` in the folder that training ran in"
                } else {
                    ""
                };
                format!(
                    "{} was trained --from {}, which cannot be read: {e}{hint}",
                    child.display(),
                    dir.display()
                )
            }
            None => e,
        })?;
        stages.push(record);
        named_by = Some(dir);
        next = prev;
    }
    stages.reverse();
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut files = serde_json::Map::new();
    for name in [ADAPTER_FILE, LORA_FILE] {
        let bytes = write_bf16(&from.join(name), &out.join(name))?;
        files.insert(name.to_string(), json!(bytes));
    }
    let total: f64 = stages
        .iter()
        .map(|s| s["logged_steps"]["train_seconds"].as_f64().unwrap_or(0.0))
        .sum();
    let provenance = json!({
        "dtype": "bf16",
        "files": files,
        "stages": stages,
        "train_seconds_total": total,
    });
    let text = serde_json::to_string_pretty(&provenance).map_err(|e| e.to_string())? + "\n";
    write_atomic(&out.join(PROVENANCE_FILE), text.as_bytes())?;
    Ok(provenance)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::weights::StoredDType;
    use crate::train::checkpoint::{save, TrainState};
    use crate::train::optim::{AdamW, AdamWConfig};

    /// A stage folder as `osum train` leaves it: state, exported tensors and a one-step log.
    fn fake_stage(dir: &Path, from: Option<&Path>, secs: f64) {
        let dev = cpu_device();
        let t = Tensor::from_vec(vec![1.0f32, 2.5, -3.0], &[3], &dev).unwrap();
        let named = vec![
            ("adapter/w".to_string(), t.clone()),
            ("lora/a".to_string(), t),
        ];
        let state = TrainState {
            step: 1,
            order_rng: [1, 2, 3, 4],
            epoch: 1,
            cursor: 0,
            settings: json!({"from": from.map(|p| p.display().to_string()), "lr": 0.001}),
        };
        save(dir, &named, &AdamW::new(AdamWConfig::default()), &state).unwrap();
        let line =
            format!("{{\"step\":1,\"loss\":1.0,\"secs\":{secs},\"items\":4,\"tokens\":10}}\n");
        std::fs::write(dir.join(LOG_FILE), line).unwrap();
    }

    #[test]
    fn ship_follows_the_from_chain_oldest_first_and_writes_bf16() {
        let tmp = crate::scratch_dir("ship");
        let root = tmp.path();
        let (s1, s2, out) = (root.join("s1"), root.join("s2"), root.join("out"));
        fake_stage(&s1, None, 10.0);
        fake_stage(&s2, Some(&s1), 2.5);
        let p = ship(&s2, &out).unwrap();
        let stages = p["stages"].as_array().unwrap();
        assert_eq!(stages.len(), 2);
        assert_eq!(stages[0]["folder"], s1.display().to_string());
        assert_eq!(p["train_seconds_total"], 12.5);
        for file in [ADAPTER_FILE, LORA_FILE] {
            let f = SafeTensors::open(out.join(file)).unwrap();
            let name = f.names()[0].to_string();
            assert_eq!(f.dtype(&name).unwrap(), StoredDType::BF16);
            let v = f.tensor(&name, &cpu_device()).unwrap();
            let v = v.to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap();
            assert_eq!(v, vec![1.0, 2.5, -3.0]);
        }
        assert!(out.join(PROVENANCE_FILE).exists());
    }

    #[test]
    fn ship_names_the_stage_whose_relative_from_cannot_be_read_here() {
        let tmp = crate::scratch_dir("ship-from");
        let s2 = tmp.path().join("s2");
        // Trained `--from s1` in another folder: a relative path this process cannot resolve.
        fake_stage(&s2, Some(Path::new("no-such-stage-folder/s1")), 1.0);
        let err = ship(&s2, &tmp.path().join("out")).unwrap_err();
        assert!(
            err.contains(&format!(
                "{} was trained --from no-such-stage-folder/s1",
                s2.display()
            )) && err.contains("in the folder that training ran in"),
            "{err}"
        );
        assert!(!tmp.path().join("out").exists());
    }
}
