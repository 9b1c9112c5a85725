//! Auxiliary CTC alignment of the adapter's speech rows with the LLM's token embeddings, an
//! optional extra loss for the stages that train the adapter (`osum train --ctc-weight W`; off
//! by default, so REFERENCE §7's recipe is unchanged unless asked for).
//!
//! Why: with the LLM frozen, the answer loss reaches the adapter only through 30 frozen layers,
//! and on osum-tiny the LoRA learns the answers' language prior long before the speech rows carry
//! usable content (after 400 stage-I steps the transcripts were memorised training sentences
//! whatever the clip, gender at chance). CTC gives every speech row its own target instead: each
//! row is classified against the LLM's token embeddings plus a blank, and the labels are the
//! clip's transcript tokens in order (Graves et al. 2006). Rows then come to resemble the
//! embeddings of the tokens spoken there, which the frozen LLM already reads.
//!
//! - Classes: the LLM's (frozen) embeddings of the tokens that occur in the run's transcripts
//!   and, as the last class, the blank, whose vector is the adapter's otherwise unused speech
//!   token 0 ([`crate::model::adapter::Adapter::ctc_blank`]), so it trains with the adapter.
//!   Why only the transcripts' tokens: the rows must tell the spoken tokens apart from each
//!   other, not from the ~49k tokens never spoken (on the synthetic benchmark, a few hundred
//!   words). Against the whole vocabulary the per-label loss was still 3.4 nats after 2,100
//!   steps, and each row cost a 49k-way product; for a real corpus the set approaches the
//!   whole vocabulary anyway.
//! - Logits `= s·(row · e_k)` with `s = 30 / (d·rms²)`, `rms` the embedding table's RMS: a row
//!   equal to a typical token embedding scores 30 for it, and unrelated embeddings (dot products
//!   ≈ 0 ± √d·rms²) stay near 0, so a near-certain class is reachable.
//! - The loss of a clip is its CTC negative log-likelihood divided by its label count (a
//!   per-token figure, like the answer loss); a batch's is the mean over its clips.

use crate::engine::{DType, Tensor};
use crate::model::osum::OsumModel;
use crate::train::batch::Example;
use std::collections::HashMap;

/// The logit a row equal to a typical token embedding gives that token (see the module docs).
const MATCH_LOGIT: f32 = 30.0;

/// The factor `s = 30 / (d·rms²)` that turns a dot product with a token embedding into a logit
/// (module docs); shared with the attribute alignment (train/attributes.rs).
pub fn logit_scale(model: &OsumModel) -> Result<f32, String> {
    let llm = &model.text.llm;
    let rms = llm.embedding_rms().map_err(|e| e.to_string())?;
    if !(rms.is_finite() && rms > 0.0) {
        return Err(format!("the LLM's embedding table has RMS {rms}"));
    }
    Ok(MATCH_LOGIT / (llm.config.hidden as f32 * rms * rms))
}

/// The speech rows `[n, d]` of one clip's wrapped speech `[1, n + 2, d]` (BOS and EOS around
/// the rows, as [`OsumModel::speech_from_feature_batch`] returns it).
pub fn speech_rows(wrapped: &Tensor) -> Result<Tensor, String> {
    let (n, d) = match wrapped.shape() {
        [1, n, d] if *n >= 2 => (n - 2, *d),
        s => return Err(format!("wrapped speech must be [1, n + 2, d], got {s:?}")),
    };
    wrapped
        .narrow(1, 1, n)
        .and_then(|r| r.reshape(&[n, d]))
        .map_err(|e| e.to_string())
}

/// The CTC classifier of speech rows for one model and one run's transcripts.
pub struct CtcAlignment {
    scale: f32,
    /// The embeddings `[C, d]` of the transcripts' tokens (constant: the table is frozen).
    classes: Tensor,
    /// Token id → class index in `classes`.
    class_of: HashMap<u32, u32>,
}

