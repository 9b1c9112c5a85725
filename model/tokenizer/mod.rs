//! Tokenizers the LLMs need that are implemented here rather than taken from a crate.

pub mod sentencepiece;
