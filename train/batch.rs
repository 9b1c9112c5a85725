//! Training examples and batches: a prompt laid out exactly as [`OsumModel::ask`] lays it out
//! (through [`OsumModel::prompt_embeddings`]), followed by the target tokens and the end-of-answer
//! token; the loss is the mean cross-entropy over the target tokens only (REFERENCE §6–§7).
//!
//! Batches are **right-padded** with zero embeddings. The LLM has no attention mask, but its
//! attention is causal, so a valid position never sees the padding after it: each item's target
//! logits equal a run of that item alone, and the padded positions are simply not scored (only the
//! target rows are gathered before the LM head, which also keeps the 49k-wide projection off the
//! prompt positions).

use crate::engine::{DType, Tensor};
use crate::model::osum::OsumModel;
use std::path::PathBuf;

/// One training example, ready to embed.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// 0-based index of the item among the manifest's items (for error messages and logs).
    pub item: usize,
    /// The item's id when the manifest gives one.
    pub id: Option<String>,
    /// The instruction placed in the prompt.
    pub instruction: String,
    /// The audio file (absent for text-only examples).
    pub audio: Option<PathBuf>,
    /// Target token ids, ending with the end-of-answer token.
    pub target: Vec<u32>,
    /// The transcript's token ids, for the auxiliary CTC alignment (train/ctc.rs); `None` for
    /// text-only items, items without a transcript, or when the run does not use CTC.
    pub ctc_labels: Option<Vec<u32>>,
    /// The closed-set labels the item carries, for the auxiliary attribute alignment
    /// (train/attributes.rs); empty for text-only items or when the run does not use it.
    pub attributes: Vec<(crate::model::tags::Task, usize)>,
}

impl Example {
    /// How the example is named in errors: its 1-based position in the manifest, and its id
    /// when it has one.
    pub fn name(&self) -> String {
        match &self.id {
            Some(id) => format!("manifest item {} (`{id}`)", self.item + 1),
            None => format!("manifest item {}", self.item + 1),
        }
    }
}

/// A micro-batch's loss and its token counts.
pub struct BatchLoss {
    /// Mean cross-entropy over every target token of the batch (a scalar that records gradients).
    pub loss: Tensor,
    /// Target (scored) tokens.
    pub target_tokens: usize,
    /// Input positions the LLM ran, without padding.
    pub tokens: usize,
    /// Input positions including padding (`items × longest`).
    pub padded_tokens: usize,
}

/// The loss of `examples`, whose speech embeddings (from [`OsumModel::speech_from_features`], or
/// `None` for text-only examples) are `speech`, in the same order.
pub fn batch_loss(
    model: &OsumModel,
    examples: &[&Example],
    speech: &[Option<Tensor>],
) -> Result<BatchLoss, String> {
    let msg = |e: crate::engine::Error| e.to_string();
    if examples.is_empty() || examples.len() != speech.len() {
        return Err(format!(
            "a batch needs one speech entry per example ({} examples, {} entries)",
            examples.len(),
            speech.len()
        ));
    }
    let llm = &model.text.llm;
    let hidden = llm.config.hidden;
    // Each sequence: prompt ++ target[..n-1]; position P-1+j predicts target[j].
    let mut seqs = Vec::with_capacity(examples.len());
    for (ex, sp) in examples.iter().zip(speech) {
        if ex.target.is_empty() {
            return Err(format!("{}: empty target", ex.name()));
        }
        let (prompt, _) = model.prompt_embeddings(&ex.instruction, sp.as_ref())?;
        let p = prompt.shape()[1];
        let n = ex.target.len();
        let seq = if n > 1 {
            let t = llm
                .embed_ids(&ex.target[..n - 1])
                .map_err(|e| e.to_string())?;
            Tensor::cat(&[prompt, t], 1).map_err(msg)?
        } else {
            prompt
        };
        seqs.push((seq, p));
    }
    let longest = seqs.iter().map(|(s, _)| s.shape()[1]).max().unwrap_or(0);
    let dev = llm.device().clone();
    let mut rows = Vec::with_capacity(seqs.len());
    let mut tokens = 0;
    for (seq, _) in &seqs {
        let len = seq.shape()[1];
        tokens += len;
        rows.push(if len < longest {
            let pad = Tensor::zeros(&[1, longest - len, hidden], DType::F32, &dev).map_err(msg)?;
            Tensor::cat(&[seq.clone(), pad], 1).map_err(msg)?
        } else {
            seq.clone()
        });
    }
    let x = if rows.len() == 1 {
        rows.pop().unwrap_or_else(|| unreachable!("one row"))
    } else {
        Tensor::cat(&rows, 0).map_err(msg)?
    };
    let h = llm.hidden_states(&x, None).map_err(|e| e.to_string())?;
    let mut picked = Vec::with_capacity(seqs.len());
    let mut targets: Vec<i64> = Vec::new();
    for (b, ((_, p), ex)) in seqs.iter().zip(examples).enumerate() {
        let n = ex.target.len();
        let r = h
            .narrow(0, b, 1)
            .and_then(|r| r.narrow(1, p - 1, n))
            .and_then(|r| r.reshape(&[n, hidden]))
            .map_err(msg)?;
        picked.push(r);
        targets.extend(ex.target.iter().map(|&t| t as i64));
    }
    let picked = if picked.len() == 1 {
        picked.pop().unwrap_or_else(|| unreachable!("one item"))
    } else {
        Tensor::cat(&picked, 0).map_err(msg)?
    };
    let logits = llm.logits(&picked).map_err(|e| e.to_string())?;
    let n_targets = targets.len();
    let targets = Tensor::from_vec(targets, &[n_targets], &dev).map_err(msg)?;
    let loss = logits.cross_entropy(&targets, -100).map_err(msg)?;
    Ok(BatchLoss {
        loss,
        target_tokens: n_targets,
        tokens,
        padded_tokens: longest * examples.len(),
    })
}
