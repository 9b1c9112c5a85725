//! SentencePiece tokenizer (`tokenizer.model`), implemented from the file format up: openPangu
//! ships only this file.
//!
//! - [`proto`]: the protobuf `ModelProto` (pieces, trainer and normalizer specs).
//! - [`normalize`]: the precompiled charsmap (e.g. `nmt_nfkc`) and the whitespace rules.
//! - [`vocab`]: piece tables and the loader's consistency checks.
//! - [`trie`]: the byte trie behind prefix lookups.
//! - [`unigram`], [`bpe`]: the two segmentation algorithms.
//! - [`decode`]: ids back to text.
//! - [`error`]: the error type, [`SpmError`].
//!
//! Encoding is normalize → segment → byte fallback (each byte of an unknown piece becomes its
//! `<0xNN>` piece) or, without byte fallback, runs of unknown pieces merged into one. Decoding maps
//! ids to pieces, drops control pieces, reassembles runs of byte pieces into UTF-8 (each byte that
//! does not start a valid character becomes U+FFFD), turns U+2581 back into spaces and strips the
//! whitespace the dummy prefix added. Both follow Google's sentencepiece library (checked against
//! sentencepiece 0.2.3 by `tests/sentencepiece.rs`).

pub mod bpe;
pub mod decode;
pub mod error;
pub mod normalize;
pub mod proto;
pub mod trie;
pub mod unigram;
pub mod vocab;

pub use error::SpmError;
pub use proto::{ModelType, PieceType};

use normalize::{Normalizer, UserSymbols};
use std::path::Path;
use unigram::Unigram;
use vocab::Vocab;

/// The segmentation algorithm and its state.
#[derive(Debug, Clone)]
enum Algorithm {
    Unigram(Unigram),
    Bpe,
}

/// A loaded SentencePiece model: encode text to ids and decode ids to text.
#[derive(Debug, Clone)]
pub struct SentencePiece {
    vocab: Vocab,
    algorithm: Algorithm,
    model_type: ModelType,
    user: UserSymbols,
    normalizer: Normalizer,
    denormalizer: Option<Normalizer>,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    unk_surface: String,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    pad_id: Option<u32>,
}

impl SentencePiece {
    /// Read and check a `tokenizer.model` file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SpmError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| SpmError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Parse a serialized model; `name` labels errors (normally the file it came from).
    pub fn from_bytes(bytes: &[u8], name: impl AsRef<Path>) -> Result<Self, SpmError> {
        let path = name.as_ref().to_path_buf();
        let m = proto::parse_model(bytes).map_err(|e| SpmError::Malformed {
            path: path.clone(),
            offset: e.offset,
            msg: e.msg,
        })?;
        let invalid = |msg: String| SpmError::Invalid {
            path: path.clone(),
            msg,
        };
        let model_type = m.trainer.model_type;
        if !matches!(model_type, ModelType::Unigram | ModelType::Bpe) {
            return Err(invalid(format!(
                "model type {model_type:?} is not supported (only unigram and BPE)"
            )));
        }
        let vocab = Vocab::new(m.pieces, m.trainer.byte_fallback).map_err(&invalid)?;
        let user = UserSymbols::new(
            vocab
                .pieces()
                .iter()
                .filter(|p| p.kind == PieceType::UserDefined)
                .map(|p| p.piece.as_str()),
        );
        let suffix = m.trainer.treat_whitespace_as_suffix;
        let normalizer = Normalizer::new(&m.normalizer, user.clone(), suffix)
            .map_err(|e| invalid(format!("normalizer_spec: {e}")))?;
        // Upstream applies a denormalizer only when it carries rules.
        let denormalizer = match &m.denormalizer {
            Some(spec) if !spec.precompiled_charsmap.is_empty() => Some(
                Normalizer::new(spec, UserSymbols::default(), false)
                    .map_err(|e| invalid(format!("denormalizer_spec: {e}")))?,
            ),
            _ => None,
        };
        // Special ids are looked up by piece name and type, as the reference's bos_id() etc. do.
        let special = |piece: &str, kind: PieceType| {
            vocab
                .exact_id(piece.as_bytes())
                .filter(|&id| vocab.kind(id) == kind)
        };
        let algorithm = match model_type {
            ModelType::Unigram => Algorithm::Unigram(Unigram::new(&vocab)),
            _ => Algorithm::Bpe,
        };
        Ok(SentencePiece {
            bos_id: special(&m.trainer.bos_piece, PieceType::Control),
            eos_id: special(&m.trainer.eos_piece, PieceType::Control),
            pad_id: special(&m.trainer.pad_piece, PieceType::Control),
            algorithm,
            model_type,
            user,
            normalizer,
            denormalizer,
            add_dummy_prefix: m.normalizer.add_dummy_prefix,
            remove_extra_whitespaces: m.normalizer.remove_extra_whitespaces,
            unk_surface: m.trainer.unk_surface,
            vocab,
        })
    }

