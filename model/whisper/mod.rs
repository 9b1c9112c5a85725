//! Whisper on the engine (REFERENCE §3): the encoder OSUM builds on, and the decoder used to
//! validate the engine end to end on real weights.
//!
//! - [`config`]: model sizes (presets and inference from the weights' shapes).
//! - [`names`]: explicit weight-name tables for OpenAI, HF, WeNet/OSUM and CTranslate2 checkpoints.
//! - [`params`]: fetching tensors by logical name with shape checks (and splitting fused tensors).
//! - [`encoder`], [`decoder`]: the networks; [`tokenizer`]: ids → text.
//! - [`transcribe`]: a model directory → text, in 30 s windows.
//! - [`random`]: seeded random weights under any naming, for tests without downloads.

pub mod config;
pub mod decoder;
pub mod encoder;
pub mod layers;
pub mod names;
pub mod params;
pub mod random;
pub mod tokenizer;
pub mod transcribe;

pub use config::WhisperConfig;
pub use decoder::{DecodeState, Decoder, Suppress};
pub use encoder::Encoder;
pub use names::Convention;
pub use params::WeightLookup;
pub use tokenizer::WhisperTokenizer;

use crate::engine::{no_grad, Device, Tensor};
use std::sync::Arc;

/// `<|endoftext|>` in the English-only and multilingual vocabularies.
pub const EOT: u32 = 50256;
/// `<|startoftranscript|>` (English-only vocabulary).
pub const SOT_EN: u32 = 50257;
/// `<|notimestamps|>` (English-only vocabulary).
pub const NO_TIMESTAMPS_EN: u32 = 50362;

/// Everything that can go wrong building or running Whisper.
#[derive(Debug, thiserror::Error)]
pub enum WhisperError {
    /// An engine op refused (shape, dtype, device).
    #[error(transparent)]
    Engine(#[from] crate::engine::Error),
    /// A tensor the model needs is not in the checkpoint.
    #[error("whisper weights: missing tensor `{name}` ({convention:?} naming, for `{logical}`)")]
    MissingTensor {
        /// The checkpoint name looked up.
        name: String,
        /// The naming convention in use.
        convention: Convention,
        /// The logical (OpenAI-style) name it stands for.
        logical: String,
    },
    /// A tensor has the wrong shape.
    #[error("whisper weights: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    BadShape {
        /// The checkpoint name.
        name: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape in the checkpoint.
        found: Vec<usize>,
    },
    /// No known naming convention matches the checkpoint.
    #[error(
        "whisper weights: cannot tell the naming convention (no conv1 weight under any known name)"
    )]
    UnknownConvention,
    /// The weights layer failed to read a tensor.
    #[error("whisper weights: reading `{name}`: {msg}")]
    Source {
        /// The tensor being read.
        name: String,
        /// The underlying error.
        msg: String,
    },
    /// A bad argument or configuration (input length, token ids, …).
    #[error("whisper: {0}")]
    Invalid(String),
    /// The tokenizer file could not be loaded or used.
    #[error("whisper tokenizer: {0}")]
    Tokenizer(String),
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, WhisperError>;

/// A whole Whisper model: the encoder and (when the checkpoint has one) the decoder.
pub struct Whisper {
    device: Arc<dyn Device>,
    /// Sizes.
    pub config: WhisperConfig,
    /// The audio encoder.
    pub encoder: Encoder,
    /// The text decoder (absent in encoder-only checkpoints such as OSUM's).
    pub decoder: Option<Decoder>,
}

impl Whisper {
    /// Load from `src`, detecting the naming convention and inferring the sizes from the
    /// tensors' shapes; the decoder is loaded when the checkpoint has token embeddings.
    pub fn load(src: &dyn WeightLookup, device: &Arc<dyn Device>) -> Result<Whisper> {
        let convention = Convention::detect(src)?;
        let config = WhisperConfig::infer(src, convention)?;
        Self::load_with(src, convention, config, device)
    }

    /// Load with a known convention and config (every shape is checked against `config`).
    pub fn load_with(
        src: &dyn WeightLookup,
        convention: Convention,
        config: WhisperConfig,
        device: &Arc<dyn Device>,
    ) -> Result<Whisper> {
        let mut p = params::Params::new(src, convention, config, device);
        let encoder = Encoder::load(&mut p)?;
        let decoder = if config.n_text_layer > 0 && p.has("decoder.token_embedding.weight") {
            Some(Decoder::load(&mut p)?)
        } else {
            None
        };
        Ok(Whisper {
            device: device.clone(),
            config,
            encoder,
            decoder,
        })
    }

    /// The device the weights live on.
    pub fn encoder_device(&self) -> Arc<dyn Device> {
        self.device.clone()
    }

    /// Greedy transcription of one log-mel segment `[n_mels, T]` (T ≤ 3000, padded or not)
    /// from `prompt` until [`EOT`] or `max_tokens` new tokens; returns the new tokens without
    /// the prompt and without EOT, never choosing a `suppress`ed token.
    pub fn greedy(
        &self,
        mel: &Tensor,
        prompt: &[u32],
        max_tokens: usize,
        suppress: &Suppress,
    ) -> Result<Vec<u32>> {
        let dec = self
            .decoder
            .as_ref()
            .ok_or_else(|| WhisperError::Invalid("this checkpoint has no decoder".into()))?;
        no_grad(|| {
            let enc = self.encoder.forward(&mel.unsqueeze(0)?)?;
            dec.greedy(&enc, prompt, EOT, max_tokens, suppress)
        })
    }
}
