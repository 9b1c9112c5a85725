//! Task tags and label tags (REFERENCE §6): the vocabulary OSUM-Pangu's answers are written in,
//! and the parser that turns an answer such as `<asr><gender>hello there<female>` into
//! structured fields.
//!
//! An answer is: leading **intent tags** naming the tasks the model decided to perform, then the
//! free text of the answer (a transcript, a spoken-chat reply), with **label tags** for the
//! classification tasks (`<female>`, `<happy>`, …) anywhere after the intent tags (the released
//! models put them at the end).

use serde_json::{Map, Value};

/// One task the model can be asked to perform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// Speech recognition: the transcript.
    Asr,
    /// Speech recognition with word times (SRWT).
    Srwt,
    /// Vocal event detection (VED).
    Event,
    /// Speech emotion recognition (SER).
    Emotion,
    /// Speaking style recognition (SSR).
    Style,
    /// Speaker gender classification (SGC).
    Gender,
    /// Speaker age prediction (SAP).
    Age,
    /// Speech-to-text chat (STTC): answer a spoken question.
    Chat,
}

impl Task {
    /// Every task, in the order answers list them.
    pub const ALL: [Task; 8] = [
        Task::Asr,
        Task::Srwt,
        Task::Event,
        Task::Emotion,
        Task::Style,
        Task::Gender,
        Task::Age,
        Task::Chat,
    ];

    /// The tag text without brackets (also the JSON key and the manifest's `tasks` entry).
    pub fn name(self) -> &'static str {
        match self {
            Task::Asr => "asr",
            Task::Srwt => "srwt",
            Task::Event => "event",
            Task::Emotion => "emotion",
            Task::Style => "style",
            Task::Gender => "gender",
            Task::Age => "age",
            Task::Chat => "chat",
        }
    }

    /// The task whose tag text is `name`.
    pub fn from_name(name: &str) -> Option<Task> {
        Task::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The intent tag, e.g. `<asr>`.
    pub fn tag(self) -> String {
        format!("<{}>", self.name())
    }

    /// The labels of a classification task (REFERENCE §6; the style set is the synthetic
    /// benchmark's), or `None` for the free-text tasks.
    pub fn labels(self) -> Option<&'static [&'static str]> {
        match self {
            Task::Emotion => Some(&[
                "sad", "anger", "neutral", "happy", "surprise", "fear", "disgust", "other",
            ]),
            Task::Age => Some(&["child", "adult", "old"]),
            Task::Gender => Some(&["male", "female"]),
            Task::Event => Some(&[
                "laugh",
                "cough",
                "cry",
                "screaming",
                "sigh",
                "throat clearing",
                "sneeze",
                "other",
            ]),
            Task::Style => Some(&["normal", "whisper", "fast", "slow", "shout"]),
            Task::Asr | Task::Srwt | Task::Chat => None,
        }
    }

    /// The label tag for `label` of this task, e.g. `<female>`. The label sets share one word,
    /// `other` (emotion and event); its tag is qualified as `<emotion:other>` / `<event:other>`
    /// so a parser can tell them apart.
    pub fn label_tag(self, label: &str) -> String {
        if label == "other" {
            format!("<{}:other>", self.name())
        } else {
            format!("<{label}>")
        }
    }
}

/// The task a label tag's text (without brackets) belongs to, and the label.
fn label_of(tag: &str) -> Option<(Task, &str)> {
    if let Some((task, label)) = tag.split_once(':') {
        let task = Task::from_name(task)?;
        return task
            .labels()?
            .iter()
            .find(|l| **l == label)
            .map(|l| (task, *l));
    }
    Task::ALL.into_iter().find_map(|t| {
        t.labels()?
            .iter()
            .find(|l| **l == tag && **l != "other")
            .map(|l| (t, *l))
    })
}

/// The structured reading of one answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed {
    /// Tasks named by the leading intent tags, in order.
    pub tasks: Vec<Task>,
    /// The free text with every recognised tag removed and whitespace trimmed.
    pub text: String,
    /// `(task, label)` for each label tag found, in order.
    pub labels: Vec<(Task, String)>,
    /// Tags that are neither intent nor label tags, kept verbatim (e.g. a hallucinated `<foo>`).
    pub unknown_tags: Vec<String>,
}