    /// The text as the model sees it before segmentation (rules applied, spaces as U+2581).
    pub fn normalize(&self, text: &str) -> String {
        String::from_utf8_lossy(&self.normalizer.normalize(text.as_bytes())).into_owned()
    }

    /// Pieces and ids for `text`, before ids are collected (shared by the encode functions).
    fn segment(&self, text: &str) -> Vec<(Vec<u8>, u32)> {
        let normalized = self.normalizer.normalize(text.as_bytes());
        let pieces = match &self.algorithm {
            Algorithm::Unigram(u) => u.encode(&self.vocab, &normalized),
            Algorithm::Bpe => bpe::encode(&self.vocab, &self.user, &normalized),
        };
        let mut out: Vec<(Vec<u8>, u32)> = Vec::with_capacity(pieces.len());
        let mut prev_unk = false;
        for (bytes, id) in pieces {
            let kind = self.vocab.kind(id);
            let is_unk = kind == PieceType::Unknown;
            if kind == PieceType::Control {
                out.push((bytes.to_vec(), id));
            } else if is_unk && self.vocab.byte_fallback() {
                for &b in bytes {
                    if let Some(bid) = self.vocab.byte_id(b) {
                        out.push((vocab::byte_piece(b).into_bytes(), bid));
                    }
                }
            } else if is_unk && prev_unk {
                // Without byte fallback a run of unknown characters is one unknown piece.
                if let Some(last) = out.last_mut() {
                    last.0.extend_from_slice(bytes);
                }
            } else {
                out.push((bytes.to_vec(), id));
            }
            prev_unk = is_unk;
        }
        out
    }

    /// Token ids for `text` (no BOS/EOS).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.encode_with(text, false, false)
    }

    /// Token ids for `text`, with the BOS and/or EOS id around them when asked for and the model
    /// has them.
    pub fn encode_with(&self, text: &str, add_bos: bool, add_eos: bool) -> Vec<u32> {
        let mut ids = Vec::new();
        if let (true, Some(b)) = (add_bos, self.bos_id) {
            ids.push(b);
        }
        ids.extend(self.segment(text).into_iter().map(|(_, id)| id));
        if let (true, Some(e)) = (add_eos, self.eos_id) {
            ids.push(e);
        }
        ids
    }

    /// The pieces `encode` chooses, as text (unknown runs as their surface text, byte pieces as
    /// `<0xNN>`).
    pub fn encode_pieces(&self, text: &str) -> Vec<String> {
        self.segment(text)
            .into_iter()
            .map(|(b, _)| String::from_utf8_lossy(&b).into_owned())
            .collect()
    }

    /// Text for `ids`. Fails only on an id outside the vocabulary.
    pub fn decode(&self, ids: &[u32]) -> Result<String, SpmError> {
        let rules = decode::Rules {
            strip_bos_space: self.add_dummy_prefix || self.remove_extra_whitespaces,
            remove_extra_whitespaces: self.remove_extra_whitespaces,
            unk_surface: &self.unk_surface,
        };
        let text = decode::decode(&self.vocab, &rules, ids)?;
        let text = match &self.denormalizer {
            Some(d) => d.normalize(&text),
            None => text,
        };
        Ok(match String::from_utf8(text) {
            Ok(s) => s,
            // Pieces are checked UTF-8, so only a denormalizer rule can get here.
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// The piece for `id`, if `id` is in the vocabulary.
    pub fn id_to_piece(&self, id: u32) -> Option<&str> {
        self.vocab.get(id).map(|p| p.piece.as_str())
    }

    /// The id of `piece`, or the unknown id when no piece is spelled so (SentencePiece's
    /// `piece_to_id`); see [`SentencePiece::get_piece_id`] for an exact lookup.
    pub fn piece_to_id(&self, piece: &str) -> u32 {
        self.vocab.piece_to_id(piece.as_bytes())
    }

    /// The id of `piece`, if the vocabulary has it.
    pub fn get_piece_id(&self, piece: &str) -> Option<u32> {
        self.vocab.exact_id(piece.as_bytes())
    }

    /// Number of pieces; ids are `0..vocab_size()`.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// The type of the piece `id` (None outside the vocabulary).
    pub fn piece_type(&self, id: u32) -> Option<PieceType> {
        self.vocab.get(id).map(|p| p.kind)
    }

    /// The score of the piece `id` (None outside the vocabulary).
    pub fn score(&self, id: u32) -> Option<f32> {
        self.vocab.get(id).map(|p| p.score)
    }

    /// Unigram or BPE.
    pub fn model_type(&self) -> ModelType {
        self.model_type
    }

    /// The unknown piece's id (every model has one).
    pub fn unk_id(&self) -> u32 {
        self.vocab.unk_id()
    }

    /// The id of the trainer's BOS piece, if the model has it as a control piece.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// The id of the trainer's EOS piece, if the model has it as a control piece.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// The id of the trainer's padding piece, if the model has it as a control piece.
    pub fn pad_id(&self) -> Option<u32> {
        self.pad_id
    }
}
