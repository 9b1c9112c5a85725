//! Llama-family decoder LLMs (REFERENCE §5): openPangu-Embedded-7B, Qwen2-7B and SmolLM2-135M
//! share one block (`h = x + o(attn(RMSNorm(x)))`, `out = h + down(silu(gate(n))·up(n))`) and
//! differ only in sizes, biases, RoPE θ, RMSNorm eps and tied embeddings — all in [`LlmConfig`].
//!
//! - [`config`]: sizes and switches; presets; parsing an HF `config.json`.
//! - [`layers`]: [`Linear`] (with an optional LoRA), [`RmsNorm`], the attention and MLP blocks.
//! - [`lora`]: LoRA adapters (REFERENCE §7): creation, merge/unmerge.
//! - [`cache`]: the per-layer key/value cache, with beam reordering.
//! - [`model`]: [`Llm`]: loading by HF tensor names, forward with or without a cache.
//! - [`mod@generate`]: the generation loop: greedy, sampling, beam search, stop ids, streaming;
//!   [`sampling`] (penalty, top-k/top-p, draws) and [`beam`] (beam search) are its parts.
//! - [`peft`]: reading a prefixed, PEFT-wrapped checkpoint (OSUM `infer.pt`) and its adapters.
//! - [`random`]: seeded random weights in memory, for tests without files.
//!
//! Batches run without an attention mask: sequences of one batch must share their length, or be
//! right-padded for training (causal attention never lets a real token see the padding after
//! it; mask the padded targets in the loss). The KV cache is for inference (`no_grad`).

pub mod beam;
pub mod cache;
pub mod config;
pub mod generate;
pub mod layers;
pub mod lora;
pub mod model;
pub mod peft;
pub mod random;
pub mod sampling;

pub use cache::LlmCache;
pub use config::LlmConfig;
pub use generate::{generate, generate_from_embeds, Generation, GenerationConfig, Strategy};
pub use layers::{Linear, RmsNorm};
pub use lora::{Lora, LoraTarget};
pub use model::Llm;

use crate::model::weights::WeightsError;

/// Everything that can go wrong configuring, loading or running an LLM.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// An engine op refused (shape, dtype, device).
    #[error(transparent)]
    Engine(#[from] crate::engine::Error),
    /// The weights layer failed (file, missing tensor, unsupported dtype).
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// A tensor the model needs is not in the checkpoint.
    #[error("llm weights: missing tensor `{0}`")]
    MissingTensor(String),
    /// A tensor has the wrong shape for the configuration.
    #[error("llm weights: tensor `{name}` has shape {found:?}, the config implies {expected:?}")]
    BadShape {
        /// The checkpoint name.
        name: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape in the checkpoint.
        found: Vec<usize>,
    },
    /// A configuration that is inconsistent or uses a feature this implementation lacks;
    /// `source` names where it came from (a file path or "preset").
    #[error("llm config ({source_name}): {msg}")]
    Config {
        /// Where the configuration came from.
        source_name: String,
        /// What is wrong.
        msg: String,
    },
    /// A bad argument (token ids out of range, cache too small, bad sampling parameters, …).
    #[error("llm: {0}")]
    Invalid(String),
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, LlmError>;