impl CtcAlignment {
    /// The classifier over the tokens of `examples`' CTC labels plus the adapter's blank.
    pub fn new(model: &OsumModel, examples: &[Example]) -> Result<CtcAlignment, String> {
        let msg = |e: crate::engine::Error| e.to_string();
        let mut ids: Vec<u32> = examples
            .iter()
            .filter_map(|e| e.ctc_labels.as_deref())
            .flatten()
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Err("--ctc-weight needs audio items with a transcript".into());
        }
        let table = model.text.llm.embedding_table();
        let classes = crate::engine::no_grad(|| {
            let at = Tensor::from_vec(ids.clone(), &[ids.len()], table.device())?;
            table.index_select(&at, 0)
        })
        .map_err(msg)?;
        let class_of = ids
            .iter()
            .enumerate()
            .map(|(k, &t)| (t, k as u32))
            .collect();
        Ok(CtcAlignment {
            scale: logit_scale(model)?,
            classes,
            class_of,
        })
    }

    /// The blank's class vector `[1, d]` (f32): a view of the adapter's speech token 0, taken
    /// once per batch so that its clips' gradients are summed before they reach the adapter's
    /// table (see [`crate::model::adapter::Adapter::wrap_speech_items`]).
    pub fn blank(model: &OsumModel) -> Result<Tensor, String> {
        model
            .adapter
            .ctc_blank()
            .and_then(|b| Ok(b.to_dtype(DType::F32)?.unsqueeze(0)?))
            .map_err(|e| e.to_string())
    }

    /// The per-label CTC loss of one clip's speech rows `[n, d]` against its transcript's token
    /// ids, with `blank` from [`CtcAlignment::blank`], or `None` when the clip has too few rows
    /// for its labels (or no labels): such clips are left out of the CTC term, and the caller
    /// counts them.
    pub fn loss(
        &self,
        blank: &Tensor,
        rows: &Tensor,
        labels: &[u32],
    ) -> Result<Option<Tensor>, String> {
        let msg = |e: crate::engine::Error| e.to_string();
        let n = rows.shape().first().copied().unwrap_or(0);
        if labels.is_empty() || n < crate::engine::ops::loss::ctc_min_frames(labels) {
            return Ok(None);
        }
        let classes: Vec<u32> = labels
            .iter()
            .map(|t| {
                self.class_of
                    .get(t)
                    .copied()
                    .ok_or_else(|| format!("token {t} is not among the run's transcript tokens"))
            })
            .collect::<Result<_, String>>()?;
        let scaled = rows.scale(self.scale).map_err(msg)?;
        let text = scaled.linear(&self.classes, None).map_err(msg)?;
        let blank = scaled.linear(blank, None).map_err(msg)?;
        let logits = Tensor::cat(&[text, blank], 1).map_err(msg)?;
        let ids = Tensor::from_vec(classes, &[labels.len()], rows.device()).map_err(msg)?;
        let nll = logits
            .log_softmax()
            .and_then(|lp| lp.ctc_loss(&ids, self.class_of.len()))
            .map_err(msg)?;
        Ok(Some(nll.scale(1.0 / labels.len() as f32).map_err(msg)?))
    }

    /// The mean of [`CtcAlignment::loss`] over the clips of a batch: `speech[i]` is clip `i`'s
    /// wrapped speech (see [`speech_rows`]) and `labels[i]` its transcript ids.
    /// Returns the loss (`None` when no clip qualifies) and how many clips were left out.
    pub fn batch_loss(
        &self,
        model: &OsumModel,
        speech: &[Option<Tensor>],
        labels: &[Option<&[u32]>],
    ) -> Result<(Option<Tensor>, usize), String> {
        let blank = Self::blank(model)?;
        let mut losses = Vec::new();
        let mut skipped = 0;
        for (sp, lab) in speech.iter().zip(labels) {
            let (Some(sp), Some(lab)) = (sp, lab) else {
                continue;
            };
            match self.loss(&blank, &speech_rows(sp)?, lab)? {
                Some(l) => losses.push(l),
                None => skipped += 1,
            }
        }
        Ok((mean_of(&losses)?, skipped))
    }
}

/// The mean of 0-d losses, `None` for none.
pub fn mean_of(losses: &[Tensor]) -> Result<Option<Tensor>, String> {
    let msg = |e: crate::engine::Error| e.to_string();
    let Some((first, rest)) = losses.split_first() else {
        return Ok(None);
    };
    let mut sum = first.clone();
    for l in rest {
        sum = sum.add(l).map_err(msg)?;
    }
    Ok(Some(sum.scale(1.0 / losses.len() as f32).map_err(msg)?))
}
