//! Text normalization as SentencePiece applies it before splitting into pieces.
//!
//! Rules come from the model's `precompiled_charsmap` (this is how `nmt_nfkc` and friends are
//! applied: the trainer compiles the Unicode rules into a table, so no Unicode tables are needed
//! here). The blob is `u32 trie_size (LE)`, a darts-clone double-array trie of `trie_size` bytes
//! mapping input byte strings to offsets, and a blob of NUL-terminated replacement strings.
//! At each position the longest rule that matches wins; without a rule one UTF-8 character is
//! copied. User-defined pieces are matched first and copied untouched.
//!
//! Whitespace, with the spec's flags: leading spaces dropped, runs of spaces collapsed and trailing
//! spaces dropped (`remove_extra_whitespaces`), a U+2581 marker prepended (`add_dummy_prefix`),
//! and spaces written as U+2581 (`escape_whitespaces`).
//!
//! Everything works on bytes, as the reference does, so a rule whose replacement is not UTF-8
//! cannot make encoding fail; every index into the trie and the strings blob is checked.

use super::proto::NormalizerSpec;
use super::trie::Trie;

/// U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's visible whitespace.
pub const SPACE_MARK: &[u8] = "\u{2581}".as_bytes();

/// U+FFFD, written for a byte that does not start a valid UTF-8 character.
const REPLACEMENT: &[u8] = "\u{fffd}".as_bytes();

/// darts-clone reports at most this many matches to the normalizer (its result buffer), so the
/// longest rule is the longest among the first 32; kept for exactness on pathological tables.
const MAX_TRIE_RESULTS: usize = 32;

/// The compiled rules: a double-array trie over input bytes and the replacement strings.
#[derive(Debug, Clone)]
pub struct CharsMap {
    units: Vec<u32>,
    replacements: Vec<u8>,
}

impl CharsMap {
    /// Split a `precompiled_charsmap` blob; the error says what is inconsistent.
    pub fn parse(blob: &[u8]) -> Result<Self, String> {
        if blob.len() <= 4 {
            return Err(format!(
                "precompiled_charsmap of {} bytes is too short for its 4-byte header",
                blob.len()
            ));
        }
        let trie_size = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
        if trie_size > blob.len() - 4 {
            return Err(format!(
                "precompiled_charsmap: trie of {trie_size} bytes exceeds the {} bytes after the header",
                blob.len() - 4
            ));
        }
        // As darts-clone does: the trie is the whole 4-byte units of its stated size.
        let units = blob[4..4 + trie_size]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(CharsMap {
            units,
            replacements: blob[4 + trie_size..].to_vec(),
        })
    }

    /// The longest rule matching a prefix of `input`: (bytes consumed, replacement).
    fn longest_match(&self, input: &[u8]) -> Option<(usize, &[u8])> {
        // darts-clone unit layout: bit 8 = has a leaf child, bits 0–7 (and 31) = label,
        // offset = (unit >> 10) << ((unit & 0x200) >> 6), a leaf's value = low 31 bits.
        let unit = |pos: usize| self.units.get(pos).copied();
        let offset = |u: u32| ((u >> 10) << ((u & (1 << 9)) >> 6)) as usize;
        let mut node = offset(unit(0)?);
        let mut found = 0usize;
        let mut best: Option<(usize, u32)> = None;
        for (i, &b) in input.iter().enumerate() {
            node ^= b as usize;
            let Some(u) = unit(node) else { break };
            if u & ((1 << 31) | 0xff) != u32::from(b) {
                break;
            }
            node ^= offset(u);
            if (u >> 8) & 1 == 1 {
                if found < MAX_TRIE_RESULTS {
                    let Some(leaf) = unit(node) else { break };
                    best = Some((i + 1, leaf & 0x7fff_ffff));
                }
                found += 1;
            }
        }
        let (len, value) = best?;
        // A value pointing outside the strings blob is a broken table: treat it as no rule.
        let rest = self.replacements.get(value as usize..)?;
        let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
        Some((len, &rest[..end]))
    }
}

