//! The manifest: one JSON object per line describing one training or evaluation item
//! (issue "three-stage trainer", README "Manifest format"):
//!
//! ```json
//! {"audio": "wav/0001.wav", "instruction": "what is said, and is it a man or a woman?",
//!  "tasks": ["asr", "gender"], "transcript": "go forward ten meters", "gender": "male"}
//! ```
//!
//! `audio` is absent for text-only items: stage II's intent parsing (instruction → task tags
//! only) and, when such an item asks for `chat` alone and carries an `answer`, **text QA** (a
//! written question → its answer), which stage I mixes in (REFERENCE §7).
//! Label fields are optional in general, but an item with audio must carry the label of every
//! classification task it lists (and a transcript for `asr`/`srwt`, an answer for `chat`), since
//! that is what its training target is made of. Relative audio paths are relative to the manifest
//! file. An unknown field is an error (it is almost always a misspelt label field); `id` and
//! `speaker` are the optional bookkeeping fields generators set.

use crate::model::tags::{format_answer, Task};
use crate::train::atomic::write_atomic;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One item of a manifest.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Audio file (WAV or raw PCM), relative to the manifest or absolute; absent for text-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<String>,
    /// The natural-language (or fixed-tag) instruction.
    pub instruction: String,
    /// The tasks the instruction asks for, by tag name (`asr`, `gender`, …), in answer order.
    pub tasks: Vec<String>,
    /// What is said (for `asr` / `srwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
    /// The reply to a spoken question (for `chat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// Speaker gender label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// Speaker age label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<String>,
    /// Speaking style label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
    /// Emotion label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emotion: Option<String>,
    /// Sound event label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// A stable item id (generators set it; eval reports it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The voice or speaker the audio came from (held-out splits are by speaker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

impl Item {
    /// The requested tasks, or an error naming the unknown one.
    pub fn task_list(&self) -> Result<Vec<Task>, String> {
        self.tasks
            .iter()
            .map(|n| {
                Task::from_name(n).ok_or_else(|| {
                    let known: Vec<_> = Task::ALL.iter().map(|t| t.name()).collect();
                    format!("unknown task `{n}` (known: {})", known.join(", "))
                })
            })
            .collect()
    }

    /// The item's label for a classification task, if it has one.
    pub fn label(&self, task: Task) -> Option<&str> {
        match task {
            Task::Gender => self.gender.as_deref(),
            Task::Age => self.age.as_deref(),
            Task::Style => self.style.as_deref(),
            Task::Emotion => self.emotion.as_deref(),
            Task::Event => self.event.as_deref(),
            Task::Asr | Task::Srwt | Task::Chat => None,
        }
    }

    /// The reference free text of the answer: the transcript for `asr`/`srwt`, the reply for
    /// `chat`, empty when neither is asked for.
    pub fn reference_text(&self, tasks: &[Task]) -> &str {
        if tasks.contains(&Task::Chat) {
            self.answer.as_deref().unwrap_or("")
        } else if tasks.iter().any(|t| matches!(t, Task::Asr | Task::Srwt)) {
            self.transcript.as_deref().unwrap_or("")
        } else {
            ""
        }
    }

    /// Check the item is usable: known tasks, at least one; labels from each task's label set;
    /// and, for items with audio, every field its target needs.
    pub fn validate(&self) -> Result<(), String> {
        let tasks = self.task_list()?;
        if tasks.is_empty() {
            return Err("`tasks` is empty".into());
        }
        if self.instruction.trim().is_empty() {
            return Err("`instruction` is empty".into());
        }
        for t in Task::ALL {
            if let (Some(label), Some(set)) = (self.label(t), t.labels()) {
                if !set.contains(&label) {
                    return Err(format!(
                        "`{}` is `{label}`, not one of {}",
                        t.name(),
                        set.join(", ")
                    ));
                }
            }
        }
        if self.audio.is_none() {
            return Ok(());
        }
        for &t in &tasks {
            let missing = match t {
                Task::Asr | Task::Srwt => self.transcript.is_none().then_some("transcript"),
                Task::Chat => self.answer.is_none().then_some("answer"),
                _ => self.label(t).is_none().then(|| t.name()),
            };
            if let Some(field) = missing {
                return Err(format!(
                    "task `{}` is asked for but `{field}` is missing",
                    t.name()
                ));
            }
        }
        Ok(())
    }

    /// Whether this is a text QA item: no audio, `tasks` exactly `["chat"]` and an `answer`
    /// (stage I's text QA; stage II leaves these out).
    pub fn is_text_qa(&self) -> bool {
        self.audio.is_none() && self.answer.is_some() && self.tasks == ["chat"]
    }

    /// The training target (REFERENCE §6): intent tags, then for items with audio the free text
    /// and the label tags; for text QA items `<chat>` and the answer; for the other text-only
    /// items (stage II) the intent tags alone.
    pub fn target(&self) -> Result<String, String> {
        let tasks = self.task_list()?;
        if self.audio.is_none() && !self.is_text_qa() {
            return Ok(fixed_instruction(&tasks));
        }
        let labels: Vec<(Task, &str)> = tasks
            .iter()
            .filter_map(|&t| self.label(t).map(|l| (t, l)))
            .collect();
        Ok(format_answer(&tasks, self.reference_text(&tasks), &labels))
    }
}

