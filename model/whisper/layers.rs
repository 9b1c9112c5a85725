//! Pieces shared by the encoder and decoder blocks (REFERENCE §3): LayerNorm (eps 1e-5),
//! multi-head attention projections (the key has no bias), the GELU feed-forward.

use super::params::Params;
use super::Result;
use crate::engine::{AttentionParams, Tensor};

/// LayerNorm eps in every Whisper release.
pub const LN_EPS: f32 = 1e-5;

/// A LayerNorm's scale and shift.
pub struct Norm {
    w: Tensor,
    b: Tensor,
}

impl Norm {
    /// Load `{prefix}.weight` / `{prefix}.bias`.
    pub fn load(p: &mut Params, prefix: &str) -> Result<Norm> {
        Ok(Norm {
            w: p.get(&format!("{prefix}.weight"))?,
            b: p.get(&format!("{prefix}.bias"))?,
        })
    }

    /// Normalize over the last dim.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.layer_norm(&self.w, Some(&self.b), LN_EPS)?)
    }
}

/// A `[out, in]` weight with an optional bias.
pub struct Linear {
    w: Tensor,
    b: Option<Tensor>,
}

impl Linear {
    /// Load `{prefix}.weight` and, when `bias`, `{prefix}.bias`.
    pub fn load(p: &mut Params, prefix: &str, bias: bool) -> Result<Linear> {
        let w = p.get(&format!("{prefix}.weight"))?;
        let b = if bias {
            Some(p.get(&format!("{prefix}.bias"))?)
        } else {
            None
        };
        Ok(Linear { w, b })
    }

    /// `x·Wᵀ + b`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.linear(&self.w, self.b.as_ref())?)
    }

    /// `gelu(x·Wᵀ + b)`, fused by the device at inference.
    pub fn forward_gelu(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.linear_gelu(&self.w, self.b.as_ref())?)
    }

    /// The weight (the decoder's tied output projection reads the embedding this way).
    pub fn weight(&self) -> &Tensor {
        &self.w
    }
}

/// Multi-head attention projections: q, k (no bias), v, out.
pub struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
}

/// `[B, T, H·D]` → `[B, H, T, D]` (contiguous, as the attention kernel reads it).
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let s = x.shape();
    let (b, t, d) = (s[0], s[1], s[2]);
    Ok(x.reshape(&[b, t, heads, d / heads])?
        .transpose(1, 2)?
        .contiguous()?)
}

/// `[B, H, T, D]` → `[B, T, H·D]`.
pub fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let s = x.shape();
    let (b, h, t, d) = (s[0], s[1], s[2], s[3]);
    Ok(x.transpose(1, 2)?.contiguous()?.reshape(&[b, t, h * d])?)
}

impl Attention {
    /// Load `{prefix}.{query,key,value,out}` with `heads` heads.
    pub fn load(p: &mut Params, prefix: &str, heads: usize) -> Result<Attention> {
        Ok(Attention {
            q: Linear::load(p, &format!("{prefix}.query"), true)?,
            k: Linear::load(p, &format!("{prefix}.key"), false)?,
            v: Linear::load(p, &format!("{prefix}.value"), true)?,
            out: Linear::load(p, &format!("{prefix}.out"), true)?,
            heads,
        })
    }

    /// Queries `[B, H, T, D]` of `x` `[B, T, d]`.
    pub fn queries(&self, x: &Tensor) -> Result<Tensor> {
        split_heads(&self.q.forward(x)?, self.heads)
    }

    /// Keys and values `[B, H, T, D]` of `x` `[B, T, d]`.
    pub fn keys_values(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            split_heads(&self.k.forward(x)?, self.heads)?,
            split_heads(&self.v.forward(x)?, self.heads)?,
        ))
    }

    /// softmax(q·kᵀ/√D)·v, heads merged, then the output projection → `[B, Tq, d]`.
    /// (Whisper scales q and k by D^-¼ each; one 1/√D on the product is the same.)
    pub fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, causal: bool) -> Result<Tensor> {
        let d = q.shape()[3] as f32;
        let p = AttentionParams {
            scale: 1.0 / d.sqrt(),
            causal,
        };
        let o = q.attention(k, v, None, &p)?;
        self.out.forward(&merge_heads(&o)?)
    }

    /// Self-attention of `x` `[B, T, d]` over itself.
    pub fn self_attend(&self, x: &Tensor, causal: bool) -> Result<Tensor> {
        let q = self.queries(x)?;
        let (k, v) = self.keys_values(x)?;
        self.attend(&q, &k, &v, causal)
    }
}

/// The GELU feed-forward `fc2(GELU(fc1(x)))`.
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    /// Load `{prefix}.0` (fc1) and `{prefix}.2` (fc2).
    pub fn load(p: &mut Params, prefix: &str) -> Result<Mlp> {
        Ok(Mlp {
            fc1: Linear::load(p, &format!("{prefix}.0"), true)?,
            fc2: Linear::load(p, &format!("{prefix}.2"), true)?,
        })
    }

    /// Apply to `x` `[…, d]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward_gelu(x)?)
    }
}
