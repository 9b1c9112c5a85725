//! The vocabulary tables both piece models read, built and checked once at load.
//!
//! As in SentencePiece, pieces are split into two lookup tables: the ones encoding can produce from
//! text (normal, user-defined and unused pieces) and the reserved ones (unknown, control, byte),
//! which only [`Vocab::piece_to_id`] sees. The checks are the reference loader's: no empty or
//! duplicate piece, exactly one unknown piece, byte pieces only with byte fallback, and then all 256.

use super::proto::{Piece, PieceType};
use super::trie::Trie;
use std::collections::HashMap;

/// Piece tables with ids as `u32`.
#[derive(Debug, Clone)]
pub struct Vocab {
    pieces: Vec<Piece>,
    /// Normal, user-defined and unused pieces: what encoding can match in text.
    normal: HashMap<Vec<u8>, u32>,
    /// Unknown, control and byte pieces.
    reserved: HashMap<Vec<u8>, u32>,
    unk_id: u32,
    /// Id of the `<0xNN>` piece for every byte, when byte fallback is on.
    byte_ids: Option<Box<[u32; 256]>>,
    /// The keys of `normal`, for the unigram lattice.
    normal_trie: Trie,
}

/// `<0xNN>` with upper-case hex, the only spelling SentencePiece gives byte pieces.
pub fn byte_piece(b: u8) -> String {
    format!("<0x{b:02X}>")
}

/// The byte a `<0xNN>` piece stands for.
pub fn piece_byte(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    let b = u8::from_str_radix(hex, 16).ok()?;
    // Only the canonical spelling counts (`<0x0a>` or `<0x+A>` are ordinary pieces).
    (hex.len() == 2 && byte_piece(b) == piece).then_some(b)
}

impl Vocab {
    /// Build and check the tables; the error names the offending piece.
    pub fn new(pieces: Vec<Piece>, byte_fallback: bool) -> Result<Self, String> {
        if pieces.len() > u32::MAX as usize {
            return Err(format!("{} pieces do not fit 32-bit ids", pieces.len()));
        }
        let mut normal = HashMap::new();
        let mut reserved = HashMap::new();
        let mut unk_id = None;
        let mut bytes = [u32::MAX; 256];
        for (i, p) in pieces.iter().enumerate() {
            let id = i as u32;
            if p.piece.is_empty() {
                return Err(format!("piece {id} is empty"));
            }
            let is_normal = matches!(
                p.kind,
                PieceType::Normal | PieceType::UserDefined | PieceType::Unused
            );
            let table = if is_normal {
                &mut normal
            } else {
                &mut reserved
            };
            if let Some(prev) = table.insert(p.piece.as_bytes().to_vec(), id) {
                return Err(format!("piece {id} {:?} duplicates piece {prev}", p.piece));
            }
            match p.kind {
                PieceType::Unknown => {
                    if let Some(prev) = unk_id {
                        return Err(format!("pieces {prev} and {id} are both the unknown piece"));
                    }
                    unk_id = Some(id);
                }
                PieceType::Byte => {
                    if !byte_fallback {
                        return Err(format!(
                            "byte piece {id} {:?} in a model without byte_fallback",
                            p.piece
                        ));
                    }
                    let b = piece_byte(&p.piece).ok_or_else(|| {
                        format!("piece {id} {:?} is typed BYTE but is not <0xNN>", p.piece)
                    })?;
                    bytes[b as usize] = id;
                }
                _ => {}
            }
        }
        let unk_id = unk_id.ok_or("no piece is the unknown piece")?;
        let byte_ids = if byte_fallback {
            if let Some(b) = bytes.iter().position(|&id| id == u32::MAX) {
                return Err(format!(
                    "byte_fallback is on but there is no byte piece {}",
                    byte_piece(b as u8)
                ));
            }
            Some(Box::new(bytes))
        } else {
            None
        };
        let normal_trie = Trie::new(normal.iter().map(|(k, &v)| (k.as_slice(), v)));
        Ok(Vocab {
            pieces,
            normal,
            reserved,
            unk_id,
            byte_ids,
            normal_trie,
        })
    }