/// The fixed instruction of stage I (REFERENCE §7: "fixed task tags as prompts") and of eval's
/// `--compare-fixed`: the intent tags of the requested tasks, e.g. `<asr><gender>`.
pub fn fixed_instruction(tasks: &[Task]) -> String {
    format_answer(tasks, "", &[])
}

/// A loaded manifest: its items and the folder relative audio paths start from.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The folder holding the manifest file.
    pub dir: PathBuf,
    /// Items in file order.
    pub items: Vec<Item>,
}

impl Manifest {
    /// Read and validate a manifest; an error names the file and line.
    pub fn load(path: &Path) -> Result<Manifest, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read the manifest: {e}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parse manifest text; `path` names it in errors and sets the base folder.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, String> {
        let mut items = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = |e: String| format!("{}:{}: {e}", path.display(), i + 1);
            let item: Item = serde_json::from_str(line).map_err(|e| at(e.to_string()))?;
            item.validate().map_err(at)?;
            items.push(item);
        }
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Manifest { dir, items })
    }

    /// The audio file of `item`, resolved against the manifest's folder.
    pub fn audio_path(&self, item: &Item) -> Option<PathBuf> {
        item.audio.as_ref().map(|a| self.dir.join(a))
    }

    /// Write `items` as a manifest at `path`, atomically.
    pub fn save(path: &Path, items: &[Item]) -> Result<(), String> {
        let mut out = String::new();
        for item in items {
            let line = serde_json::to_string(item).map_err(|e| e.to_string())?;
            out.push_str(&line);
            out.push('\n');
        }
        write_atomic(path, out.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speech_item() -> Item {
        Item {
            audio: Some("wav/a.wav".into()),
            instruction: "what is said, and is it a man or a woman?".into(),
            tasks: vec!["asr".into(), "gender".into()],
            transcript: Some("go forward ten meters".into()),
            gender: Some("male".into()),
            ..Item::default()
        }
    }

    #[test]
    fn speech_targets_are_intent_tags_then_text_then_label_tags() {
        assert_eq!(
            speech_item().target().unwrap(),
            "<asr><gender>go forward ten meters<male>"
        );
    }

    #[test]
    fn text_only_targets_are_the_intent_tags_alone() {
        let item = Item {
            audio: None,
            transcript: None,
            gender: None,
            ..speech_item()
        };
        item.validate().unwrap();
        assert_eq!(item.target().unwrap(), "<asr><gender>");
    }

    #[test]
    fn a_text_qa_item_targets_its_answer_and_only_chat_alone_makes_one() {
        let qa = Item {
            instruction: "What is the plural of \"box\"?".into(),
            tasks: vec!["chat".into()],
            answer: Some("boxes".into()),
            ..Item::default()
        };
        qa.validate().unwrap();
        assert!(qa.is_text_qa());
        assert_eq!(qa.target().unwrap(), "<chat>boxes");
        let with_audio = Item {
            audio: Some("wav/q.wav".into()),
            ..qa.clone()
        };
        let two_tasks = Item {
            tasks: vec!["chat".into(), "gender".into()],
            ..qa.clone()
        };
        let no_answer = Item {
            answer: None,
            ..qa.clone()
        };
        for not_qa in [with_audio, two_tasks, no_answer] {
            assert!(!not_qa.is_text_qa(), "{not_qa:?}");
        }
    }

    #[test]
    fn lines_round_trip_and_audio_resolves_against_the_manifest_folder() {
        let tmp = crate::scratch_dir("manifest");
        let dir = tmp.path();
        let path = dir.join("train.jsonl");
        let items = vec![
            speech_item(),
            Item {
                audio: None,
                ..speech_item()
            },
        ];
        Manifest::save(&path, &items).unwrap();
        let m = Manifest::load(&path).unwrap();
        assert_eq!(m.items, items);
        assert_eq!(m.audio_path(&m.items[0]).unwrap(), dir.join("wav/a.wav"));
    }

    #[test]
    fn bad_lines_are_errors_naming_file_line_and_field() {
        let p = Path::new("m.jsonl");
        let ok = serde_json::to_string(&speech_item()).unwrap();
        let cases = [
            (
                r#"{"instruction":"x","tasks":["dance"]}"#,
                "unknown task `dance`",
            ),
            (r#"{"instruction":"x","tasks":[]}"#, "`tasks` is empty"),
            (
                r#"{"audio":"a.wav","instruction":"x","tasks":["gender"]}"#,
                "`gender` is missing",
            ),
            (
                r#"{"instruction":"x","tasks":["gender"],"gender":"robot"}"#,
                "`gender` is `robot`",
            ),
            (
                r#"{"instruction":"x","tasks":["asr"],"colour":1}"#,
                "colour",
            ),
            ("not json", "expected"),
        ];
        for (line, want) in cases {
            let text = format!("{ok}\n\n{line}\n");
            let e = Manifest::parse(&text, p).unwrap_err();
            assert!(e.starts_with("m.jsonl:3: ") && e.contains(want), "{e}");
        }
    }
}
