//! Tokenizers built from model files.

pub mod gguf_bpe;
