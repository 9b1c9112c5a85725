//! Scoring one answer against its manifest item, and the totals over a run (issue 6 item 4):
//! - **IFR** (instruction-following rate, REFERENCE §6): the share of items whose answer's intent
//!   tags are exactly the requested tasks, as a set (order is formatting, not intent);
//! - **accuracy** per classification task: the answer's first label tag of that task equals the
//!   item's label (no label tag counts as wrong); for `chat` with a reference `answer` (text QA),
//!   the reply equals it after normalization (exact match: the benchmark's answers are a word or
//!   a few);
//! - **WER / CER** over the items that ask for a transcript: corpus-level edit distance on
//!   normalized text ([`super::text`]) divided by the reference's words / characters;
//! - **latency**: wall time of each `ask` (speech encoder + generation), in milliseconds.

use super::text::{char_errors, normalize, word_errors};
use crate::model::tags::{Parsed, Task};
use crate::train::data::Item;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The score of one answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// The intent tags equal the requested tasks.
    pub followed: bool,
    /// For each requested classification task: was the label right?
    pub labels: Vec<(Task, bool)>,
    /// `(edits, reference words)` when a transcript was asked for.
    pub words: Option<(usize, usize)>,
    /// `(edits, reference characters)` when a transcript was asked for.
    pub chars: Option<(usize, usize)>,
    /// Wall time of the answer.
    pub latency_ms: f64,
}

/// Score `answer` to `item`, which asked for `tasks`.
pub fn score(item: &Item, tasks: &[Task], answer: &Parsed, latency_ms: f64) -> Score {
    let mut asked: Vec<&str> = tasks.iter().map(|t| t.name()).collect();
    let mut got: Vec<&str> = answer.tasks.iter().map(|t| t.name()).collect();
    asked.sort_unstable();
    got.sort_unstable();
    let mut labels: Vec<(Task, bool)> = tasks
        .iter()
        .filter_map(|&t| {
            let truth = item.label(t)?;
            let said = answer.labels.iter().find(|(lt, _)| *lt == t);
            Some((t, said.is_some_and(|(_, l)| l == truth)))
        })
        .collect();
    if let (true, Some(truth)) = (tasks.contains(&Task::Chat), item.answer.as_deref()) {
        labels.push((Task::Chat, normalize(&answer.text) == normalize(truth)));
    }
    let transcribed = tasks.iter().any(|t| matches!(t, Task::Asr | Task::Srwt));
    let reference = item.reference_text(tasks);
    let (words, chars) = if transcribed {
        (
            Some(word_errors(reference, &answer.text)),
            Some(char_errors(reference, &answer.text)),
        )
    } else {
        (None, None)
    };
    Score {
        followed: asked == got,
        labels,
        words,
        chars,
        latency_ms,
    }
}

impl Score {
    /// The per-item fields of a predictions line.
    pub fn to_json(&self) -> Value {
        let correct: Map<String, Value> = self
            .labels
            .iter()
            .map(|(t, ok)| (t.name().to_string(), Value::from(*ok)))
            .collect();
        let mut v = json!({
            "followed": self.followed,
            "correct": correct,
            "latency_ms": self.latency_ms,
        });
        if let Some((e, n)) = self.words {
            v["word_errors"] = json!([e, n]);
        }
        if let Some((e, n)) = self.chars {
            v["char_errors"] = json!([e, n]);
        }
        v
    }
}