/// Longest-match lookup of the user-defined pieces, which are never normalized or split.
#[derive(Debug, Clone, Default)]
pub struct UserSymbols {
    trie: Trie,
}

impl UserSymbols {
    /// The matcher for these symbols.
    pub fn new<'a>(symbols: impl IntoIterator<Item = &'a str>) -> Self {
        UserSymbols {
            trie: Trie::new(symbols.into_iter().map(|s| (s.as_bytes(), 0))),
        }
    }

    /// Byte length of the longest user symbol that `input` starts with.
    pub fn longest_prefix(&self, input: &[u8]) -> Option<usize> {
        if self.trie.is_empty() {
            return None;
        }
        self.trie.longest_prefix(input).map(|(n, _)| n)
    }
}

/// Bytes of the character starting at `s[0]` by its lead byte alone (SentencePiece's OneCharLen;
/// stray continuation bytes count as one), never past the end.
pub fn one_char_len(s: &[u8]) -> usize {
    let n = match s.first() {
        None => return 0,
        Some(&b) if b < 0xc0 => 1,
        Some(&b) if b < 0xe0 => 2,
        Some(&b) if b < 0xf0 => 3,
        Some(_) => 4,
    };
    n.min(s.len())
}

/// Decode one UTF-8 character strictly (no overlongs, surrogates or values above U+10FFFF):
/// `Some(length)` when valid, `None` when the first byte does not start a valid character.
pub fn valid_char_len(s: &[u8]) -> Option<usize> {
    let b0 = *s.first()?;
    let cont = |i: usize| s.get(i).is_some_and(|&b| b & 0xc0 == 0x80);
    let (len, cp) = match b0 {
        0x00..=0x7f => return Some(1),
        0xc0..=0xdf if cont(1) => (2, (u32::from(b0 & 0x1f) << 6) | u32::from(s[1] & 0x3f)),
        0xe0..=0xef if cont(1) && cont(2) => (
            3,
            (u32::from(b0 & 0x0f) << 12) | (u32::from(s[1] & 0x3f) << 6) | u32::from(s[2] & 0x3f),
        ),
        0xf0..=0xf7 if cont(1) && cont(2) && cont(3) => (
            4,
            (u32::from(b0 & 0x07) << 18)
                | (u32::from(s[1] & 0x3f) << 12)
                | (u32::from(s[2] & 0x3f) << 6)
                | u32::from(s[3] & 0x3f),
        ),
        _ => return None,
    };
    let min = [0, 0, 0x80, 0x800, 0x10000][len];
    let ok = cp >= min && (cp < 0xd800 || (0xe000..=0x10ffff).contains(&cp));
    ok.then_some(len)
}

/// A normalizer built from a [`NormalizerSpec`].
#[derive(Debug, Clone)]
pub struct Normalizer {
    charsmap: Option<CharsMap>,
    user: UserSymbols,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
    treat_whitespace_as_suffix: bool,
}

impl Normalizer {
    /// Build from the spec; `user` are the model's user-defined pieces (copied untouched),
    /// `suffix` is the trainer's `treat_whitespace_as_suffix`.
    pub fn new(spec: &NormalizerSpec, user: UserSymbols, suffix: bool) -> Result<Self, String> {
        let charsmap = if spec.precompiled_charsmap.is_empty() {
            None
        } else {
            Some(CharsMap::parse(&spec.precompiled_charsmap)?)
        };
        Ok(Normalizer {
            charsmap,
            user,
            add_dummy_prefix: spec.add_dummy_prefix,
            remove_extra_whitespaces: spec.remove_extra_whitespaces,
            escape_whitespaces: spec.escape_whitespaces,
            treat_whitespace_as_suffix: suffix,
        })
    }

