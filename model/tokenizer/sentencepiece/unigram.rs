//! Unigram segmentation: the Viterbi path through the lattice of all pieces found in the
//! normalized text, scored by the pieces' log-probabilities.
//!
//! Because the model is unigram, the best path ending at a byte position does not depend on what
//! follows, so one pass keeps only the best (score, start, id) per end position, as SentencePiece's
//! optimized encoder does. Details that decide ties and must match the reference exactly:
//! - candidates are visited by start position (one character at a time) and, per start, by
//!   increasing length; a candidate replaces the current best only if strictly better;
//! - a user-defined piece scores `length · max_score − 0.1` (max over normal pieces, starting from
//!   the smallest positive f32), which in practice always beats splitting it;
//! - path scores are summed and compared in f32. Equal-probability splits are common (here
//!   "000" = "0"+"00" = "00"+"0"), so the rounding decides them: summing in f64 and rounding only
//!   when storing picks the other split in "1,000,000" than the library does (golden test), while
//!   f32 sums agree on every golden;
//! - unused pieces are never produced;
//! - a character no single-character piece covers becomes the unknown piece with score
//!   `min_score − 10`.

use super::normalize::one_char_len;
use super::proto::PieceType;
use super::vocab::Vocab;

/// Penalty below the lowest piece score for an unknown character (SentencePiece's kUnkPenalty).
const UNK_PENALTY: f32 = 10.0;

/// Scores the segmentation needs beyond the pieces themselves.
#[derive(Debug, Clone)]
pub struct Unigram {
    min_score: f32,
    max_score: f32,
}

#[derive(Clone, Copy)]
struct Best {
    score: f32,
    start: Option<usize>,
    id: u32,
}

impl Unigram {
    /// Extreme scores over the normal pieces (the reference's starting values when there are none).
    pub fn new(vocab: &Vocab) -> Self {
        let mut min_score = f32::MAX;
        let mut max_score = f32::MIN_POSITIVE;
        for p in vocab.pieces() {
            if p.kind == PieceType::Normal {
                min_score = min_score.min(p.score);
                max_score = max_score.max(p.score);
            }
        }
        Unigram {
            min_score,
            max_score,
        }
    }

    /// Split `text` (normalized) into pieces: (bytes, id) in order, covering `text` exactly.
    pub fn encode<'t>(&self, vocab: &Vocab, text: &'t [u8]) -> Vec<(&'t [u8], u32)> {
        let size = text.len();
        if size == 0 {
            return Vec::new();
        }
        let unk_id = vocab.unk_id();
        let unk_score = self.min_score - UNK_PENALTY;
        let mut best = vec![
            Best {
                score: 0.0,
                start: None,
                id: unk_id,
            };
            size + 1
        ];
        let mut start = 0;
        while start < size {
            let here = best[start].score;
            let mblen = one_char_len(&text[start..]);
            let mut has_single = false;
            vocab.for_each_piece_prefix(&text[start..], |len, id| {
                let kind = vocab.kind(id);
                if kind == PieceType::Unused {
                    return;
                }
                let score = if kind == PieceType::UserDefined {
                    len as f32 * self.max_score - 0.1
                } else {
                    vocab.score(id)
                };
                let candidate = score + here;
                let target = &mut best[start + len];
                if target.start.is_none() || candidate > target.score {
                    *target = Best {
                        score: candidate,
                        start: Some(start),
                        id,
                    };
                }
                if len == mblen {
                    has_single = true;
                }
            });
            if !has_single {
                let candidate = unk_score + here;
                let target = &mut best[start + mblen];
                if target.start.is_none() || candidate > target.score {
                    *target = Best {
                        score: candidate,
                        start: Some(start),
                        id: unk_id,
                    };
                }
            }
            start += mblen;
        }
        let mut out = Vec::new();
        let mut end = size;
        while end > 0 {
            // Every character start gets a node (a piece or the unknown), so the chain always
            // reaches 0; the guard only keeps a broken invariant from looping.
            let Some(s) = best[end].start.filter(|&s| s < end) else {
                out.push((&text[..end], unk_id));
                break;
            };
            out.push((&text[s..end], best[end].id));
            end = s;
        }
        out.reverse();
        out
    }
}
