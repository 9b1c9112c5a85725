//! Ids back to text, as SentencePiece decodes: control pieces are invisible, the unknown piece is
//! written as the model's `unk_surface`, runs of byte pieces are reassembled into UTF-8 (one
//! U+FFFD per byte that does not start a valid character), U+2581 becomes a space, and the
//! whitespace marker the dummy prefix put in front of the first word is removed.

use super::error::SpmError;
use super::normalize::{valid_char_len, SPACE_MARK};
use super::proto::PieceType;
use super::vocab::{piece_byte, Vocab};

/// The normalizer settings decoding depends on.
pub struct Rules<'a> {
    /// Strip the leading U+2581 of the first visible piece (the model adds a dummy prefix or
    /// removes extra whitespace).
    pub strip_bos_space: bool,
    /// With extra whitespace removal every leading marker goes, so stripping continues until some
    /// text has been written; otherwise only one marker is stripped.
    pub remove_extra_whitespaces: bool,
    /// What the unknown piece decodes to.
    pub unk_surface: &'a str,
}

/// The decoded bytes (UTF-8 as long as the pieces are) for `ids`.
pub fn decode(vocab: &Vocab, rules: &Rules, ids: &[u32]) -> Result<Vec<u8>, SpmError> {
    let mut text: Vec<u8> = Vec::new();
    let mut bytes: Vec<u8> = Vec::new();
    let mut strip_leading = true;
    let mut stripped_one = false;
    for &id in ids {
        let piece = vocab.get(id).ok_or(SpmError::IdOutOfRange {
            id,
            vocab_size: vocab.len(),
        })?;
        if piece.kind == PieceType::Byte {
            // Checked at load: every BYTE piece is a canonical <0xNN>.
            bytes.extend(piece_byte(&piece.piece));
            continue;
        }
        flush_bytes(&mut bytes, &mut text);
        if stripped_one || !text.is_empty() {
            strip_leading = false;
        }
        stripped_one = false;
        match piece.kind {
            PieceType::Control => {}
            PieceType::Unknown => text.extend_from_slice(rules.unk_surface.as_bytes()),
            _ => {
                let mut p = piece.piece.as_bytes();
                if strip_leading && rules.strip_bos_space {
                    if let Some(rest) = p.strip_prefix(SPACE_MARK) {
                        p = rest;
                        stripped_one = !rules.remove_extra_whitespaces;
                    }
                }
                replace_space_marks(p, &mut text);
            }
        }
    }
    flush_bytes(&mut bytes, &mut text);
    Ok(text)
}

/// Append `piece` with every U+2581 written as a space.
fn replace_space_marks(mut piece: &[u8], out: &mut Vec<u8>) {
    while let Some(i) = piece
        .windows(SPACE_MARK.len())
        .position(|w| w == SPACE_MARK)
    {
        out.extend_from_slice(&piece[..i]);
        out.push(b' ');
        piece = &piece[i + SPACE_MARK.len()..];
    }
    out.extend_from_slice(piece);
}

/// Append a run of byte-piece bytes as UTF-8: valid characters as they are, and one U+FFFD for
/// every byte that does not start a valid character (not one per maximal invalid run, as
/// `String::from_utf8_lossy` would).
fn flush_bytes(bytes: &mut Vec<u8>, out: &mut Vec<u8>) {
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        match valid_char_len(rest) {
            Some(n) => {
                out.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
            None => {
                out.extend_from_slice("\u{fffd}".as_bytes());
                rest = &rest[1..];
            }
        }
    }
    bytes.clear();
}