    /// The normalized form of the text at the start of `input` and how many input bytes it used.
    fn prefix<'s>(&'s self, input: &'s [u8]) -> (&'s [u8], usize) {
        if let Some(n) = self.user.longest_prefix(input) {
            return (&input[..n], n);
        }
        if let Some((n, rep)) = self.charsmap.as_ref().and_then(|m| m.longest_match(input)) {
            return (rep, n);
        }
        match valid_char_len(input) {
            Some(n) => (&input[..n], n),
            // Not reachable from &str input; a malformed byte becomes U+FFFD, as upstream.
            None => (REPLACEMENT, 1),
        }
    }

    /// Normalize `input` (bytes; normally UTF-8) into the string the piece models split.
    pub fn normalize(&self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() + SPACE_MARK.len());
        let mut input = input;
        if self.remove_extra_whitespaces {
            while !input.is_empty() {
                let (s, n) = self.prefix(input);
                if s != b" " {
                    break;
                }
                input = &input[n..];
            }
        }
        if input.is_empty() {
            return out;
        }
        let space: &[u8] = if self.escape_whitespaces {
            SPACE_MARK
        } else {
            b" "
        };
        if !self.treat_whitespace_as_suffix && self.add_dummy_prefix {
            out.extend_from_slice(space);
        }
        let mut prev_space = self.remove_extra_whitespaces;
        while !input.is_empty() {
            let (mut s, n) = self.prefix(input);
            if prev_space {
                while let Some(rest) = s.strip_prefix(b" ") {
                    s = rest;
                }
            }
            if !s.is_empty() {
                for &b in s {
                    if b == b' ' {
                        out.extend_from_slice(space);
                    } else {
                        out.push(b);
                    }
                }
                prev_space = s.ends_with(b" ");
            }
            input = &input[n..];
            if !self.remove_extra_whitespaces {
                prev_space = false;
            }
        }
        if self.remove_extra_whitespaces {
            while out.ends_with(space) {
                out.truncate(out.len() - space.len());
            }
        }
        if self.treat_whitespace_as_suffix && self.add_dummy_prefix {
            out.extend_from_slice(space);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_lengths() {
        assert_eq!(valid_char_len("a".as_bytes()), Some(1));
        assert_eq!(valid_char_len("é".as_bytes()), Some(2));
        assert_eq!(valid_char_len("你".as_bytes()), Some(3));
        assert_eq!(valid_char_len("🦀".as_bytes()), Some(4));
        assert_eq!(valid_char_len(&[0xe4, 0xbd]), None);
        assert_eq!(valid_char_len(&[0x80]), None);
        assert_eq!(valid_char_len(&[0xc0, 0x80]), None); // overlong
        assert_eq!(valid_char_len(&[0xed, 0xa0, 0x80]), None); // surrogate
        assert_eq!(valid_char_len(&[0xf4, 0x90, 0x80, 0x80]), None); // > U+10FFFF
        assert_eq!(one_char_len(&[0xf0, 0x9f]), 2);
        assert_eq!(one_char_len(&[0x80, 0x80]), 1);
    }

    #[test]
    fn broken_charsmaps_are_refused_or_inert() {
        assert!(CharsMap::parse(&[1, 0, 0, 0]).is_err());
        assert!(CharsMap::parse(&[9, 0, 0, 0, 1, 2, 3, 4]).is_err());
        // A trie whose units point anywhere must not panic.
        let mut blob = 8u32.to_le_bytes().to_vec();
        blob.extend_from_slice(&u32::MAX.to_le_bytes());
        blob.extend_from_slice(&0x1ffu32.to_le_bytes());
        blob.extend_from_slice(b"x\0");
        let m = CharsMap::parse(&blob).unwrap();
        for s in ["", "a", "\u{1}", "ÿÿÿ", "你好"] {
            let _ = m.longest_match(s.as_bytes());
        }
    }

    #[test]
    fn whitespace_rules_without_charsmap() {
        let n =
            Normalizer::new(&NormalizerSpec::default(), UserSymbols::new(["<x>"]), false).unwrap();
        let norm = |s: &str| String::from_utf8(n.normalize(s.as_bytes())).unwrap();
        assert_eq!(norm(""), "");
        assert_eq!(norm("   "), "");
        assert_eq!(norm("  a   b  "), "▁a▁b");
        assert_eq!(norm("<x> a"), "▁<x>▁a");
    }
}
