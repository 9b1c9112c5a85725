//! Fetching Whisper tensors by logical name: name tables ([`super::names`]), shape checks
//! against the config, f32 conversion, and row-block views of CTranslate2's fused tensors.

use super::config::WhisperConfig;
use super::names::{Convention, Loc};
use super::{Result, WhisperError};
use crate::engine::{DType, Device, Tensor};
use crate::model::weights::TensorSource;
use std::collections::HashMap;
use std::sync::Arc;

/// A store of named tensors (a checkpoint reader, or a map in tests).
pub trait WeightLookup {
    /// True when `name` is present.
    fn has(&self, name: &str) -> bool;
    /// The shape of `name`, `None` when absent.
    fn shape_of(&self, name: &str) -> Option<Vec<usize>>;
    /// The tensor `name` on `device` (any dtype), `Ok(None)` when absent.
    fn fetch(&self, name: &str, device: &Arc<dyn Device>) -> Result<Option<Tensor>>;
}

impl WeightLookup for HashMap<String, Tensor> {
    fn has(&self, name: &str) -> bool {
        self.contains_key(name)
    }
    fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        self.get(name).map(|t| t.shape().to_vec())
    }
    fn fetch(&self, name: &str, _device: &Arc<dyn Device>) -> Result<Option<Tensor>> {
        Ok(self.get(name).cloned())
    }
}

/// Any weight-file reader (CTranslate2 `model.bin`, …) is a lookup.
impl<T: TensorSource> WeightLookup for T {
    fn has(&self, name: &str) -> bool {
        self.shape(name).is_ok()
    }
    fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        self.shape(name).ok().map(<[usize]>::to_vec)
    }
    fn fetch(&self, name: &str, device: &Arc<dyn Device>) -> Result<Option<Tensor>> {
        if !self.has(name) {
            return Ok(None);
        }
        self.tensor(name, device)
            .map(Some)
            .map_err(|e| WhisperError::Source {
                name: name.to_string(),
                msg: e.to_string(),
            })
    }
}

/// The shape a logical tensor has in `src` (a fused tensor's block rows divided out; WeNet's
/// `[1, T, d]` positions as `[T, d]`), `None` when absent.
pub fn logical_shape_of(
    src: &dyn WeightLookup,
    conv: Convention,
    logical: &str,
) -> Result<Option<Vec<usize>>> {
    let Some(loc) = conv.name(logical) else {
        return Ok(None);
    };
    let Some(mut s) = src.shape_of(&loc.name) else {
        return Ok(None);
    };
    if let Some((_, parts)) = loc.split {
        if s.is_empty() || s[0] % parts != 0 {
            return Err(WhisperError::Invalid(format!(
                "fused tensor `{}` has shape {s:?}: dim 0 is not divisible into {parts} blocks",
                loc.name
            )));
        }
        s[0] /= parts;
    }
    if s.len() == 3 && s[0] == 1 && logical.ends_with("positional_embedding") {
        s.remove(0);
    }
    Ok(Some(s))
}

/// Expected shape of a logical tensor under `c` (positions: at least this many rows).
pub fn expected_shape(c: &WhisperConfig, logical: &str) -> Option<Vec<usize>> {
    let d = c.d_model;
    let s = match logical {
        "encoder.conv1.weight" => vec![d, c.n_mels, 3],
        "encoder.conv2.weight" => vec![d, d, 3],
        "encoder.positional_embedding" => vec![c.n_audio_ctx, d],
        "decoder.token_embedding.weight" => vec![c.n_vocab, d],
        "decoder.positional_embedding" => vec![c.n_text_ctx, d],
        l if l.ends_with("mlp.0.weight") => vec![c.ffn, d],
        l if l.ends_with("mlp.0.bias") => vec![c.ffn],
        l if l.ends_with("mlp.2.weight") => vec![d, c.ffn],
        l if l.ends_with(".weight") && (l.contains("ln") || l.contains("_ln")) => vec![d],
        l if l.ends_with(".weight") && l.contains("attn.") => vec![d, d],
        l if l.ends_with(".bias") => vec![d],
        _ => return None,
    };
    Some(s)
}

/// A loading session: the source, its convention, the config and fused tensors already read.
pub struct Params<'a> {
    src: &'a dyn WeightLookup,
    conv: Convention,
    /// The sizes every shape is checked against.
    pub config: WhisperConfig,
    device: Arc<dyn Device>,
    fused: HashMap<String, Tensor>,
}

impl<'a> Params<'a> {
    /// Start loading from `src`.
    pub fn new(
        src: &'a dyn WeightLookup,
        conv: Convention,
        config: WhisperConfig,
        device: &Arc<dyn Device>,
    ) -> Params<'a> {
        Params {
            src,
            conv,
            config,
            device: device.clone(),
            fused: HashMap::new(),
        }
    }

    /// The device tensors are loaded onto.
    pub fn device(&self) -> &Arc<dyn Device> {
        &self.device
    }

    /// True when the logical tensor is present.
    pub fn has(&self, logical: &str) -> bool {
        self.conv
            .name(logical)
            .is_some_and(|l| self.src.has(&l.name))
    }

    fn missing(&self, name: String, logical: &str) -> WhisperError {
        WhisperError::MissingTensor {
            name,
            convention: self.conv,
            logical: logical.to_string(),
        }
    }

    fn read(&mut self, loc: &Loc, logical: &str) -> Result<Tensor> {
        if let Some(t) = self.fused.get(&loc.name) {
            return Ok(t.clone());
        }
        let t = self
            .src
            .fetch(&loc.name, &self.device)?
            .ok_or_else(|| self.missing(loc.name.clone(), logical))?;
        // The engine's kernels want f32 activations; weights are widened once here.
        let t = if t.dtype() == DType::F32 {
            t
        } else {
            t.to_dtype(DType::F32)?
        };
        if loc.split.is_some() {
            self.fused.insert(loc.name.clone(), t.clone());
        }
        Ok(t)
    }

    /// The logical tensor as f32, its shape checked against the config. Positions may have
    /// more rows than the config's context (only the first ones are used and returned).
    pub fn get(&mut self, logical: &str) -> Result<Tensor> {
        let loc = self
            .conv
            .name(logical)
            .ok_or_else(|| self.missing(String::new(), logical))?;
        let want = expected_shape(&self.config, logical)
            .ok_or_else(|| WhisperError::Invalid(format!("no expected shape for `{logical}`")))?;
        let mut t = self.read(&loc, logical)?;
        let is_pos = logical.ends_with("positional_embedding");
        if is_pos && t.rank() == 3 && t.shape()[0] == 1 {
            t = t.squeeze(0)?;
        }
        let bad = |found: &[usize], expected: Vec<usize>| WhisperError::BadShape {
            name: loc.name.clone(),
            expected,
            found: found.to_vec(),
        };
        if let Some((i, parts)) = loc.split {
            let mut full = want.clone();
            full[0] *= parts;
            if t.shape() != full.as_slice() {
                return Err(bad(t.shape(), full));
            }
            // A view of the block: no copy, the fused storage is shared.
            return Ok(t.narrow(0, i * want[0], want[0])?);
        }
        if is_pos {
            let s = t.shape();
            if s.len() != 2 || s[1] != want[1] || s[0] < want[0] {
                return Err(bad(s, want));
            }
            return Ok(t.narrow(0, 0, want[0])?);
        }
        if t.shape() != want.as_slice() {
            return Err(bad(t.shape(), want));
        }
        Ok(t)
    }
}
