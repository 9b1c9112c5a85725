//! The pieces of a Llama block (REFERENCE §5): [`Linear`] (every projection, each able to carry
//! a LoRA), [`RmsNorm`], grouped-query [`Attention`] with RoPE, the SwiGLU [`Mlp`], and the
//! pre-norm [`Block`] that chains them.

use super::cache::LlmCache;
use super::lora::Lora;
use super::{LlmError, Result};
use crate::engine::{no_grad, AttentionParams, DType, RopeStyle, Tensor};

/// A projection `x·Wᵀ + b` with `W` `[out, in]` in its stored dtype (f32/f16/bf16: the
/// engine's matmul reads half weights directly, so a 7B model stays in 2 bytes a weight) and an
/// f32 bias. With a LoRA attached (and not merged) it computes `x·Wᵀ + b + (α/r)·(x·Aᵀ)·Bᵀ`
/// through the engine's `lora_linear`, which never forms `B·A`.
#[derive(Debug)]
pub struct Linear {
    name: String,
    w: Tensor,
    b: Option<Tensor>,
    lora: Option<Lora>,
    merged: bool,
}

impl Linear {
    /// A projection named `name` (the HF prefix, e.g. `model.layers.0.self_attn.q_proj`, used in
    /// error messages and LoRA parameter names). The bias is converted to f32, since the
    /// engine adds only equal dtypes and activations are f32.
    pub fn new(name: impl Into<String>, w: Tensor, b: Option<Tensor>) -> Result<Linear> {
        let name = name.into();
        if w.rank() != 2 {
            return Err(LlmError::Invalid(format!(
                "{name}: weight must be [out, in], got {:?}",
                w.shape()
            )));
        }
        let b = b.map(|b| b.to_dtype(DType::F32)).transpose()?;
        Ok(Linear {
            name,
            w,
            b,
            lora: None,
            merged: false,
        })
    }

    /// The HF prefix of this projection.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The weight `[out, in]` (merged with the LoRA while [`Linear::is_merged`]).
    pub fn weight(&self) -> &Tensor {
        &self.w
    }

    /// The bias `[out]` (f32), if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.b.as_ref()
    }

    /// Input width.
    pub fn in_features(&self) -> usize {
        self.w.shape()[1]
    }

    /// Output width.
    pub fn out_features(&self) -> usize {
        self.w.shape()[0]
    }

    /// The attached LoRA, if any.
    pub fn lora(&self) -> Option<&Lora> {
        self.lora.as_ref()
    }

    /// True while the LoRA's update is folded into the weight.
    pub fn is_merged(&self) -> bool {
        self.merged
    }

    /// Attach `lora` (replacing any previous one, which must not be merged). Its A must be
    /// `[r, in]` and B `[out, r]` for this projection.
    pub fn attach_lora(&mut self, lora: Lora) -> Result<()> {
        if self.merged {
            return Err(LlmError::Invalid(format!(
                "{}: unmerge the current LoRA before attaching another",
                self.name
            )));
        }
        lora.check_fits(&self.name, self.out_features(), self.in_features())?;
        self.lora = Some(lora);
        Ok(())
    }

    /// Remove and return the LoRA (the weight is unmerged first if needed).
    pub fn detach_lora(&mut self) -> Result<Option<Lora>> {
        self.unmerge_lora()?;
        Ok(self.lora.take())
    }

    /// Fold the LoRA into the weight, `W ← W + (α/r)·B·A` (REFERENCE §7), so inference runs a
    /// plain linear. No-op without a LoRA or when already merged. The sum is formed in f32 and
    /// rounded once to the weight's dtype.
    pub fn merge_lora(&mut self) -> Result<()> {
        if self.merged {
            return Ok(());
        }
        let Some(l) = &self.lora else { return Ok(()) };
        self.w = no_grad(|| add_delta(&self.w, l, 1.0))?;
        self.merged = true;
        Ok(())
    }

    /// Undo [`Linear::merge_lora`]: `W ← W − (α/r)·B·A`. Exact for f32 weights; for f16/bf16
    /// weights the two roundings may leave the original off by one unit in the last place.
    pub fn unmerge_lora(&mut self) -> Result<()> {
        if !self.merged {
            return Ok(());
        }
        if let Some(l) = &self.lora {
            self.w = no_grad(|| add_delta(&self.w, l, -1.0))?;
        }
        self.merged = false;
        Ok(())
    }

    /// `x·Wᵀ + b`, plus the LoRA path when one is attached and not merged. `x` is f32 `[…, in]`.
    /// With LoRA dropout active (training), the adapter reads a dropped-out copy of `x`, so the
    /// fused `lora_linear` (one input for both paths) gives way to two products.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let l = match (&self.lora, self.merged) {
            (Some(l), false) => l,
            _ => return Ok(x.linear(&self.w, self.b.as_ref())?),
        };
        match l.dropout_mask(x)? {
            None => Ok(x.lora_linear(&self.w, self.b.as_ref(), l.a(), l.b(), l.scale())?),
            Some(mask) => {
                let base = x.linear(&self.w, self.b.as_ref())?;
                // α/r scales the rank-r activations, the narrowest tensor on the path.
                let h = x.mul(&mask)?.linear(l.a(), None)?.scale(l.scale())?;
                Ok(base.add(&h.linear(l.b(), None)?)?)
            }
        }
    }

    /// Set the dropout of the attached LoRA (see [`Lora::with_dropout`]); no-op without one.
    pub fn set_lora_dropout(&mut self, p: f32, seed: u64) -> Result<()> {
        if let Some(l) = self.lora.take() {
            self.lora = Some(l.with_dropout(p, seed)?);
        }
        Ok(())
    }
}

