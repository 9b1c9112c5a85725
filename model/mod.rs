//! The speech model built on the engine: audio front end ([`audio`]), weight formats
//! ([`weights`]), Whisper ([`whisper`]), the Llama-family LLM with LoRA and generation ([`llm`]),
//! tokenizers ([`tokenizer`]), prompt templates ([`prompt`]) and the task/label tags of answers
//! ([`tags`]).

pub mod adapter;
pub mod audio;
pub mod llm;
pub mod osum;
pub mod preset;
pub mod prompt;
pub mod tags;
pub mod text;
pub mod tokenizer;
pub mod weights;
pub mod whisper;

use std::path::PathBuf;

/// Where `osum setup` puts models and the CLI looks for them: `$OSUM_HOME`, else `./models`.
pub fn home() -> PathBuf {
    std::env::var_os("OSUM_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("models"))
}
