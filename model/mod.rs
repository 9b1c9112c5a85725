//! The speech model built on the engine: audio front end, weight formats, Whisper.
//! (LLM, adapter, LoRA, prompts and generation arrive with issue 5.)

pub mod audio;
pub mod weights;
pub mod whisper;
