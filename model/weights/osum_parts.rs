//! The parts of a released OSUM checkpoint as [`TensorSource`]s (REFERENCE §7): one
//! [`PartSource`] per model part, answering to the names that part's loader asks for, and
//! remembering what it handed out so the caller can check every tensor was used.
//!
//! Names each part answers to (the canonical names of [`OsumMapping`]):
//! - [`Component::Encoder`]: WeNet names (`encoder.encoders.N.self_attn.linear_q.weight`), read
//!   by the Whisper encoder under [`crate::model::whisper::Convention::Wenet`];
//! - [`Component::Adapter`]: the adapter's own keys (`down_sample_2.conv.1.weight`, …);
//! - [`Component::LlmBase`]: Hugging Face Llama names (`model.layers.N.self_attn.q_proj.weight`);
//! - [`Component::LoraA`] / [`Component::LoraB`]: `{module}.lora_A.weight` /
//!   `{module}.lora_B.weight`, the plain PEFT names that
//!   [`crate::model::llm::peft::attach_peft_lora`] reads with an empty prefix.

use super::pytorch::{Component, OsumMapping, PtCheckpoint};
use super::{StoredDType, TensorSource, WeightsError};
use crate::engine::{Device, Tensor};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// The name a part's loader uses for the canonical `name` of `component`.
fn source_name(component: Component, name: &str) -> String {
    match component {
        Component::LoraA => format!("{name}.lora_A.weight"),
        Component::LoraB => format!("{name}.lora_B.weight"),
        _ => name.to_string(),
    }
}

/// Some components of a [`PtCheckpoint`] under the names their loader asks for.
pub struct PartSource<'a> {
    ckpt: &'a PtCheckpoint,
    /// Source name → raw checkpoint key.
    names: BTreeMap<String, String>,
    /// Raw keys handed out by [`TensorSource::tensor`].
    used: Mutex<BTreeSet<String>>,
}

impl<'a> PartSource<'a> {
    /// The tensors of `components` in `mapping` (made from `ckpt`).
    pub fn new(
        ckpt: &'a PtCheckpoint,
        mapping: &OsumMapping,
        components: &[Component],
    ) -> PartSource<'a> {
        let names = mapping
            .iter()
            .filter(|(c, _, _)| components.contains(c))
            .map(|(c, name, raw)| (source_name(c, name), raw.to_string()))
            .collect();
        PartSource {
            ckpt,
            names,
            used: Mutex::new(BTreeSet::new()),
        }
    }

    fn raw(&self, name: &str) -> Result<&str, WeightsError> {
        self.names
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| WeightsError::Missing {
                path: self.ckpt.path().to_path_buf(),
                name: name.to_string(),
            })
    }

    /// The raw checkpoint keys of this part that were never loaded, sorted.
    pub fn unused(&self) -> Vec<String> {
        let used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        self.names
            .values()
            .filter(|raw| !used.contains(*raw))
            .cloned()
            .collect()
    }

    /// Number of tensors in this part.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when the part holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

impl TensorSource for PartSource<'_> {
    fn names(&self) -> Vec<&str> {
        self.names.keys().map(String::as_str).collect()
    }
    fn shape(&self, name: &str) -> Result<&[usize], WeightsError> {
        self.ckpt.shape(self.raw(name)?)
    }
    fn dtype(&self, name: &str) -> Result<StoredDType, WeightsError> {
        self.ckpt.dtype(self.raw(name)?)
    }
    fn tensor(&self, name: &str, dev: &Arc<dyn Device>) -> Result<Tensor, WeightsError> {
        let raw = self.raw(name)?;
        let t = self.ckpt.tensor(raw, dev)?;
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(raw.to_string());
        Ok(t)
    }
}
