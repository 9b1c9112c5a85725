//! The parts of SentencePiece's `ModelProto` (sentencepiece_model.proto, proto2) that encoding and
//! decoding need, read with a small protobuf wire-format decoder.
//!
//! Only the wire format is implemented: varints, 64-bit and 32-bit fixed fields and
//! length-delimited fields. Every length is checked against the bytes that remain before anything
//! is sliced, fields this module does not know are skipped, and every refusal carries the absolute
//! byte offset and the field it was reading. Nothing is preallocated from a length in the file:
//! repeated fields grow one parsed element at a time, so memory stays bounded by the input size.

use std::fmt;

/// A refusal of the decoder: where (absolute byte offset into the model file) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoError {
    /// Byte offset, from the start of the serialized model, of the element that is wrong.
    pub offset: u64,
    /// What was being read and what was found.
    pub msg: String,
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {}: {}", self.offset, self.msg)
    }
}

/// `ModelProto.SentencePiece.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceType {
    /// An ordinary subword.
    Normal,
    /// The unknown piece (`<unk>`); exactly one per model.
    Unknown,
    /// Invisible control symbols such as `<s>`, `</s>`: never produced by encoding text.
    Control,
    /// Symbols the user declared: always matched whole, never normalized or split.
    UserDefined,
    /// A piece kept in the vocabulary but never emitted.
    Unused,
    /// One of the 256 `<0xNN>` byte pieces of byte fallback.
    Byte,
}

impl PieceType {
    fn from_wire(v: u64) -> Option<Self> {
        Some(match v {
            1 => PieceType::Normal,
            2 => PieceType::Unknown,
            3 => PieceType::Control,
            4 => PieceType::UserDefined,
            5 => PieceType::Unused,
            6 => PieceType::Byte,
            _ => return None,
        })
    }
}

/// `TrainerSpec.ModelType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelType {
    /// Unigram language model: Viterbi over the piece lattice.
    Unigram,
    /// Byte-pair encoding: greedy score-ordered merges.
    Bpe,
    /// Whitespace-delimited words (not supported by the encoder here).
    Word,
    /// One piece per character (not supported by the encoder here).
    Char,
}

/// One vocabulary entry; its id is its index in [`ModelProto::pieces`].
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// The piece text, whitespace written as U+2581.
    pub piece: String,
    /// Unigram log-probability, or for BPE the merge priority (higher merges first).
    pub score: f32,
    /// What the piece is.
    pub kind: PieceType,
}

/// The trainer settings that matter after training (proto defaults when absent).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainerSpec {
    /// Field 3, default unigram.
    pub model_type: ModelType,
    /// Field 4, default 8000 (informational; the vocabulary is `pieces`).
    pub vocab_size: i32,
    /// Field 24: whitespace marker at the end of words instead of the start.
    pub treat_whitespace_as_suffix: bool,
    /// Field 35: characters without a piece are written as `<0xNN>` byte pieces.
    pub byte_fallback: bool,
    /// Fields 40–43 (defaults 0, 1, 2, −1): the ids the trainer assigned.
    pub unk_id: i32,
    /// See `unk_id`.
    pub bos_id: i32,
    /// See `unk_id`.
    pub eos_id: i32,
    /// See `unk_id`.
    pub pad_id: i32,
    /// Fields 45–48 (defaults `<unk>`, `<s>`, `</s>`, `<pad>`): the special pieces by name.
    pub unk_piece: String,
    /// See `unk_piece`.
    pub bos_piece: String,
    /// See `unk_piece`.
    pub eos_piece: String,
    /// See `unk_piece`.
    pub pad_piece: String,
    /// Field 44 (default " ⁇ "): what decoding writes for the unknown piece.
    pub unk_surface: String,
}

impl Default for TrainerSpec {
    fn default() -> Self {
        TrainerSpec {
            model_type: ModelType::Unigram,
            vocab_size: 8000,
            treat_whitespace_as_suffix: false,
            byte_fallback: false,
            unk_id: 0,
            bos_id: 1,
            eos_id: 2,
            pad_id: -1,
            unk_piece: "<unk>".into(),
            bos_piece: "<s>".into(),
            eos_piece: "</s>".into(),
            pad_piece: "<pad>".into(),
            unk_surface: " \u{2047} ".into(),
        }
    }
}