    /// Number of pieces (ids are `0..len`).
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    /// True for a vocabulary without pieces (a valid model always has at least `<unk>`).
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// All pieces in id order.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The unknown piece's id.
    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }

    /// Whether unknown characters are written as byte pieces.
    pub fn byte_fallback(&self) -> bool {
        self.byte_ids.is_some()
    }

    /// The id of the byte piece for `b`, when byte fallback is on.
    pub fn byte_id(&self, b: u8) -> Option<u32> {
        self.byte_ids.as_ref().map(|t| t[b as usize])
    }

    /// The id of an encodable piece (normal, user-defined, unused) spelled `bytes`.
    pub fn normal_id(&self, bytes: &[u8]) -> Option<u32> {
        self.normal.get(bytes).copied()
    }

    /// Every encodable piece that `text` starts with, shortest first: `f(byte length, id)`.
    pub fn for_each_piece_prefix(&self, text: &[u8], f: impl FnMut(usize, u32)) {
        self.normal_trie.for_each_prefix(text, f)
    }

    /// SentencePiece's PieceToId: reserved pieces first, then the others, else the unknown id.
    pub fn piece_to_id(&self, bytes: &[u8]) -> u32 {
        self.exact_id(bytes).unwrap_or(self.unk_id)
    }

    /// The id spelled exactly `bytes`, if any.
    pub fn exact_id(&self, bytes: &[u8]) -> Option<u32> {
        self.reserved
            .get(bytes)
            .or_else(|| self.normal.get(bytes))
            .copied()
    }

    /// The piece with id `id`.
    pub fn get(&self, id: u32) -> Option<&Piece> {
        self.pieces.get(id as usize)
    }

    /// The type of `id` (ids in range only; out-of-range ids read as unused).
    pub fn kind(&self, id: u32) -> PieceType {
        self.get(id).map_or(PieceType::Unused, |p| p.kind)
    }

    /// The score of `id` (0 for ids out of range).
    pub fn score(&self, id: u32) -> f32 {
        self.get(id).map_or(0.0, |p| p.score)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str, kind: PieceType) -> Piece {
        Piece {
            piece: s.into(),
            score: 0.0,
            kind,
        }
    }

    #[test]
    fn byte_piece_spelling() {
        assert_eq!(piece_byte("<0x0A>"), Some(10));
        assert_eq!(piece_byte("<0xFF>"), Some(255));
        assert_eq!(piece_byte("<0x0a>"), None);
        assert_eq!(piece_byte("<0xA>"), None);
        assert_eq!(piece_byte("<0x+A>"), None);
        assert_eq!(byte_piece(0x5b), "<0x5B>");
    }

    #[test]
    fn loader_checks() {
        use PieceType::*;
        assert!(Vocab::new(vec![p("a", Normal)], false).is_err()); // no <unk>
        assert!(Vocab::new(vec![p("<unk>", Unknown), p("", Normal)], false).is_err());
        assert!(Vocab::new(
            vec![p("<unk>", Unknown), p("a", Normal), p("a", Unused)],
            false
        )
        .is_err());
        assert!(Vocab::new(vec![p("<unk>", Unknown), p("<u2>", Unknown)], false).is_err());
        assert!(Vocab::new(vec![p("<unk>", Unknown), p("<0x41>", Byte)], false).is_err());
        assert!(Vocab::new(vec![p("<unk>", Unknown), p("<0x41>", Byte)], true).is_err());
        assert!(Vocab::new(vec![p("<unk>", Unknown), p("x", Byte)], true).is_err());
        let v = Vocab::new(
            vec![p("<unk>", Unknown), p("<s>", Control), p("ab", Normal)],
            false,
        )
        .unwrap();
        assert_eq!(v.piece_to_id(b"ab"), 2);
        assert_eq!(v.piece_to_id(b"<s>"), 1);
        assert_eq!(v.piece_to_id(b"zz"), 0);
        assert_eq!(v.normal_id(b"<s>"), None);
        let mut found = Vec::new();
        v.for_each_piece_prefix(b"abc", |n, id| found.push((n, id)));
        assert_eq!(found, [(2, 2)]);
    }
}
