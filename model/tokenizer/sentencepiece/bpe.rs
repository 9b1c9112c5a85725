//! BPE segmentation as SentencePiece does it: start from characters (user-defined pieces are one
//! frozen symbol each), and repeatedly merge the adjacent pair whose concatenation is a piece with
//! the highest score; ties go to the leftmost pair. There is no merge list: a pair may merge iff
//! the concatenation is in the vocabulary, and its score is the merge priority.
//!
//! The agenda is a max-heap of candidate pairs. Merging keeps the left symbol and empties the right
//! one, so a queued pair is stale exactly when one side is empty or its combined length changed;
//! stale pairs are dropped when popped.
//!
//! Unused pieces may take part in merges but are never output: a merged unused piece is split back
//! into the two symbols that formed it (recursively).

use super::normalize::UserSymbols;
use super::proto::PieceType;
use super::vocab::Vocab;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// One symbol: a byte range of the text, linked to its live neighbours.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
    /// User-defined pieces never merge.
    frozen: bool,
}

/// A candidate merge of symbols `left` and `right` into a piece of `size` bytes.
struct Pair {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl Ord for Pair {
    fn cmp(&self, other: &Self) -> Ordering {
        // Higher score first; on equal scores the smaller left index first. A NaN score (only in
        // a corrupt model) compares equal, which keeps the heap well-defined.
        self.score
            .partial_cmp(&other.score)
            .unwrap_or(Ordering::Equal)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Pair {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pair {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pair {}

/// Split `text` (normalized) into pieces: (bytes, id) in order, covering `text` exactly.
/// Symbols that are not pieces get the unknown id.
pub fn encode<'t>(vocab: &Vocab, user: &UserSymbols, text: &'t [u8]) -> Vec<(&'t [u8], u32)> {
    let mut symbols: Vec<Symbol> = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        let (len, frozen) = match user.longest_prefix(&text[pos..]) {
            Some(n) => (n, true),
            None => (super::normalize::one_char_len(&text[pos..]), false),
        };
        let index = symbols.len();
        symbols.push(Symbol {
            start: pos,
            len,
            prev: index.checked_sub(1),
            next: (pos + len < text.len()).then_some(index + 1),
            frozen,
        });
        pos += len;
    }
    if symbols.is_empty() {
        return Vec::new();
    }

    let mut agenda = BinaryHeap::new();
    // Merged unused pieces → the two parts they were made of (last one recorded wins).
    let mut unmerge: HashMap<&'t [u8], (&'t [u8], &'t [u8])> = HashMap::new();
    let bytes = |s: &Symbol| &text[s.start..s.start + s.len];
    let mut consider = |symbols: &[Symbol],
                        agenda: &mut BinaryHeap<Pair>,
                        left: Option<usize>,
                        right: Option<usize>| {
        let (Some(l), Some(r)) = (left, right) else {
            return;
        };
        let (ls, rs) = (&symbols[l], &symbols[r]);
        if ls.frozen || rs.frozen {
            return;
        }
        let merged = &text[ls.start..ls.start + ls.len + rs.len];
        let Some(id) = vocab.normal_id(merged) else {
            return;
        };
        agenda.push(Pair {
            score: vocab.score(id),
            left: l,
            right: r,
            size: merged.len(),
        });
        if vocab.kind(id) == PieceType::Unused {
            unmerge.insert(merged, (bytes(ls), bytes(rs)));
        }
    };

    for i in 1..symbols.len() {
        consider(&symbols, &mut agenda, Some(i - 1), Some(i));
    }
    while let Some(top) = agenda.pop() {
        let (l, r) = (symbols[top.left], symbols[top.right]);
        if l.len == 0 || r.len == 0 || l.len + r.len != top.size {
            continue;
        }
        symbols[top.left].len += r.len;
        symbols[top.left].next = r.next;
        if let Some(n) = r.next {
            symbols[n].prev = Some(top.left);
        }
        symbols[top.right].len = 0;
        let prev = symbols[top.left].prev;
        let next = symbols[top.left].next;
        consider(&symbols, &mut agenda, prev, Some(top.left));
        consider(&symbols, &mut agenda, Some(top.left), next);
    }

    let mut out = Vec::new();
    let mut index = Some(0);
    while let Some(i) = index {
        let s = &symbols[i];
        // Depth-first, left part first, through the recorded splits of unused pieces.
        let mut stack = vec![&text[s.start..s.start + s.len]];
        while let Some(w) = stack.pop() {
            let id = vocab.piece_to_id(w);
            match unmerge.get(w) {
                Some(&(a, b)) if vocab.kind(id) == PieceType::Unused => {
                    stack.push(b);
                    stack.push(a);
                }
                _ => out.push((w, id)),
            }
        }
        index = s.next;
    }
    out
}