/// How input text is normalized before it is split into pieces (proto defaults when absent).
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizerSpec {
    /// Field 1: rule set name (e.g. `nmt_nfkc`); the rules themselves are the charsmap.
    pub name: String,
    /// Field 2: the compiled rules (double-array trie + replacement strings); empty = identity.
    pub precompiled_charsmap: Vec<u8>,
    /// Field 3 (default true): prepend a whitespace marker so the first word looks like the others.
    pub add_dummy_prefix: bool,
    /// Field 4 (default true): drop leading, trailing and repeated whitespace.
    pub remove_extra_whitespaces: bool,
    /// Field 5 (default true): write spaces as U+2581.
    pub escape_whitespaces: bool,
}

impl Default for NormalizerSpec {
    fn default() -> Self {
        NormalizerSpec {
            name: String::new(),
            precompiled_charsmap: Vec::new(),
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
        }
    }
}

/// The decoded model file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelProto {
    /// Field 1, in id order.
    pub pieces: Vec<Piece>,
    /// Field 2.
    pub trainer: TrainerSpec,
    /// Field 3.
    pub normalizer: NormalizerSpec,
    /// Field 5, applied to decoded text when it carries rules.
    pub denormalizer: Option<NormalizerSpec>,
}

/// Wire types of the protobuf encoding.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// A field's value as it sits on the wire; length-delimited payloads are borrowed, with the
/// absolute offset where they start (nested messages report offsets relative to the file).
enum Value<'a> {
    Varint(u64),
    /// Skipped: no field read here is 64-bit fixed.
    Fixed64,
    Fixed32(u32),
    Bytes(&'a [u8], u64),
}

/// A cursor over one message's bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Absolute offset of `buf[0]` in the file, for messages.
    base: u64,
    /// The message being read, for messages ("ModelProto", "TrainerSpec", ...).
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: u64, what: &'static str) -> Self {
        Reader {
            buf,
            pos: 0,
            base,
            what,
        }
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn err(&self, at: u64, msg: impl Into<String>) -> ProtoError {
        ProtoError {
            offset: at,
            msg: format!("{}: {}", self.what, msg.into()),
        }
    }

    /// A base-128 varint of at most 10 bytes whose value fits in 64 bits.
    fn varint(&mut self, ctx: &dyn Fn() -> String) -> Result<u64, ProtoError> {
        let start = self.offset();
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err(
                    start,
                    format!("{}: varint cut off by the end of data", ctx()),
                ));
            };
            self.pos += 1;
            // The tenth byte may only hold the 64th bit.
            if i == 9 && b > 1 {
                return Err(self.err(start, format!("{}: varint overflows 64 bits", ctx())));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err(start, format!("{}: varint longer than 10 bytes", ctx())))
    }

    fn take(&mut self, n: usize, ctx: &dyn Fn() -> String) -> Result<&'a [u8], ProtoError> {
        let left = self.buf.len() - self.pos;
        if n > left {
            return Err(self.err(
                self.offset(),
                format!("{}: needs {n} bytes but only {left} are left", ctx()),
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// The next field: (number, wire type, value, offset of its key), or None at the end.
    fn field(&mut self) -> Result<Option<(u32, u8, Value<'a>, u64)>, ProtoError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let at = self.offset();
        let key = self.varint(&|| "field key".to_string())?;
        let wire = (key & 7) as u8;
        let number = key >> 3;
        if number == 0 || number > (1 << 29) - 1 {
            return Err(self.err(at, format!("invalid field number {number}")));
        }
        let number = number as u32;
        let ctx = || format!("field {number}");
        let value = match wire {
            VARINT => Value::Varint(self.varint(&ctx)?),
            FIXED64 => {
                self.take(8, &ctx)?;
                Value::Fixed64
            }
            FIXED32 => {
                let b = self.take(4, &ctx)?;
                Value::Fixed32(u32::from_le_bytes(b.try_into().expect("4 bytes")))
            }
            LEN => {
                let len = self.varint(&ctx)?;
                let left = (self.buf.len() - self.pos) as u64;
                if len > left {
                    return Err(self.err(
                        at,
                        format!("field {number}: length {len} exceeds the {left} bytes left"),
                    ));
                }
                let start = self.offset();
                let b = self.take(len as usize, &ctx)?;
                Value::Bytes(b, start)
            }
            3 | 4 => {
                return Err(self.err(
                    at,
                    format!("field {number}: protobuf groups (wire type {wire}) are not supported"),
                ))
            }
            _ => return Err(self.err(at, format!("field {number}: invalid wire type {wire}"))),
        };
        Ok(Some((number, wire, value, at)))
    }

    fn wrong_type(&self, at: u64, name: &str, number: u32, wire: u8) -> ProtoError {
        self.err(
            at,
            format!("field {number} ({name}) has wire type {wire}, which its type does not use"),
        )
    }

    fn as_varint(&self, v: Value, at: u64, name: &str, n: u32, w: u8) -> Result<u64, ProtoError> {
        match v {
            Value::Varint(x) => Ok(x),
            _ => Err(self.wrong_type(at, name, n, w)),
        }
    }

    fn as_bool(&self, v: Value, at: u64, name: &str, n: u32, w: u8) -> Result<bool, ProtoError> {
        Ok(self.as_varint(v, at, name, n, w)? != 0)
    }

    /// int32 is sent as a sign-extended 64-bit varint; protobuf keeps the low 32 bits.
    fn as_i32(&self, v: Value, at: u64, name: &str, n: u32, w: u8) -> Result<i32, ProtoError> {
        Ok(self.as_varint(v, at, name, n, w)? as u32 as i32)
    }

    fn as_bytes(
        &self,
        v: Value<'a>,
        at: u64,
        name: &str,
        n: u32,
        w: u8,
    ) -> Result<(&'a [u8], u64), ProtoError> {
        match v {
            Value::Bytes(b, start) => Ok((b, start)),
            _ => Err(self.wrong_type(at, name, n, w)),
        }
    }

    fn as_string(
        &self,
        v: Value<'a>,
        at: u64,
        name: &str,
        n: u32,
        w: u8,
    ) -> Result<String, ProtoError> {
        let (b, start) = self.as_bytes(v, at, name, n, w)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_string()),
            Err(e) => Err(self.err(
                start + e.valid_up_to() as u64,
                format!("field {n} ({name}) is not valid UTF-8"),
            )),
        }
    }
}

