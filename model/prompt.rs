//! Prompt templates (REFERENCE §5–§6): how an instruction, optional speech and a system prompt
//! become the input sequence of the LLM.
//!
//! A prompt is a list of [`Segment`]s. Text segments are tokenized **separately** (as OSUM-Pangu
//! does), and the [`Segment::Speech`] placeholder is where the model splices
//! `[speech BOS] speech embeddings [speech EOS]`.

use serde::{Deserialize, Serialize};

/// One piece of a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Text to tokenize (special tokens such as `<|im_start|>` are matched by the tokenizer).
    Text(String),
    /// The speech embeddings go here.
    Speech,
}

/// The template families the presets use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Template {
    /// OSUM-Pangu: ChatML written as plain text, speech at the end of the user turn.
    OsumPangu,
    /// openPangu's native chat format: `[unused9]系统：…[unused10][unused9]用户：…[unused10][unused9]助手：`
    /// (no newlines, full-width colon).
    PanguNative,
    /// Original OSUM: no template, `instruction [speech]`.
    Osum,
    /// SmolLM2's ChatML (the same text form as OSUM-Pangu's, with its own default system prompt).
    #[serde(rename = "smollm2")]
    SmolLm2,
}

/// SmolLM2-Instruct's default system prompt (its chat template's).
pub const SMOLLM2_SYSTEM: &str =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// The default system prompt of our OSUM presets. (unc.: the released OSUM-Pangu system prompt is
/// not in REFERENCE.md; presets can override it.)
pub const OSUM_SYSTEM: &str = "You are OSUM-Pangu, a speech understanding assistant. \
First output the task tags for the instruction, then the answer.";

impl Template {
    /// Build the segments for `instruction`, with the speech placeholder when `speech`.
    /// `system` replaces the template's default system prompt. `fast_think` appends openPangu's
    /// ` /no_think` switch to the user text (native template only).
    pub fn build(
        self,
        system: Option<&str>,
        instruction: &str,
        speech: bool,
        fast_think: bool,
    ) -> Vec<Segment> {
        let mut segs = Vec::new();
        let text = |s: String| Segment::Text(s);
        match self {
            Template::OsumPangu | Template::SmolLm2 => {
                let sys = system.unwrap_or(if self == Template::SmolLm2 {
                    SMOLLM2_SYSTEM
                } else {
                    OSUM_SYSTEM
                });
                segs.push(text(format!(
                    "<|im_start|>system\n{sys}<|im_end|>\n<|im_start|>user\n{instruction}"
                )));
                if speech {
                    segs.push(Segment::Speech);
                }
                segs.push(text("<|im_end|>\n<|im_start|>assistant\n".into()));
            }
            Template::PanguNative => {
                let sys = system.unwrap_or(OSUM_SYSTEM);
                let switch = if fast_think { " /no_think" } else { "" };
                segs.push(text(format!(
                    "[unused9]系统：{sys}[unused10][unused9]用户：{instruction}{switch}"
                )));
                if speech {
                    segs.push(Segment::Speech);
                }
                segs.push(text("[unused10][unused9]助手：".into()));
            }
            Template::Osum => {
                segs.push(text(instruction.to_string()));
                if speech {
                    segs.push(Segment::Speech);
                }
            }
        }
        segs.retain(|s| !matches!(s, Segment::Text(t) if t.is_empty()));
        segs
    }

    /// The text that ends the assistant's turn (generation also stops there).
    pub fn end_of_turn(self) -> Option<&'static str> {
        match self {
            Template::OsumPangu | Template::SmolLm2 => Some("<|im_end|>"),
            Template::PanguNative => Some("[unused10]"),
            Template::Osum => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(segs: &[Segment]) -> String {
        segs.iter()
            .map(|s| match s {
                Segment::Text(t) => t.as_str(),
                Segment::Speech => "<SPEECH>",
            })
            .collect()
    }

    #[test]
    fn osum_pangu_puts_speech_at_the_end_of_the_user_turn() {
        let s = Template::OsumPangu.build(Some("SYS"), "transcribe", true, false);
        assert_eq!(s.len(), 3);
        assert_eq!(
            texts(&s),
            "<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\ntranscribe<SPEECH><|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn pangu_native_has_no_newlines_and_full_width_colons() {
        let s = Template::PanguNative.build(Some("S"), "Q", false, true);
        assert_eq!(
            texts(&s),
            "[unused9]系统：S[unused10][unused9]用户：Q /no_think[unused10][unused9]助手："
        );
        assert!(!texts(&s).contains('\n'));
    }

    #[test]
    fn original_osum_has_no_template() {
        let s = Template::Osum.build(None, "describe the speaker", true, false);
        assert_eq!(
            s,
            [
                Segment::Text("describe the speaker".into()),
                Segment::Speech
            ]
        );
        assert_eq!(Template::Osum.end_of_turn(), None);
    }

    #[test]
    fn smollm2_uses_its_own_default_system_prompt() {
        let s = Template::SmolLm2.build(None, "hi", false, false);
        assert!(texts(&s).contains(SMOLLM2_SYSTEM));
        assert_eq!(s.len(), 2);
    }
}
