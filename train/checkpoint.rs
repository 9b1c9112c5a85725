//! Training checkpoints (DESIGN "Trainer"): only the trainable tensors, the optimizer moments,
//! the data-order generator and the step, so `--resume` continues exactly.
//!
//! A checkpoint folder holds:
//! - [`STATE_FILE`]: the one file `--resume` reads: every trainable tensor (`adapter/NAME`,
//!   `lora/NAME`), its AdamW moments (`adam_m/…`, `adam_v/…`) and the [`TrainState`] as JSON in
//!   the safetensors header. It is written atomically, so it is always one consistent step.
//! - [`ADAPTER_FILE`] and [`LORA_FILE`]: the same adapter and LoRA tensors under the names
//!   [`OsumModel::open`](crate::model::osum::OsumModel::open) reads (`--checkpoint DIR`, and
//!   `--from DIR` for the next stage), exported after the state file, each atomically.

use crate::engine::Tensor;
use crate::model::adapter::safetensors_bytes;
use crate::model::osum::{ADAPTER_FILE, LORA_FILE};
use crate::model::weights::SafeTensors;
use crate::train::atomic::write_atomic;
use crate::train::optim::AdamW;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// The resumable state file of a checkpoint folder.
pub const STATE_FILE: &str = "trainer_state.safetensors";
/// The header key holding the [`TrainState`] JSON.
const STATE_KEY: &str = "osum_train_state";

/// Everything besides tensors that a resumed run needs to continue the same trajectory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps taken.
    pub step: u64,
    /// The data-order generator's state *before* the current epoch's shuffle, so the epoch's
    /// order can be rebuilt.
    pub order_rng: [u64; 4],
    /// Epochs started (1 = the first).
    pub epoch: u64,
    /// Items of the current epoch's order already consumed.
    pub cursor: usize,
    /// The run's settings (stage, preset, data fingerprint, hyper-parameters); a resume with
    /// different settings would not continue the same trajectory and is refused.
    pub settings: serde_json::Value,
}

/// Trainable tensors by checkpoint name (`adapter/…`, `lora/…`).
pub type Named = [(String, Tensor)];

/// Write a checkpoint of `trainable` (adapter tensors named `adapter/…`, LoRA `lora/…`), the
/// optimizer's moments for them and `state` into `dir` (see the module docs for the files).
pub fn save(dir: &Path, trainable: &Named, opt: &AdamW, state: &TrainState) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut tensors: Vec<(String, Tensor)> = trainable.to_vec();
    for (name, t) in trainable {
        if let Some((m, v)) = opt.moments(t) {
            tensors.push((format!("adam_m/{name}"), m.clone()));
            tensors.push((format!("adam_v/{name}"), v.clone()));
        }
    }
    let json = serde_json::to_string(state).map_err(|e| e.to_string())?;
    let meta = HashMap::from([(STATE_KEY.to_string(), json)]);
    let bytes = safetensors_bytes(&tensors, Some(meta)).map_err(|e| e.to_string())?;
    write_atomic(&dir.join(STATE_FILE), &bytes)?;
    export(dir, trainable, "adapter/", ADAPTER_FILE)?;
    export(dir, trainable, "lora/", LORA_FILE)
}

/// Write the tensors under `prefix`, without it, to `dir/file`, atomically.
fn export(dir: &Path, trainable: &Named, prefix: &str, file: &str) -> Result<(), String> {
    let part: Vec<(String, Tensor)> = trainable
        .iter()
        .filter_map(|(n, t)| n.strip_prefix(prefix).map(|s| (s.to_string(), t.clone())))
        .collect();
    if part.is_empty() {
        return Ok(());
    }
    let bytes = safetensors_bytes(&part, None).map_err(|e| e.to_string())?;
    write_atomic(&dir.join(file), &bytes)
}

/// A checkpoint read back for `--resume`.
pub struct Loaded {
    /// The step, order and settings.
    pub state: TrainState,
    /// The tensors (`adapter/…`, `lora/…`, `adam_m/…`, `adam_v/…`).
    pub tensors: SafeTensors,
}

/// Read `dir`'s [`STATE_FILE`].
pub fn load(dir: &Path) -> Result<Loaded, String> {
    let path = dir.join(STATE_FILE);
    let bytes = std::fs::read(&path).map_err(|e| {
        format!(
            "{}: cannot read the training checkpoint: {e}",
            path.display()
        )
    })?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(STATE_KEY))
        .ok_or_else(|| format!("{}: no `{STATE_KEY}` in the header", path.display()))?;
    let state: TrainState =
        serde_json::from_str(json).map_err(|e| format!("{}: {STATE_KEY}: {e}", path.display()))?;
    let tensors = SafeTensors::open(&path).map_err(|e| e.to_string())?;
    Ok(Loaded { state, tensors })
}

/// The first setting that differs between a checkpoint and this run, as a message.
pub fn settings_mismatch(saved: &serde_json::Value, now: &serde_json::Value) -> Option<String> {
    let (Some(a), Some(b)) = (saved.as_object(), now.as_object()) else {
        return (saved != now).then(|| "the settings differ".to_string());
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().find_map(|k| {
        let (x, y) = (a.get(k), b.get(k));
        (x != y).then(|| {
            let show = |v: Option<&serde_json::Value>| v.map_or("absent".into(), |v| v.to_string());
            format!("`{k}` was {} in the checkpoint, {} now", show(x), show(y))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_settings_mismatch_names_the_field() {
        let a = json!({"stage": 1, "lr": 0.001});
        assert_eq!(settings_mismatch(&a, &a.clone()), None);
        let b = json!({"stage": 1, "lr": 0.002});
        let m = settings_mismatch(&a, &b).unwrap();
        assert!(m.contains("`lr` was 0.001"), "{m}");
    }
}