/// `W + sign·(α/r)·B·A` in `W`'s dtype, computed in f32.
fn add_delta(w: &Tensor, l: &Lora, sign: f32) -> Result<Tensor> {
    let a = l.a().to_dtype(DType::F32)?;
    let b = l.b().to_dtype(DType::F32)?;
    let delta = b.matmul(&a)?.scale(sign * l.scale())?;
    Ok(w.to_dtype(DType::F32)?.add(&delta)?.to_dtype(w.dtype())?)
}

/// RMSNorm `x·rsqrt(mean(x²)+eps)·w`, computed in f32 whatever the weight's dtype.
#[derive(Debug)]
pub struct RmsNorm {
    w: Tensor,
    eps: f32,
}

impl RmsNorm {
    /// A norm with weight `[D]` (any float dtype) and `eps`.
    pub fn new(w: Tensor, eps: f32) -> RmsNorm {
        RmsNorm { w, eps }
    }

    /// Normalize `x` `[…, D]` (f32) over its last dimension.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.rms_norm(&self.w, self.eps)?)
    }
}

/// The cos/sin tables for the positions of one forward pass, shared by every layer.
#[derive(Debug)]
pub struct Rope {
    /// `[T, head_dim/2]`.
    pub cos: Tensor,
    /// `[T, head_dim/2]`.
    pub sin: Tensor,
    /// Which channels are paired.
    pub style: RopeStyle,
}

/// Grouped-query self-attention: `heads` query heads share `kv_heads` key/value heads.
#[derive(Debug)]
pub struct Attention {
    /// Query projection `[heads·head_dim, hidden]`.
    pub q: Linear,
    /// Key projection `[kv_heads·head_dim, hidden]`.
    pub k: Linear,
    /// Value projection `[kv_heads·head_dim, hidden]`.
    pub v: Linear,
    /// Output projection `[hidden, heads·head_dim]`.
    pub o: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

/// `[B, T, H·D]` → `[B, H, T, D]`, contiguous (as the RoPE and attention kernels read it).
fn split_heads(x: &Tensor, heads: usize, head_dim: usize) -> Result<Tensor> {
    let (b, t) = (x.shape()[0], x.shape()[1]);
    Ok(x.reshape(&[b, t, heads, head_dim])?
        .transpose(1, 2)?
        .contiguous()?)
}

/// `[B, H, T, D]` → `[B, T, H·D]`.
fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let s = x.shape();
    let (b, h, t, d) = (s[0], s[1], s[2], s[3]);
    Ok(x.transpose(1, 2)?.contiguous()?.reshape(&[b, t, h * d])?)
}

