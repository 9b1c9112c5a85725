//! The speech adapter between the Whisper encoder and the LLM (REFERENCE §4): a 4× downsampler,
//! a small pre-LN transformer (`speech_transformer`), a projection to the LLM width
//! (`speech_llama_proj`) and the speech BOS/EOS embeddings (`speech_token_emded`).
//!
//! - [`config`]: sizes and the downsampler variant, presets, JSON.
//! - [`params`]: the parameter table (OSUM names, shapes, PyTorch-like init), loading from any
//!   [`crate::model::weights::TensorSource`] and seeded random init.
//! - [`released`]: the released checkpoints' causal Conv1d downsampler (`down_sample_2`).
//! - [`conv2d`]: the paper's WeNet `Conv2dSubsampling4` downsampler.
//! - [`positions`]: WeNet's interleaved sinusoidal positions.
//! - [`layers`]: Linear, LayerNorm, masked self-attention, ReLU feed-forward, padding masks.
//! - [`transformer`]: the speech transformer's blocks and final norm.
//! - [`model`]: [`Adapter`], the whole module: forward over padded batches, BOS/EOS,
//!   named parameters, trainable copies.
//! - [`save`]: writing named tensors as safetensors (the trainer's checkpoints).
//!
//! Padded batches: items are right-padded to a common length and their lengths passed along.
//! Both downsamplers only look backwards or within an item's own frames for its valid outputs,
//! and attention hides padded keys, so every item's valid rows equal a run of that item alone.

pub mod config;
pub mod conv2d;
pub mod layers;
pub mod model;
pub mod params;
pub mod positions;
pub mod released;
pub mod save;
pub mod transformer;

pub use config::{AdapterConfig, AdapterVariant};
pub use model::{Adapter, AdapterOutput};
pub use save::{safetensors_bytes, save_safetensors};

use crate::model::weights::WeightsError;

/// Everything that can go wrong building or running the adapter.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// An engine op refused (shape, dtype, device).
    #[error(transparent)]
    Engine(#[from] crate::engine::Error),
    /// The weight file refused (missing tensor, unreadable file); the message names the file.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// A tensor is not shaped as the config says.
    #[error("adapter weights: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    BadShape {
        /// The full tensor name (with the prefix).
        name: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape found.
        found: Vec<usize>,
    },
    /// An in-memory parameter set lacks a tensor.
    #[error("adapter weights: missing tensor `{0}`")]
    Missing(String),
    /// An invalid configuration (the message names the field or the file).
    #[error("adapter config: {0}")]
    Config(String),
    /// An input the adapter cannot take (shape, lengths, too long).
    #[error("adapter input: {0}")]
    Input(String),
    /// Writing a checkpoint failed.
    #[error("{path}: {msg}")]
    Save {
        /// The file being written.
        path: String,
        /// What failed.
        msg: String,
    },
}

/// Result with [`AdapterError`].
pub type Result<T> = std::result::Result<T, AdapterError>;