/// Sums over a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// Items scored.
    pub n: usize,
    /// Items whose intent tags matched.
    pub followed: usize,
    /// Per task name: (correct, asked).
    pub labels: BTreeMap<&'static str, (usize, usize)>,
    /// Word edits and reference words.
    pub words: (usize, usize),
    /// Character edits and reference characters.
    pub chars: (usize, usize),
    /// Every item's latency.
    pub latencies_ms: Vec<f64>,
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Nearest-rank percentile `p` (0–100) of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Totals {
    /// Add one item's score.
    pub fn add(&mut self, s: &Score) {
        self.n += 1;
        self.followed += usize::from(s.followed);
        for (t, ok) in &s.labels {
            let e = self.labels.entry(t.name()).or_default();
            e.0 += usize::from(*ok);
            e.1 += 1;
        }
        if let Some((e, n)) = s.words {
            self.words.0 += e;
            self.words.1 += n;
        }
        if let Some((e, n)) = s.chars {
            self.chars.0 += e;
            self.chars.1 += n;
        }
        self.latencies_ms.push(s.latency_ms);
    }

    /// Each task's `"task correct/asked"`, in task-name order (for one-line summaries).
    pub fn label_counts(&self) -> Vec<String> {
        self.labels
            .iter()
            .map(|(task, &(c, n))| format!("{task} {c}/{n}"))
            .collect()
    }

    /// Instruction-following rate (`None` before any item).
    pub fn ifr(&self) -> Option<f64> {
        ratio(self.followed, self.n)
    }

    /// Word error rate (`None` when no item asked for a transcript).
    pub fn wer(&self) -> Option<f64> {
        ratio(self.words.0, self.words.1)
    }

    /// Character error rate.
    pub fn cer(&self) -> Option<f64> {
        ratio(self.chars.0, self.chars.1)
    }

    /// Accuracy of one task (`None` when it was never asked).
    pub fn accuracy(&self, task: Task) -> Option<f64> {
        self.labels.get(task.name()).and_then(|&(c, n)| ratio(c, n))
    }

    /// `{"n", "ifr", "wer", "cer", "acc": {task: accuracy}, "acc_n": {task: items}, "latency_ms":
    /// {"mean", "p50", "p90", "max"}}`; rates are fractions in [0, 1] (WER may exceed 1), `null`
    /// when nothing was measured.
    pub fn to_json(&self) -> Value {
        let acc: Map<String, Value> = self
            .labels
            .iter()
            .map(|(t, &(c, n))| (t.to_string(), json!(ratio(c, n))))
            .collect();
        let acc_n: Map<String, Value> = self
            .labels
            .iter()
            .map(|(t, &(_, n))| (t.to_string(), json!(n)))
            .collect();
        let mut lat = self.latencies_ms.clone();
        lat.sort_by(f64::total_cmp);
        let mean = if lat.is_empty() {
            0.0
        } else {
            lat.iter().sum::<f64>() / lat.len() as f64
        };
        json!({
            "n": self.n,
            "ifr": self.ifr(),
            "wer": self.wer(),
            "cer": self.cer(),
            "acc": acc,
            "acc_n": acc_n,
            "latency_ms": {
                "mean": mean,
                "p50": percentile(&lat, 50.0),
                "p90": percentile(&lat, 90.0),
                "max": lat.last().copied().unwrap_or(0.0),
            },
        })
    }
}

