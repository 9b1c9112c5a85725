//! Text normalization and edit distance for WER/CER.
//!
//! Normalization: lowercase; apostrophes dropped (`don't` → `dont`); every other character that is
//! not a letter, digit or whitespace becomes a space; whitespace collapsed to single spaces and
//! trimmed. Number words are left as they are (`20` and `twenty` count as different words): the
//! benchmark's transcripts spell numbers out, so a model trained on them writes words too.

/// The normalized form of `text` (see the module docs).
pub fn normalize(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\'' | '\u{2019}') {
            continue;
        }
        if c.is_alphanumeric() || c.is_whitespace() {
            s.extend(c.to_lowercase());
        } else {
            s.push(' ');
        }
    }
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Levenshtein distance (substitutions, insertions and deletions all cost 1) between two
/// sequences, in O(|a|·|b|) time and O(|b|) memory.
pub fn edit_distance<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(x != y);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Word errors of `hyp` against `reference` after normalization: `(edits, reference words)`.
pub fn word_errors(reference: &str, hyp: &str) -> (usize, usize) {
    let (r, h) = (normalize(reference), normalize(hyp));
    let rw: Vec<&str> = r.split_whitespace().collect();
    let hw: Vec<&str> = h.split_whitespace().collect();
    (edit_distance(&rw, &hw), rw.len())
}

/// Character errors after normalization (spaces count as characters): `(edits, reference chars)`.
pub fn char_errors(reference: &str, hyp: &str) -> (usize, usize) {
    let r: Vec<char> = normalize(reference).chars().collect();
    let h: Vec<char> = normalize(hyp).chars().collect();
    (edit_distance(&r, &h), r.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances_match_hand_counted_cases() {
        // kitten → sitting: k→s, e→i, +g.
        let c = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(edit_distance(&c("kitten"), &c("sitting")), 3);
        assert_eq!(edit_distance(&c("flaw"), &c("lawn")), 2);
        assert_eq!(edit_distance(&c(""), &c("abc")), 3);
        assert_eq!(edit_distance(&c("abc"), &c("")), 3);
        assert_eq!(edit_distance(&c("same"), &c("same")), 0);
        assert_eq!(edit_distance::<char>(&[], &[]), 0);
    }

    #[test]
    fn word_errors_count_substitutions_insertions_and_deletions() {
        // one substitution (sat→sit), one deletion (the), one insertion (down): 3 of 6 words.
        assert_eq!(
            word_errors("the cat sat on the mat", "the cat sit on mat down"),
            (3, 6)
        );
        assert_eq!(word_errors("go forward ten meters", ""), (4, 4));
        assert_eq!(word_errors("", "hello"), (1, 0));
    }

    #[test]
    fn normalization_ignores_case_punctuation_and_spacing_but_not_number_form() {
        assert_eq!(normalize("  Hello,   World!  "), "hello world");
        assert_eq!(normalize("Don't stop—now."), "dont stop now");
        assert_eq!(
            word_errors("Go forward, ten meters.", "go forward ten METERS"),
            (0, 4)
        );
        assert_eq!(
            word_errors("go forward ten meters", "Go forward 10 meters."),
            (1, 4)
        );
        // CER: "ab c" vs "abd c" is one insertion over 4 characters.
        assert_eq!(char_errors("AB c", "abd  c"), (1, 4));
    }
}