/// Decode a serialized `ModelProto`.
pub fn parse_model(buf: &[u8]) -> Result<ModelProto, ProtoError> {
    let mut r = Reader::new(buf, 0, "ModelProto");
    let mut m = ModelProto::default();
    while let Some((n, w, v, at)) = r.field()? {
        match n {
            1 => {
                let (b, start) = r.as_bytes(v, at, "pieces", n, w)?;
                let index = m.pieces.len();
                m.pieces.push(parse_piece(b, start, index)?);
            }
            2 => {
                let (b, start) = r.as_bytes(v, at, "trainer_spec", n, w)?;
                // proto2 merges repeated occurrences of a message field; models never repeat it,
                // so the last one wins here.
                m.trainer = parse_trainer(b, start)?;
            }
            3 => {
                let (b, start) = r.as_bytes(v, at, "normalizer_spec", n, w)?;
                m.normalizer = parse_normalizer(b, start, "NormalizerSpec")?;
            }
            5 => {
                let (b, start) = r.as_bytes(v, at, "denormalizer_spec", n, w)?;
                m.denormalizer = Some(parse_normalizer(b, start, "denormalizer NormalizerSpec")?);
            }
            // 4 self_test_data and anything newer: not needed to encode or decode.
            _ => {}
        }
    }
    Ok(m)
}

fn parse_piece(buf: &[u8], base: u64, index: usize) -> Result<Piece, ProtoError> {
    let mut r = Reader::new(buf, base, "SentencePiece");
    let mut p = Piece {
        piece: String::new(),
        score: 0.0,
        kind: PieceType::Normal,
    };
    while let Some((n, w, v, at)) = r.field()? {
        match n {
            1 => p.piece = r.as_string(v, at, "piece", n, w)?,
            2 => {
                p.score = match v {
                    Value::Fixed32(x) => f32::from_bits(x),
                    _ => return Err(r.wrong_type(at, "score", n, w)),
                }
            }
            3 => {
                let t = r.as_varint(v, at, "type", n, w)?;
                p.kind = PieceType::from_wire(t)
                    .ok_or_else(|| r.err(at, format!("piece {index}: unknown piece type {t}")))?;
            }
            _ => {}
        }
    }
    Ok(p)
}

fn parse_trainer(buf: &[u8], base: u64) -> Result<TrainerSpec, ProtoError> {
    let mut r = Reader::new(buf, base, "TrainerSpec");
    let mut t = TrainerSpec::default();
    while let Some((n, w, v, at)) = r.field()? {
        match n {
            3 => {
                let x = r.as_varint(v, at, "model_type", n, w)?;
                t.model_type = match x {
                    1 => ModelType::Unigram,
                    2 => ModelType::Bpe,
                    3 => ModelType::Word,
                    4 => ModelType::Char,
                    _ => return Err(r.err(at, format!("unknown model_type {x}"))),
                };
            }
            4 => t.vocab_size = r.as_i32(v, at, "vocab_size", n, w)?,
            24 => {
                t.treat_whitespace_as_suffix =
                    r.as_bool(v, at, "treat_whitespace_as_suffix", n, w)?
            }
            35 => t.byte_fallback = r.as_bool(v, at, "byte_fallback", n, w)?,
            40 => t.unk_id = r.as_i32(v, at, "unk_id", n, w)?,
            41 => t.bos_id = r.as_i32(v, at, "bos_id", n, w)?,
            42 => t.eos_id = r.as_i32(v, at, "eos_id", n, w)?,
            43 => t.pad_id = r.as_i32(v, at, "pad_id", n, w)?,
            44 => t.unk_surface = r.as_string(v, at, "unk_surface", n, w)?,
            45 => t.unk_piece = r.as_string(v, at, "unk_piece", n, w)?,
            46 => t.bos_piece = r.as_string(v, at, "bos_piece", n, w)?,
            47 => t.eos_piece = r.as_string(v, at, "eos_piece", n, w)?,
            48 => t.pad_piece = r.as_string(v, at, "pad_piece", n, w)?,
            _ => {}
        }
    }
    Ok(t)
}

