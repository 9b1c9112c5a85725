//! Tokenizers built from model files and implemented here rather than taken from a crate:
//! SentencePiece `tokenizer.model` ([`sentencepiece`], openPangu) and the byte-level BPE
//! embedded in GGUF files ([`gguf_bpe`], SmolLM2; built on the `tokenizers` crate).

pub mod gguf_bpe;
pub mod sentencepiece;
