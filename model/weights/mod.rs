//! Weight files: readers that map a file, check its structure against its length, and hand out
//! engine tensors by name.
//!
//! - [`ctranslate2`]: CTranslate2 `model.bin` (Whisper tiny.en; REFERENCE.md §8).
//! - [`safetensors`]: safetensors, one file or sharded by an `*.index.json`.
//! - [`pytorch`]: PyTorch `torch.save` zips (the released OSUM checkpoints), read through
//!   [`pickle`], a restricted unpickler that never runs code; plus the OSUM key normalizer.
//! - [`gguf`]: GGUF v3 (llama.cpp; SmolLM2), dequantized on load; [`GgufLlama`] gives it HF names.
//! - [`osum_parts`]: one [`TensorSource`] per part (encoder, adapter, LLM, LoRA) of an OSUM
//!   checkpoint.
//! - [`install`]: fetching and verifying the real weights of DATA.md (`osum setup`).
//! - [`stored`]: the stored element types and the byte → host buffer conversion they share.
//! - [`budget`]: the process-wide memory budget for weights (`--max-memory`).
//! - [`finite`]: the NaN/Inf scan of `--check-weights`.
//! - [`error`]: the error type, [`WeightsError`].
//!
//! Models load through [`TensorSource`], so the same model code reads any of the formats.

pub mod budget;
pub mod ctranslate2;
pub mod error;
pub mod finite;
pub mod gguf;
pub mod install;
pub mod osum_parts;
pub mod pickle;
pub mod pytorch;
pub mod safetensors;
pub mod stored;

pub use ctranslate2::CtModel;
pub use error::WeightsError;
pub use gguf::{GgufFile, GgufLlama};
pub use osum_parts::PartSource;
pub use pytorch::{normalize_key, Component, KeyLayout, OsumMapping, PtCheckpoint, PtTensorInfo};
pub use safetensors::{SafeFile, SafeTensors};
pub use stored::StoredDType;

use crate::engine::{Device, Tensor};
use std::sync::Arc;

/// A set of named tensors in some file format.
pub trait TensorSource {
    /// Every name [`TensorSource::tensor`] accepts.
    fn names(&self) -> Vec<&str>;
    /// The shape of `name`.
    fn shape(&self, name: &str) -> Result<&[usize], WeightsError>;
    /// The stored element type of `name`.
    fn dtype(&self, name: &str) -> Result<StoredDType, WeightsError>;
    /// Load `name` onto `dev` (f32, f16, bf16 keep their type; borrowed from the file's map
    /// where the format allows, see [`stored::tensor_from_map`]).
    fn tensor(&self, name: &str, dev: &Arc<dyn Device>) -> Result<Tensor, WeightsError>;
}
