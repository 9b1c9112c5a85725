//! The speech model built on the engine: audio front end, weight formats, Whisper.
//! (LLM, adapter, LoRA, prompts and generation arrive with issue 5.)

pub mod adapter;
pub mod audio;
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
