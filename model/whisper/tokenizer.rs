//! Whisper ids → text with the `tokenizers` crate on the checkpoint's own `tokenizer.json`.

use super::{Result, WhisperError};
use std::path::Path;

/// The byte-level BPE tokenizer shipped with a Whisper checkpoint.
pub struct WhisperTokenizer {
    inner: tokenizers::Tokenizer,
}

impl WhisperTokenizer {
    /// Load `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<WhisperTokenizer> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| WhisperError::Tokenizer(format!("{}: {e}", path.display())))?;
        Ok(WhisperTokenizer { inner })
    }

    /// Text of `ids`, special tokens (`<|…|>`) left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| WhisperError::Tokenizer(format!("decoding {ids:?}: {e}")))
    }

    /// Ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| WhisperError::Tokenizer(format!("encoding {text:?}: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }
}
