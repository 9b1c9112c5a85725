//! A byte trie for "which pieces start here" queries: walking the text one byte at a time stops as
//! soon as no piece continues, instead of hashing every prefix up to the longest piece.
//!
//! Built once from the keys, then stored flat (each node's edges in one sorted run of a shared
//! array), so a vocabulary of 150k pieces costs a few bytes per key byte.

/// Sentinel for "no value at this node".
const NONE: u32 = u32::MAX;

/// An immutable byte trie mapping keys to `u32` values.
#[derive(Debug, Clone, Default)]
pub struct Trie {
    /// Per node: its value or [`NONE`].
    values: Vec<u32>,
    /// Per node: start of its edges in `labels`/`targets`; one extra entry closes the last run.
    edge_start: Vec<u32>,
    labels: Vec<u8>,
    targets: Vec<u32>,
}

impl Trie {
    /// Build from (key, value) pairs; for a repeated key the last value wins. Empty keys are
    /// ignored (no piece is empty). The root is node 0.
    pub fn new<'a>(keys: impl IntoIterator<Item = (&'a [u8], u32)>) -> Self {
        // Build with per-node edge lists, then flatten.
        let mut edges: Vec<Vec<(u8, u32)>> = vec![Vec::new()];
        let mut values = vec![NONE];
        for (key, value) in keys {
            if key.is_empty() {
                continue;
            }
            let mut node = 0usize;
            for &b in key {
                node = match edges[node].iter().find(|e| e.0 == b) {
                    Some(&(_, t)) => t as usize,
                    None => {
                        let t = values.len();
                        edges.push(Vec::new());
                        values.push(NONE);
                        edges[node].push((b, t as u32));
                        t
                    }
                };
            }
            values[node] = value;
        }
        let mut edge_start = Vec::with_capacity(values.len() + 1);
        let mut labels = Vec::new();
        let mut targets = Vec::new();
        for list in &mut edges {
            list.sort_unstable_by_key(|e| e.0);
            edge_start.push(labels.len() as u32);
            for &(b, t) in list.iter() {
                labels.push(b);
                targets.push(t);
            }
        }
        edge_start.push(labels.len() as u32);
        Trie {
            values,
            edge_start,
            labels,
            targets,
        }
    }

    /// The child of `node` along byte `b`.
    fn child(&self, node: usize, b: u8) -> Option<usize> {
        let lo = *self.edge_start.get(node)? as usize;
        let hi = *self.edge_start.get(node + 1)? as usize;
        let run = self.labels.get(lo..hi)?;
        run.binary_search(&b)
            .ok()
            .and_then(|i| self.targets.get(lo + i))
            .map(|&t| t as usize)
    }

    /// Every key that is a prefix of `text`, shortest first: calls `f(length, value)`.
    pub fn for_each_prefix(&self, text: &[u8], mut f: impl FnMut(usize, u32)) {
        let mut node = 0;
        for (i, &b) in text.iter().enumerate() {
            let Some(next) = self.child(node, b) else {
                return;
            };
            node = next;
            if let Some(&v) = self.values.get(node) {
                if v != NONE {
                    f(i + 1, v);
                }
            }
        }
    }

    /// The longest key that is a prefix of `text`: (length, value).
    pub fn longest_prefix(&self, text: &[u8]) -> Option<(usize, u32)> {
        let mut best = None;
        self.for_each_prefix(text, |n, v| best = Some((n, v)));
        best
    }

    /// True when no key was inserted.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_in_order() {
        let t = Trie::new([
            (&b"a"[..], 1),
            (b"abc", 2),
            (b"b", 3),
            (b"abd", 4),
            (b"", 9),
        ]);
        let mut seen = Vec::new();
        t.for_each_prefix(b"abcd", |n, v| seen.push((n, v)));
        assert_eq!(seen, [(1, 1), (3, 2)]);
        assert_eq!(t.longest_prefix(b"abdx"), Some((3, 4)));
        assert_eq!(t.longest_prefix(b"ab"), Some((1, 1)));
        assert_eq!(t.longest_prefix(b"c"), None);
        assert!(Trie::new([]).is_empty());
        assert_eq!(Trie::new([]).longest_prefix(b"a"), None);
    }
}