fn parse_normalizer(
    buf: &[u8],
    base: u64,
    what: &'static str,
) -> Result<NormalizerSpec, ProtoError> {
    let mut r = Reader::new(buf, base, what);
    let mut s = NormalizerSpec::default();
    while let Some((n, w, v, at)) = r.field()? {
        match n {
            1 => s.name = r.as_string(v, at, "name", n, w)?,
            2 => {
                s.precompiled_charsmap = r.as_bytes(v, at, "precompiled_charsmap", n, w)?.0.to_vec()
            }
            3 => s.add_dummy_prefix = r.as_bool(v, at, "add_dummy_prefix", n, w)?,
            4 => s.remove_extra_whitespaces = r.as_bool(v, at, "remove_extra_whitespaces", n, w)?,
            5 => s.escape_whitespaces = r.as_bool(v, at, "escape_whitespaces", n, w)?,
            _ => {}
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn len_field(n: u32, payload: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(n) << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    #[test]
    fn pieces_specs_defaults_and_unknown_fields() {
        let mut piece = Vec::new();
        len_field(1, "▁a".as_bytes(), &mut piece);
        piece.extend_from_slice(&[2 << 3 | 5]);
        piece.extend_from_slice(&(-1.5f32).to_le_bytes());
        piece.extend_from_slice(&[3 << 3, 4]);
        // An unknown fixed64 field inside the piece.
        piece.push(9 << 3 | 1);
        piece.extend_from_slice(&[0; 8]);
        let mut trainer = Vec::new();
        trainer.extend_from_slice(&[3 << 3, 2]);
        varint(43 << 3, &mut trainer);
        varint(u64::MAX, &mut trainer); // pad_id = -1 as a 10-byte varint
        varint(35 << 3, &mut trainer);
        trainer.push(1);
        let mut m = Vec::new();
        len_field(1, &piece, &mut m);
        len_field(2, &trainer, &mut m);
        len_field(77, b"ignored", &mut m);
        let p = parse_model(&m).unwrap();
        assert_eq!(p.pieces.len(), 1);
        assert_eq!(p.pieces[0].piece, "▁a");
        assert_eq!(p.pieces[0].score, -1.5);
        assert_eq!(p.pieces[0].kind, PieceType::UserDefined);
        assert_eq!(p.trainer.model_type, ModelType::Bpe);
        assert_eq!(p.trainer.pad_id, -1);
        assert!(p.trainer.byte_fallback);
        assert_eq!(p.trainer.bos_id, 1);
        assert!(p.normalizer.add_dummy_prefix);
        assert!(p.denormalizer.is_none());
    }

    #[test]
    fn refusals_name_offset_and_field() {
        // Length larger than the data.
        let e = parse_model(&[1 << 3 | 2, 50, 1, 2]).unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(e.msg.contains("length 50"), "{e}");
        // A varint that never ends.
        let e = parse_model(&[0x08, 0xff, 0xff]).unwrap_err();
        assert!(e.msg.contains("cut off"), "{e}");
        let e = parse_model(&[
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ])
        .unwrap_err();
        assert!(e.msg.contains("overflows"), "{e}");
        // Wrong wire type for a known field; offsets inside nested messages are absolute.
        let e = parse_model(&[1 << 3 | 2, 2, 2 << 3, 1]).unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(e.msg.contains("score"), "{e}");
        // Field number 0, groups, invalid wire types.
        assert!(parse_model(&[0x00]).is_err());
        assert!(parse_model(&[0x0b]).is_err());
        assert!(parse_model(&[0x0e]).is_err());
        // A string that is not UTF-8.
        let e = parse_model(&[1 << 3 | 2, 3, 1 << 3 | 2, 1, 0xff]).unwrap_err();
        assert_eq!(e.offset, 4);
    }
}
