//! Text QA items for stage I (REFERENCE §7: stage I has "text QA mixed in"): written questions
//! with no audio, each asking for `chat` and carrying its `answer` ([`Item::is_text_qa`]).
//!
//! Why: stage I trains LoRA on speech prompts only; mixing in plain text questions keeps the LLM
//! answering text while its weights move. Our questions are about words, and the answers follow
//! from rules over the benchmark's vocabulary (plurals, counting, alphabetical order, first
//! letters, repeating), so every answer is right by construction. They are built from random
//! word lists rather than the sentence grammar, so no held-out test sentence reaches training as
//! text.
//!
//! Drawn from their own generator (`seed` mixed with a constant), so asking for them leaves every
//! other manifest line and clip exactly as without. The same stream, continued, gives held-out
//! questions ([`held_out`]) for `osum eval` to score the LLM's text answers on.

use super::pick;
use super::sentences::{plural, ADJECTIVES, NOUNS};
use crate::engine::Rng;
use crate::train::data::Item;
use std::collections::HashSet;

/// Mixed into the synth seed for this generator's stream ("text_qa" in ASCII).
const STREAM: u64 = 0x0074_6578_745f_7161;

/// Three to eight words from the nouns and adjectives.
fn words(rng: &mut Rng) -> Vec<&'static str> {
    let n = 3 + rng.below(6) as usize;
    (0..n)
        .map(|_| {
            if rng.below(2) == 0 {
                pick(rng, NOUNS)
            } else {
                pick(rng, ADJECTIVES)
            }
        })
        .collect()
}

/// One question and its answer.
fn question(rng: &mut Rng) -> (String, String) {
    match rng.below(6) {
        0 => {
            let noun = pick(rng, NOUNS);
            (format!("What is the plural of \"{noun}\"?"), plural(noun))
        }
        1 => {
            let w = words(rng);
            (
                format!("How many words are in \"{}\"?", w.join(" ")),
                w.len().to_string(),
            )
        }
        2 => {
            let a = pick(rng, NOUNS);
            let mut b = pick(rng, NOUNS);
            while b == a {
                b = pick(rng, NOUNS);
            }
            (
                format!("Which comes first in alphabetical order, \"{a}\" or \"{b}\"?"),
                a.min(b).to_string(),
            )
        }
        3 => {
            let w = pick(rng, ADJECTIVES);
            (
                format!("What letter does the word \"{w}\" start with?"),
                w.chars().next().map(String::from).unwrap_or_default(),
            )
        }
        4 => {
            let w = words(rng);
            (
                format!("What is the last word of \"{}\"?", w.join(" ")),
                w.last().copied().unwrap_or_default().to_string(),
            )
        }
        _ => {
            let w = words(rng).join(" ");
            (format!("Repeat these words exactly: {w}"), w)
        }
    }
}

/// `n` text QA items for the training manifest, ids `train-qa-00000`, ….
pub fn items(seed: u64, n: usize) -> Vec<Item> {
    let mut rng = Rng::new(seed ^ STREAM);
    (0..n)
        .map(|i| qa_item(question(&mut rng), format!("train-qa-{i:05}")))
        .collect()
}

/// How many held-out questions go with `n` training ones: a fifth, at least one, at most 1000.
pub fn held_out_count(n: usize) -> usize {
    (n / 5).clamp(1, 1000)
}

/// `count` held-out text QA items to score what the LLM answers to text (`osum eval` on
/// [`TEST_FILE`]), ids `test-qa-00000`, …: drawn from the same stream after [`items`]`(seed,
/// n_train)`, skipping any question that is word for word one of those, so none was trained on.
pub fn held_out(seed: u64, n_train: usize, count: usize) -> Result<Vec<Item>, String> {
    let mut rng = Rng::new(seed ^ STREAM);
    // Every question trained on or already taken; redrawing the training ones costs microseconds
    // per thousand, less than threading the generator's state through `items`.
    let mut seen: HashSet<String> = (0..n_train).map(|_| question(&mut rng).0).collect();
    let mut out = Vec::with_capacity(count);
    // Word-list questions are practically never repeated, so this bound is never reached; it
    // keeps a future rule with few distinct questions from looping forever.
    for _ in 0..count.saturating_mul(1000).max(1000) {
        if out.len() == count {
            break;
        }
        let qa = question(&mut rng);
        if seen.insert(qa.0.clone()) {
            out.push(qa_item(qa, format!("test-qa-{:05}", out.len())));
        }
    }
    if out.len() < count {
        return Err(format!(
            "bug: only {} of {count} text QA questions differ from the {n_train} trained on",
            out.len()
        ));
    }
    Ok(out)
}

/// The held-out text QA manifest `osum synth --text-qa N` writes beside `test.jsonl`.
pub const TEST_FILE: &str = "test-text-qa.jsonl";

fn qa_item((question, answer): (String, String), id: String) -> Item {
    Item {
        instruction: question,
        tasks: vec!["chat".into()],
        answer: Some(answer),
        id: Some(id),
        ..Item::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_out_questions_are_none_of_the_trained_ones_and_the_training_ones_stay_put() {
        let train = items(4, 500);
        let test = held_out(4, 500, held_out_count(500)).unwrap();
        assert_eq!(test.len(), 100);
        assert_eq!(test, held_out(4, 500, 100).unwrap());
        let trained: HashSet<&str> = train.iter().map(|i| i.instruction.as_str()).collect();
        let mut seen = HashSet::new();
        for item in &test {
            item.validate().unwrap();
            assert!(item.is_text_qa());
            assert!(!trained.contains(item.instruction.as_str()), "{item:?}");
            assert!(seen.insert(item.instruction.clone()), "repeated: {item:?}");
        }
        assert_eq!(test[0].id.as_deref(), Some("test-qa-00000"));
        // Asking for held-out questions does not move the training ones.
        assert_eq!(items(4, 500), train);
        assert_eq!((held_out_count(3), held_out_count(1_000_000)), (1, 1000));
    }

    #[test]
    fn text_qa_items_are_seeded_valid_and_answered_by_their_rule() {
        let a = items(1, 300);
        assert_eq!(a, items(1, 300));
        assert_ne!(a, items(2, 300));
        for item in &a {
            item.validate().unwrap();
            assert!(item.is_text_qa(), "{item:?}");
            let (q, ans) = (&item.instruction, item.answer.as_deref().unwrap());
            assert!(!ans.is_empty(), "{q}");
            let quoted = q.split('"').nth(1).unwrap_or("");
            if q.starts_with("How many words") {
                assert_eq!(ans, quoted.split(' ').count().to_string());
            } else if q.starts_with("What is the last word") {
                assert_eq!(Some(ans), quoted.split(' ').next_back());
            } else if q.starts_with("Repeat") {
                assert!(q.ends_with(ans), "{q} → {ans}");
            } else if q.starts_with("What letter") {
                assert!(quoted.starts_with(ans), "{q} → {ans}");
            } else if q.starts_with("Which comes first") {
                let other = q.split('"').nth(3).unwrap();
                assert!(ans == quoted.min(other) && quoted != other, "{q} → {ans}");
            } else {
                assert_eq!(ans, plural(quoted), "{q}");
            }
        }
        // Every kind of question is drawn.
        for start in [
            "What is the plural",
            "How many",
            "Which comes first",
            "What letter",
        ] {
            assert!(
                a.iter().any(|i| i.instruction.starts_with(start)),
                "{start}"
            );
        }
    }
}
