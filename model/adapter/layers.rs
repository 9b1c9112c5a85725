//! The adapter's building blocks over `[B, T, C]` activations: Linear, LayerNorm, WeNet's
//! multi-head self-attention (biases on q, k, v and out) with a padding mask, the ReLU
//! feed-forward, and the masks built from per-item lengths.

use super::params::Take;
use super::Result;
use crate::engine::{AttentionParams, Device, Tensor};
use std::sync::Arc;

/// `x·Wᵀ + b` with W `[out, in]`.
pub struct Linear {
    w: Tensor,
    b: Tensor,
}

impl Linear {
    /// `{prefix}.weight` and `{prefix}.bias`.
    pub(crate) fn take(p: &mut Take, prefix: &str) -> Result<Linear> {
        Ok(Linear {
            w: p.get(&format!("{prefix}.weight"))?,
            b: p.get(&format!("{prefix}.bias"))?,
        })
    }

    /// Apply to `x` `[…, in]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.linear(&self.w, Some(&self.b))?)
    }
}

/// LayerNorm over the last dimension.
pub struct Norm {
    w: Tensor,
    b: Tensor,
    eps: f32,
}

impl Norm {
    /// `{prefix}.weight` and `{prefix}.bias`.
    pub(crate) fn take(p: &mut Take, prefix: &str, eps: f32) -> Result<Norm> {
        Ok(Norm {
            w: p.get(&format!("{prefix}.weight"))?,
            b: p.get(&format!("{prefix}.bias"))?,
            eps,
        })
    }

    /// Normalize `x` `[…, d]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.layer_norm(&self.w, Some(&self.b), self.eps)?)
    }
}

/// WeNet `MultiHeadedAttention` as self-attention: `softmax(q·kᵀ/√d_k + mask)·v`, heads
/// merged, then `linear_out`.
pub struct SelfAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
}

impl SelfAttention {
    /// `{prefix}.linear_{q,k,v,out}` with `heads` heads.
    pub(crate) fn take(p: &mut Take, prefix: &str, heads: usize) -> Result<SelfAttention> {
        let mut lin = |n: &str| Linear::take(p, &format!("{prefix}.linear_{n}"));
        Ok(SelfAttention {
            q: lin("q")?,
            k: lin("k")?,
            v: lin("v")?,
            out: lin("out")?,
            heads,
        })
    }

    /// Attend `x` `[B, T, d]` over itself; `mask` is an additive `[B, 1, 1, T]` key mask
    /// (see [`key_mask`]) or `None` when no item is padded.
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let q = split_heads(&self.q.forward(x)?, self.heads)?;
        let k = split_heads(&self.k.forward(x)?, self.heads)?;
        let v = split_heads(&self.v.forward(x)?, self.heads)?;
        let d_k = q.shape()[3] as f32;
        let p = AttentionParams {
            scale: 1.0 / d_k.sqrt(),
            causal: false,
        };
        // A query row that sees no key (an item of length 0) comes out as zeros, as WeNet's
        // `masked_fill(mask, 0.0)` after the softmax makes it.
        let o = q.attention(&k, &v, mask, &p)?;
        self.out.forward(&merge_heads(&o)?)
    }
}

/// `[B, T, H·D]` → `[B, H, T, D]` (contiguous, as the attention kernel reads it). The same
/// reshaping as Whisper's, kept here so the adapter's errors stay [`super::AdapterError`]s.
fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let s = x.shape();
    let (b, t, d) = (s[0], s[1], s[2]);
    Ok(x.reshape(&[b, t, heads, d / heads])?
        .transpose(1, 2)?
        .contiguous()?)
}

/// `[B, H, T, D]` → `[B, T, H·D]`.
fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let s = x.shape();
    let (b, h, t, d) = (s[0], s[1], s[2], s[3]);
    Ok(x.transpose(1, 2)?.contiguous()?.reshape(&[b, t, h * d])?)
}

/// WeNet `PositionwiseFeedForward` with ReLU: `w_2(relu(w_1(x)))`.
pub struct FeedForward {
    w1: Linear,
    w2: Linear,
}

impl FeedForward {
    /// `{prefix}.w_1` and `{prefix}.w_2`.
    pub(crate) fn take(p: &mut Take, prefix: &str) -> Result<FeedForward> {
        Ok(FeedForward {
            w1: Linear::take(p, &format!("{prefix}.w_1"))?,
            w2: Linear::take(p, &format!("{prefix}.w_2"))?,
        })
    }

    /// Apply to `x` `[…, d]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.w2.forward(&self.w1.forward(x)?.relu()?)
    }
}

/// True when some item is shorter than the padded length `t`.
pub fn is_padded(lengths: &[usize], t: usize) -> bool {
    lengths.iter().any(|&l| l < t)
}

/// Additive key mask `[B, 1, 1, t]`: 0 for the first `lengths[b]` keys of item `b`, −∞ after
/// (WeNet's `masked_fill(~mask, −inf)`), broadcast over heads and queries.
pub fn key_mask(lengths: &[usize], t: usize, device: &Arc<dyn Device>) -> Result<Tensor> {
    let data = lengths
        .iter()
        .flat_map(|&l| (0..t).map(move |j| if j < l { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    Ok(Tensor::from_vec::<f32>(
        data,
        &[lengths.len(), 1, 1, t],
        device,
    )?)
}

/// Multiplicative row mask `[B, t, 1]`: 1 on valid positions, 0 on padding.
pub fn row_mask(lengths: &[usize], t: usize, device: &Arc<dyn Device>) -> Result<Tensor> {
    let data = lengths
        .iter()
        .flat_map(|&l| (0..t).map(move |j| if j < l { 1.0 } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec::<f32>(
        data,
        &[lengths.len(), t, 1],
        device,
    )?)
}
