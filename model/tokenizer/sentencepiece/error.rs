//! The SentencePiece error type: every message names the model file and, for malformed bytes,
//! the offset; decoding names the offending id.

use std::path::PathBuf;

/// Everything loading or decoding can refuse.
#[derive(Debug, thiserror::Error)]
pub enum SpmError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The model file.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The bytes are not a well-formed `ModelProto`.
    #[error("{}: malformed SentencePiece model at byte {offset}: {msg}", path.display())]
    Malformed {
        /// The model file (or the name given to [`super::SentencePiece::from_bytes`]).
        path: PathBuf,
        /// Byte offset of the element that is wrong.
        offset: u64,
        /// What was read and what was wrong with it.
        msg: String,
    },
    /// A well-formed model whose content is inconsistent or unsupported.
    #[error("{}: invalid SentencePiece model: {msg}", path.display())]
    Invalid {
        /// The model file.
        path: PathBuf,
        /// What is inconsistent.
        msg: String,
    },
    /// An id outside the vocabulary was given to decode.
    #[error("token id {id} is outside the vocabulary of {vocab_size} pieces")]
    IdOutOfRange {
        /// The id.
        id: u32,
        /// Number of pieces.
        vocab_size: usize,
    },
}
