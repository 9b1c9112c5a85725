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
//! - Classes: the `V` rows of the LLM's embedding table (frozen) and, as class `V`, the blank,
//!   whose vector is the adapter's otherwise unused speech token 0
//!   ([`crate::model::adapter::Adapter::ctc_blank`]), so it trains with the adapter.
//! - Logits `= s·(row · e_k)` with `s = 30 / (d·rms²)`, `rms` the embedding table's RMS: a row
//!   equal to a typical token embedding scores 30 for it, and unrelated embeddings (dot products
//!   ≈ 0 ± √d·rms²) stay near 0, so a near-certain class is reachable among `V` = 49k classes.
//! - The loss of a clip is its CTC negative log-likelihood divided by its label count (a
//!   per-token figure, like the answer loss); a batch's is the mean over its clips.

use crate::engine::{DType, Tensor};
use crate::model::osum::OsumModel;

/// The logit a row equal to a typical token embedding gives that token (see the module docs).
const MATCH_LOGIT: f32 = 30.0;

/// The CTC classifier of speech rows for one model.
pub struct CtcAlignment {
    scale: f32,
    blank: usize,
}

impl CtcAlignment {
    /// The classifier over `model`'s LLM vocabulary plus the adapter's blank.
    pub fn new(model: &OsumModel) -> Result<CtcAlignment, String> {
        let llm = &model.text.llm;
        let rms = llm.embedding_rms().map_err(|e| e.to_string())?;
        let d = llm.config.hidden as f32;
        if !(rms.is_finite() && rms > 0.0) {
            return Err(format!("the LLM's embedding table has RMS {rms}"));
        }
        Ok(CtcAlignment {
            scale: MATCH_LOGIT / (d * rms * rms),
            blank: llm.config.vocab,
        })
    }

    /// The per-label CTC loss of one clip's speech rows `[n, d]` against its transcript's token
    /// ids, or `None` when the clip has too few rows for its labels (or no labels): such clips
    /// are left out of the CTC term, and the caller counts them.
    pub fn loss(
        &self,
        model: &OsumModel,
        rows: &Tensor,
        labels: &[u32],
    ) -> Result<Option<Tensor>, String> {
        let msg = |e: crate::engine::Error| e.to_string();
        let n = rows.shape().first().copied().unwrap_or(0);
        if labels.is_empty() || n < crate::engine::ops::loss::ctc_min_frames(labels) {
            return Ok(None);
        }
        let llm = &model.text.llm;
        let scaled = rows.scale(self.scale).map_err(msg)?;
        let text = scaled.linear(llm.embedding_table(), None).map_err(msg)?;
        let blank = model
            .adapter
            .ctc_blank()
            .and_then(|b| Ok(b.to_dtype(DType::F32)?.unsqueeze(0)?))
            .map_err(|e| e.to_string())?;
        let blank = scaled.linear(&blank, None).map_err(msg)?;
        let logits = Tensor::cat(&[text, blank], 1).map_err(msg)?;
        let ids = Tensor::from_vec(labels.to_vec(), &[labels.len()], rows.device()).map_err(msg)?;
        let nll = logits
            .log_softmax()
            .and_then(|lp| lp.ctc_loss(&ids, self.blank))
            .map_err(msg)?;
        Ok(Some(nll.scale(1.0 / labels.len() as f32).map_err(msg)?))
    }

    /// The mean of [`CtcAlignment::loss`] over the clips of a batch: `speech[i]` is clip `i`'s
    /// wrapped speech `[1, n + 2, d]` (BOS and EOS around the rows, as
    /// [`OsumModel::speech_from_feature_batch`] returns it) and `labels[i]` its transcript ids.
    /// Returns the loss (`None` when no clip qualifies) and how many clips were left out.
    pub fn batch_loss(
        &self,
        model: &OsumModel,
        speech: &[Option<Tensor>],
        labels: &[Option<&[u32]>],
    ) -> Result<(Option<Tensor>, usize), String> {
        let msg = |e: crate::engine::Error| e.to_string();
        let mut losses = Vec::new();
        let mut skipped = 0;
        for (sp, lab) in speech.iter().zip(labels) {
            let (Some(sp), Some(lab)) = (sp, lab) else {
                continue;
            };
            let (n, d) = match sp.shape() {
                [1, n, d] if *n >= 2 => (n - 2, *d),
                s => return Err(format!("wrapped speech must be [1, n + 2, d], got {s:?}")),
            };
            let rows = sp
                .narrow(1, 1, n)
                .and_then(|r| r.reshape(&[n, d]))
                .map_err(msg)?;
            match self.loss(model, &rows, lab)? {
                Some(l) => losses.push(l),
                None => skipped += 1,
            }
        }
        let Some(first) = losses.first().cloned() else {
            return Ok((None, skipped));
        };
        let count = losses.len();
        let mut sum = first;
        for l in &losses[1..] {
            sum = sum.add(l).map_err(msg)?;
        }
        Ok((Some(sum.scale(1.0 / count as f32).map_err(msg)?), skipped))
    }
}