impl Parsed {
    /// The JSON object the CLI prints: `{"tasks":[…], "transcript"|"answer": …, "<task>": label, …}`.
    /// The free text is `transcript` unless the only free-text task asked was chat (`answer`).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "tasks".into(),
            Value::from(self.tasks.iter().map(|t| t.name()).collect::<Vec<_>>()),
        );
        let chat_only = self.tasks.contains(&Task::Chat)
            && !self.tasks.contains(&Task::Asr)
            && !self.tasks.contains(&Task::Srwt);
        if !self.text.is_empty() || self.tasks.iter().any(|t| t.labels().is_none()) {
            let key = if chat_only { "answer" } else { "transcript" };
            m.insert(key.into(), Value::from(self.text.clone()));
        }
        for (task, label) in &self.labels {
            m.entry(task.name())
                .or_insert_with(|| Value::from(label.clone()));
        }
        if !self.unknown_tags.is_empty() {
            m.insert(
                "unknown_tags".into(),
                Value::from(self.unknown_tags.clone()),
            );
        }
        Value::Object(m)
    }
}

/// Split `answer` into intent tags, free text and label tags. Never fails: text that is not a
/// well-formed tag stays in the free text, and a tag nobody knows is reported, not dropped.
pub fn parse(answer: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut rest = answer.trim_start();
    // Leading intent tags.
    while let Some((tag, after)) = next_tag(rest) {
        match Task::from_name(tag) {
            Some(t) => {
                if !out.tasks.contains(&t) {
                    out.tasks.push(t);
                }
                rest = after.trim_start();
            }
            None => break,
        }
    }
    // The body: label tags anywhere, free text between them.
    let mut text = String::new();
    let mut body = rest;
    while let Some(open) = body.find('<') {
        text.push_str(&body[..open]);
        let from = &body[open..];
        match next_tag(from) {
            Some((tag, after)) => {
                if let Some((task, label)) = label_of(tag) {
                    out.labels.push((task, label.to_string()));
                } else {
                    out.unknown_tags.push(format!("<{tag}>"));
                }
                body = after;
            }
            None => {
                text.push('<');
                body = &from[1..];
            }
        }
    }
    text.push_str(body);
    out.text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    out
}

/// `<name>` at the start of `s` (name: 1–40 chars, no `<`, `>` or newline): `(name, rest)`.
fn next_tag(s: &str) -> Option<(&str, &str)> {
    let inner = s.strip_prefix('<')?;
    let close = inner.find('>')?;
    let name = &inner[..close];
    let ok = !name.is_empty() && name.chars().count() <= 40 && !name.contains(['<', '\n']);
    ok.then(|| (name, &inner[close + 1..]))
}

/// The target text for training: intent tags, then the free text, then the label tags, in the
/// order of `tasks` (the inverse of [`parse`]).
pub fn format_answer(tasks: &[Task], text: &str, labels: &[(Task, &str)]) -> String {
    let mut s: String = tasks.iter().map(|t| t.tag()).collect();
    s.push_str(text.trim());
    for (t, l) in labels {
        s.push_str(&t.label_tag(l));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_intent_tags_text_and_labels_into_fields() {
        let p = parse("<asr><gender>hello there<female>");
        assert_eq!(p.tasks, [Task::Asr, Task::Gender]);
        assert_eq!(p.text, "hello there");
        assert_eq!(p.labels, [(Task::Gender, "female".to_string())]);
        assert_eq!(
            p.to_json().to_string(),
            r#"{"gender":"female","tasks":["asr","gender"],"transcript":"hello there"}"#
        );
    }

    #[test]
    fn other_is_qualified_by_its_task_and_multiword_labels_parse() {
        let a = format_answer(
            &[Task::Emotion, Task::Event],
            "",
            &[(Task::Emotion, "other"), (Task::Event, "throat clearing")],
        );
        assert_eq!(a, "<emotion><event><emotion:other><throat clearing>");
        let p = parse(&a);
        assert_eq!(
            p.labels,
            [
                (Task::Emotion, "other".to_string()),
                (Task::Event, "throat clearing".to_string())
            ]
        );
        assert!(p.text.is_empty());
    }

    #[test]
    fn format_then_parse_round_trips() {
        let labels = [(Task::Age, "old"), (Task::Style, "whisper")];
        let tasks = [Task::Asr, Task::Age, Task::Style];
        let p = parse(&format_answer(&tasks, "  the cat sat ", &labels));
        assert_eq!(p.tasks, tasks);
        assert_eq!(p.text, "the cat sat");
        assert_eq!(p.labels.len(), 2);
    }

    #[test]
    fn malformed_and_unknown_tags_are_kept_not_lost() {
        let p = parse("<asr>a < b and <foo> c <male");
        assert_eq!(p.tasks, [Task::Asr]);
        assert_eq!(p.text, "a < b and c <male");
        assert_eq!(p.unknown_tags, ["<foo>"]);
        let empty = parse("");
        assert!(empty.tasks.is_empty() && empty.text.is_empty());
    }

    #[test]
    fn chat_only_answers_are_reported_as_answer() {
        let v = parse("<chat>Paris is the capital.").to_json();
        assert_eq!(v["answer"], "Paris is the capital.");
        assert!(v.get("transcript").is_none());
    }
}
