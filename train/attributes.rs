//! Auxiliary attribute alignment of a clip's pooled speech rows with the LLM's embeddings of its
//! label words, an optional extra loss for the stages that train the adapter
//! (`osum train --attr-weight W`; off by default, so REFERENCE §7's recipe is unchanged unless
//! asked for). The companion of the CTC alignment (train/ctc.rs), for the paralinguistic tasks.
//!
//! Why: the answer loss scores a clip's gender, age, style, emotion and event with one label
//! token each, and at osum-tiny's ~0.8 items/s the LLM sees too few of them for the adapter to
//! learn where those cues live. A linear probe on the frozen encoder's mean/std-pooled features
//! (`osum features` + scripts/probe_encoder_features.py) reads gender (89%) and style (94%) off
//! its last layer on held-out training voices, so the cues are there; after 1,600 stage-I items
//! the model's gender answers were still at chance. This term asks the mean of a clip's speech
//! rows to resemble the LLM's own embedding of each label word the clip carries (e.g. "female"
//! and "whisper"), so the frozen LLM meets a familiar word in the speech, and it costs one
//! `[1, d]·[d, L]` product per label instead of an LLM pass.
//!
//! - Per task, the classes are the task's labels (REFERENCE §6); a label's vector is the mean of
//!   the LLM's embeddings of the label text's tokens (frozen).
//! - Logits `= s·(mean row · e_label)` with the CTC alignment's scale `s` (train/ctc.rs).
//! - A clip's loss is the mean cross-entropy over the labels it has; a batch's is the mean over
//!   its clips that have any.

use crate::engine::{DType, Tensor};
use crate::model::osum::OsumModel;
use crate::model::tags::Task;
use crate::train::ctc::{logit_scale, mean_of, speech_rows};
use crate::train::data::Item;

/// The tasks with a closed label set, in a fixed order.
const TASKS: [Task; 5] = [
    Task::Gender,
    Task::Age,
    Task::Style,
    Task::Emotion,
    Task::Event,
];

/// The label-word classifier of pooled speech rows for one model.
pub struct AttributeAlignment {
    scale: f32,
    /// Per task of [`TASKS`]: its label vectors `[L, d]`.
    labels: Vec<(Task, Tensor)>,
}

impl AttributeAlignment {
    /// The classifier over the label words of every closed-set task.
    pub fn new(model: &OsumModel) -> Result<AttributeAlignment, String> {
        let msg = |e: crate::engine::Error| e.to_string();
        let table = model.text.llm.embedding_table();
        let mut labels = Vec::new();
        for task in TASKS {
            let Some(words) = task.labels() else { continue };
            let mut rows = Vec::with_capacity(words.len());
            for word in words {
                let ids = model
                    .text
                    .tokenizer
                    .encode(word)
                    .map_err(|e| format!("label {word:?}: {e}"))?;
                if ids.is_empty() {
                    return Err(format!("label {word:?} has no tokens"));
                }
                let row = crate::engine::no_grad(|| {
                    let at = Tensor::from_vec(ids.clone(), &[ids.len()], table.device())?;
                    table
                        .index_select(&at, 0)?
                        .to_dtype(DType::F32)?
                        .mean_keepdim(0)
                })
                .map_err(msg)?;
                rows.push(row);
            }
            labels.push((task, Tensor::cat(&rows, 0).map_err(msg)?));
        }
        Ok(AttributeAlignment {
            scale: logit_scale(model)?,
            labels,
        })
    }

    /// The index of each closed-set label an example carries, as `(task, label index)`; labels
    /// outside a task's set are an error naming them.
    pub fn targets(item: &Item) -> Result<Vec<(Task, usize)>, String> {
        let mut out = Vec::new();
        for task in TASKS {
            let (Some(label), Some(set)) = (item.label(task), task.labels()) else {
                continue;
            };
            let k = set
                .iter()
                .position(|l| *l == label)
                .ok_or_else(|| format!("{} label {label:?} is not one of {set:?}", task.name()))?;
            out.push((task, k));
        }
        Ok(out)
    }

    /// The mean cross-entropy of one clip's pooled rows `[n, d]` against its `targets`, or
    /// `None` when it has none.
    pub fn loss(&self, rows: &Tensor, targets: &[(Task, usize)]) -> Result<Option<Tensor>, String> {
        let msg = |e: crate::engine::Error| e.to_string();
        if targets.is_empty() || rows.shape().first().copied().unwrap_or(0) == 0 {
            return Ok(None);
        }
        let pooled = rows
            .to_dtype(DType::F32)
            .and_then(|r| r.mean_keepdim(0))
            .and_then(|p| p.scale(self.scale))
            .map_err(msg)?;
        let mut ces = Vec::with_capacity(targets.len());
        for &(task, k) in targets {
            let Some((_, set)) = self.labels.iter().find(|(t, _)| *t == task) else {
                return Err(format!("no label set for task {}", task.name()));
            };
            let target = Tensor::from_vec(vec![k as u32], &[1], rows.device()).map_err(msg)?;
            let ce = pooled
                .linear(set, None)
                .and_then(|logits| logits.cross_entropy(&target, -100))
                .map_err(msg)?;
            ces.push(ce);
        }
        mean_of(&ces)
    }

    /// The mean of [`AttributeAlignment::loss`] over the clips of a batch that have labels:
    /// `speech[i]` is clip `i`'s wrapped speech (see [`speech_rows`]).
    pub fn batch_loss(
        &self,
        speech: &[Option<Tensor>],
        targets: &[&[(Task, usize)]],
    ) -> Result<Option<Tensor>, String> {
        let mut losses = Vec::new();
        for (sp, t) in speech.iter().zip(targets) {
            let Some(sp) = sp else { continue };
            if let Some(l) = self.loss(&speech_rows(sp)?, t)? {
                losses.push(l);
            }
        }
        mean_of(&losses)
    }
}
