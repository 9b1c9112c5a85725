//! The speech transformer after its embed layer (WeNet `TransformerEncoder`, "abs_pos",
//! `normalize_before=True`): `x·√d + pe`, then pre-LN blocks
//! `x += attn(norm1(x))`, `x += ffn(norm2(x))`, then `after_norm`. Dropout is absent
//! (inference semantics; the released model uses it only in training).

use super::layers::{FeedForward, Norm, SelfAttention};
use super::params::Take;
use super::positions::PositionTable;
use super::Result;
use crate::engine::Tensor;

/// One pre-LN encoder block.
pub struct Block {
    norm1: Norm,
    attn: SelfAttention,
    norm2: Norm,
    ff: FeedForward,
}

impl Block {
    /// `speech_transformer.encoders.{i}.*`.
    pub(crate) fn take(p: &mut Take, i: usize, heads: usize, eps: f32) -> Result<Block> {
        let pre = format!("speech_transformer.encoders.{i}");
        Ok(Block {
            norm1: Norm::take(p, &format!("{pre}.norm1"), eps)?,
            attn: SelfAttention::take(p, &format!("{pre}.self_attn"), heads)?,
            norm2: Norm::take(p, &format!("{pre}.norm2"), eps)?,
            ff: FeedForward::take(p, &format!("{pre}.feed_forward"))?,
        })
    }

    /// Apply to `x` `[B, T, d]` with the key mask of [`super::layers::key_mask`].
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let h = x.add(&self.attn.forward(&self.norm1.forward(x)?, mask)?)?;
        Ok(h.add(&self.ff.forward(&self.norm2.forward(&h)?)?)?)
    }
}

/// Positions, blocks and final norm of `speech_transformer`.
pub struct SpeechTransformer {
    positions: PositionTable,
    blocks: Vec<Block>,
    after_norm: Norm,
    dim: usize,
}

impl SpeechTransformer {
    /// Blocks `0..layers` and `after_norm`; `positions` from the checkpoint or computed.
    pub(crate) fn take(
        p: &mut Take,
        layers: usize,
        heads: usize,
        eps: f32,
        dim: usize,
        positions: PositionTable,
    ) -> Result<SpeechTransformer> {
        let blocks = (0..layers)
            .map(|i| Block::take(p, i, heads, eps))
            .collect::<Result<Vec<_>>>()?;
        Ok(SpeechTransformer {
            positions,
            blocks,
            after_norm: Norm::take(p, "speech_transformer.after_norm", eps)?,
            dim,
        })
    }

    /// `x` `[B, T, d]` (the embed layer's output) → `[B, T, d]`.
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let t = x.shape()[1];
        let pe = self.positions.rows(t, x.device())?;
        let mut h = x.scale((self.dim as f32).sqrt())?.add(&pe)?;
        for b in &self.blocks {
            h = b.forward(&h, mask)?;
        }
        self.after_norm.forward(&h)
    }
}