/// The fixed-instruction vs natural-language table (as in the OSUM-Pangu paper's Table 3): one row
/// per measure, the two runs side by side. Age and emotion rows are marked as prosody proxies.
pub fn comparison_table(fixed: &Totals, natural: &Totals) -> String {
    let pct = |x: Option<f64>| x.map_or("—".to_string(), |v| format!("{:.1}%", 100.0 * v));
    let mut rows: Vec<(String, String, String)> = vec![
        (
            "instruction following (IFR)".into(),
            pct(fixed.ifr()),
            pct(natural.ifr()),
        ),
        ("ASR WER ↓".into(), pct(fixed.wer()), pct(natural.wer())),
        ("ASR CER ↓".into(), pct(fixed.cer()), pct(natural.cer())),
    ];
    let names = [
        (Task::Gender, "gender (SGC) acc"),
        (Task::Style, "style (SSR) acc"),
        (Task::Event, "event (VED) acc"),
        (Task::Emotion, "emotion (SER) acc, proxy"),
        (Task::Age, "age (SAP) acc, proxy"),
    ];
    for (t, name) in names {
        if fixed.accuracy(t).is_some() || natural.accuracy(t).is_some() {
            rows.push((
                name.into(),
                pct(fixed.accuracy(t)),
                pct(natural.accuracy(t)),
            ));
        }
    }
    let w = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let mut out = format!(
        "{:<w$}  {:>8}  {:>8}\n",
        "task / measure", "fixed", "natural"
    );
    for (name, f, n) in rows {
        out.push_str(&format!("{name:<w$}  {f:>8}  {n:>8}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tags::parse;

    fn item() -> Item {
        Item {
            audio: Some("a.wav".into()),
            instruction: "what is said and who says it".into(),
            tasks: vec!["asr".into(), "gender".into()],
            transcript: Some("the cat sat on the mat".into()),
            gender: Some("female".into()),
            ..Item::default()
        }
    }

    #[test]
    fn a_perfect_answer_scores_full_marks() {
        let it = item();
        let tasks = it.task_list().unwrap();
        let s = score(
            &it,
            &tasks,
            &parse("<gender><asr>The cat sat on the mat.<female>"),
            5.0,
        );
        assert!(s.followed, "tag order does not matter");
        assert_eq!(s.labels, [(Task::Gender, true)]);
        assert_eq!(s.words, Some((0, 6)));
        assert_eq!(s.chars, Some((0, 22)));
    }

    #[test]
    fn wrong_tags_labels_and_words_are_counted() {
        let it = item();
        let tasks = it.task_list().unwrap();
        // Missing <gender> intent tag, wrong label, one word substituted.
        let s = score(
            &it,
            &tasks,
            &parse("<asr>the cat sit on the mat<male>"),
            1.0,
        );
        assert!(!s.followed);
        assert_eq!(s.labels, [(Task::Gender, false)]);
        assert_eq!(s.words, Some((1, 6)));
        // No label tag at all is wrong too; an extra intent tag breaks following.
        let s2 = score(&it, &tasks, &parse("<asr><gender><age>the cat"), 3.0);
        assert!(!s2.followed);
        assert_eq!(s2.labels, [(Task::Gender, false)]);
        assert_eq!(s2.words, Some((4, 6)));
        let mut t = Totals::default();
        t.add(&s);
        t.add(&s2);
        assert_eq!(t.ifr(), Some(0.0));
        assert_eq!(t.wer(), Some(5.0 / 12.0));
        assert_eq!(t.accuracy(Task::Gender), Some(0.0));
        assert_eq!(t.accuracy(Task::Age), None);
        let v = t.to_json();
        assert_eq!(v["n"], 2);
        assert_eq!(v["latency_ms"]["max"], 3.0);
        assert_eq!(v["latency_ms"]["p50"], 1.0);
        assert_eq!(v["latency_ms"]["mean"], 2.0);
    }

    #[test]
    fn a_chat_reply_is_right_when_it_equals_the_answer_after_normalization() {
        let qa = Item {
            instruction: "What is the plural of \"cat\"?".into(),
            tasks: vec!["chat".into()],
            answer: Some("cats".into()),
            ..Item::default()
        };
        let tasks = qa.task_list().unwrap();
        let right = score(&qa, &tasks, &parse("<chat> Cats."), 1.0);
        assert!(right.followed);
        assert_eq!(right.labels, [(Task::Chat, true)]);
        assert_eq!(right.words, None, "a reply is not a transcript");
        let wrong = score(&qa, &tasks, &parse("<chat>cats and dogs"), 1.0);
        assert_eq!(wrong.labels, [(Task::Chat, false)]);
        // An intent item asks for tags only: no reference answer, no chat score.
        let intent = Item {
            answer: None,
            ..qa.clone()
        };
        assert!(score(&intent, &tasks, &parse("<chat>cats"), 1.0)
            .labels
            .is_empty());
        let mut t = Totals::default();
        t.add(&right);
        t.add(&wrong);
        assert_eq!(t.accuracy(Task::Chat), Some(0.5));
    }

    #[test]
    fn the_table_has_a_row_per_measure_asked() {
        let it = item();
        let tasks = it.task_list().unwrap();
        let mut fixed = Totals::default();
        fixed.add(&score(
            &it,
            &tasks,
            &parse("<asr><gender>the cat sat on the mat<female>"),
            1.0,
        ));
        let mut natural = Totals::default();
        natural.add(&score(&it, &tasks, &parse("<asr>the cat<male>"), 1.0));
        let table = comparison_table(&fixed, &natural);
        assert!(
            table.contains("100.0%") && table.contains("66.7%"),
            "{table}"
        );
        assert!(
            table.contains("gender (SGC)") && !table.contains("style"),
            "{table}"
        );
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&xs, 50.0), 5.0);
        assert_eq!(percentile(&xs, 90.0), 9.0);
        assert_eq!(percentile(&xs, 100.0), 10.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