impl Attention {
    /// Assemble from its projections.
    pub fn new(
        q: Linear,
        k: Linear,
        v: Linear,
        o: Linear,
        heads: usize,
        kv_heads: usize,
        head_dim: usize,
    ) -> Attention {
        Attention {
            q,
            k,
            v,
            o,
            heads,
            kv_heads,
            head_dim,
        }
    }

    /// Causal self-attention of `x` `[B, T, hidden]` at the positions `rope` was built for.
    /// With a cache, the new keys/values are written at the cache's current length for layer
    /// `layer` and the queries attend to every cached position (causal masking is aligned to
    /// the end of the keys, so new query `i` sees the past and new keys `≤ i`).
    pub fn forward(
        &self,
        x: &Tensor,
        rope: &Rope,
        cache: Option<(&mut LlmCache, usize)>,
    ) -> Result<Tensor> {
        let q = split_heads(&self.q.forward(x)?, self.heads, self.head_dim)?;
        let k = split_heads(&self.k.forward(x)?, self.kv_heads, self.head_dim)?;
        let v = split_heads(&self.v.forward(x)?, self.kv_heads, self.head_dim)?;
        let q = q.rope(&rope.cos, &rope.sin, rope.style)?;
        let k = k.rope(&rope.cos, &rope.sin, rope.style)?;
        let (k, v) = match cache {
            Some((c, layer)) => c.write(layer, &k, &v)?,
            None => (k, v),
        };
        let p = AttentionParams {
            scale: 1.0 / (self.head_dim as f32).sqrt(),
            causal: true,
        };
        let a = q.attention(&k, &v, None, &p)?;
        self.o.forward(&merge_heads(&a)?)
    }
}

/// The SwiGLU feed-forward `down(silu(gate(x)) · up(x))`.
#[derive(Debug)]
pub struct Mlp {
    /// `[ffn, hidden]`.
    pub gate: Linear,
    /// `[ffn, hidden]`.
    pub up: Linear,
    /// `[hidden, ffn]`.
    pub down: Linear,
}

impl Mlp {
    /// Apply to `x` `[…, hidden]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let g = self.gate.forward(x)?.silu()?;
        self.down.forward(&g.mul(&self.up.forward(x)?)?)
    }
}

/// One pre-norm decoder block: `h = x + attn(norm₁(x))`, `out = h + mlp(norm₂(h))`.
#[derive(Debug)]
pub struct Block {
    /// `input_layernorm`.
    pub input_norm: RmsNorm,
    /// `self_attn`.
    pub attn: Attention,
    /// `post_attention_layernorm`.
    pub post_norm: RmsNorm,
    /// `mlp`.
    pub mlp: Mlp,
}

impl Block {
    /// Apply to `x` `[B, T, hidden]`; `cache` as in [`Attention::forward`].
    pub fn forward(
        &self,
        x: &Tensor,
        rope: &Rope,
        cache: Option<(&mut LlmCache, usize)>,
    ) -> Result<Tensor> {
        let h = x.add(
            &self
                .attn
                .forward(&self.input_norm.forward(x)?, rope, cache)?,
        )?;
        Ok(h.add(&self.mlp.forward(&self.post_norm.forward(&h)?)?)?)
    }

    /// The seven projections with their LoRA target names.
    pub fn linears_mut(&mut self) -> [(&'static str, &mut Linear); 7] {
        [
            ("q_proj", &mut self.attn.q),
            ("k_proj", &mut self.attn.k),
            ("v_proj", &mut self.attn.v),
            ("o_proj", &mut self.attn.o),
            ("gate_proj", &mut self.mlp.gate),
            ("up_proj", &mut self.mlp.up),
            ("down_proj", &mut self.mlp.down),
        ]
    }

    /// The seven projections, read-only.
    pub fn linears(&self) -> [&Linear; 7] {
        [
            &self.attn.q,
            &self.attn.k,
            &self.attn.v,
            &self.attn.o,
            &self.mlp.gate,
            &self.mlp.up,
            &self.mlp.down,
        ]
    }
}
