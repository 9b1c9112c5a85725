//! [`Llm`]: a Llama-family decoder loaded by HF tensor names from any
//! [`TensorSource`], run with or without a KV cache.

use super::cache::LlmCache;
use super::config::LlmConfig;
use super::layers::{Attention, Block, Linear, Mlp, RmsNorm, Rope};
use super::lora::{Lora, LoraTarget};
use super::{LlmError, Result};
use crate::engine::ops::rope::rope_tables;
use crate::engine::{DType, Device, Rng, Tensor};
use crate::model::weights::TensorSource;
use std::sync::Arc;

/// A decoder-only LLM (REFERENCE §5). Weights keep their stored dtype (f32/f16/bf16); biases are
/// f32; activations, RMSNorm and attention run in f32. The weights are constants (frozen):
/// training goes through LoRA adapters ([`Llm::add_lora`]).
#[derive(Debug)]
pub struct Llm {
    /// Sizes and switches.
    pub config: LlmConfig,
    device: Arc<dyn Device>,
    embed_tokens: Tensor,
    /// The decoder blocks.
    pub blocks: Vec<Block>,
    norm: RmsNorm,
    /// `lm_head.weight`; `None` when tied to the embedding.
    lm_head: Option<Linear>,
}

/// Fetches tensors from a source with their shapes checked against the config first.
struct Loader<'a> {
    src: &'a dyn TensorSource,
    device: &'a Arc<dyn Device>,
}

impl Loader<'_> {
    fn get(&self, name: &str, expected: &[usize]) -> Result<Tensor> {
        let found = self
            .src
            .shape(name)
            .map_err(|_| LlmError::MissingTensor(name.to_string()))?;
        if found != expected {
            return Err(LlmError::BadShape {
                name: name.to_string(),
                expected: expected.to_vec(),
                found: found.to_vec(),
            });
        }
        let t = self.src.tensor(name, self.device)?;
        if !t.dtype().is_float() {
            return Err(LlmError::Invalid(format!(
                "tensor `{name}` is {:?}, expected a float type",
                t.dtype()
            )));
        }
        Ok(t)
    }

    fn linear(&self, prefix: &str, out: usize, inp: usize, bias: bool) -> Result<Linear> {
        let w = self.get(&format!("{prefix}.weight"), &[out, inp])?;
        let b = bias
            .then(|| self.get(&format!("{prefix}.bias"), &[out]))
            .transpose()?;
        Linear::new(prefix, w, b)
    }

    fn norm(&self, name: &str, dim: usize, eps: f32) -> Result<RmsNorm> {
        Ok(RmsNorm::new(self.get(name, &[dim])?, eps))
    }
}

impl Llm {
    /// Load every tensor `config` implies under its HF name (`model.embed_tokens.weight`,
    /// `model.layers.N.self_attn.{q,k,v,o}_proj.{weight,bias}`, `model.layers.N.mlp.
    /// {gate,up,down}_proj.weight`, `model.layers.N.{input,post_attention}_layernorm.weight`,
    /// `model.norm.weight`, `lm_head.weight` unless tied), checking each shape before reading
    /// it. Other tensors in the source (e.g. `rotary_emb.inv_freq`) are ignored.
    pub fn load(
        src: &dyn TensorSource,
        config: LlmConfig,
        device: &Arc<dyn Device>,
    ) -> Result<Llm> {
        config.validate("Llm::load")?;
        let c = &config;
        let l = Loader { src, device };
        let (h, q_out, kv_out) = (c.hidden, c.heads * c.head_dim, c.kv_heads * c.head_dim);
        let embed_tokens = l.get("model.embed_tokens.weight", &[c.vocab, h])?;
        let mut blocks = Vec::with_capacity(c.layers);
        for i in 0..c.layers {
            let p = format!("model.layers.{i}");
            let a = format!("{p}.self_attn");
            let m = format!("{p}.mlp");
            blocks.push(Block {
                input_norm: l.norm(&format!("{p}.input_layernorm.weight"), h, c.rms_eps)?,
                attn: Attention::new(
                    l.linear(&format!("{a}.q_proj"), q_out, h, c.qkv_bias)?,
                    l.linear(&format!("{a}.k_proj"), kv_out, h, c.qkv_bias)?,
                    l.linear(&format!("{a}.v_proj"), kv_out, h, c.qkv_bias)?,
                    l.linear(&format!("{a}.o_proj"), h, q_out, c.o_bias)?,
                    c.heads,
                    c.kv_heads,
                    c.head_dim,
                ),
                post_norm: l.norm(
                    &format!("{p}.post_attention_layernorm.weight"),
                    h,
                    c.rms_eps,
                )?,
                mlp: Mlp {
                    gate: l.linear(&format!("{m}.gate_proj"), c.ffn, h, false)?,
                    up: l.linear(&format!("{m}.up_proj"), c.ffn, h, false)?,
                    down: l.linear(&format!("{m}.down_proj"), h, c.ffn, false)?,
                },
            });
        }
        let norm = l.norm("model.norm.weight", h, c.rms_eps)?;
        let lm_head = if c.tied_embeddings {
            None
        } else {
            Some(l.linear("lm_head", c.vocab, h, false)?)
        };
        Ok(Llm {
            config,
            device: device.clone(),
            embed_tokens,
            blocks,
            norm,
            lm_head,
        })
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Arc<dyn Device> {
        &self.device
    }

    /// The token embedding table `[vocab, hidden]` in its stored dtype.
    pub fn embedding_table(&self) -> &Tensor {
        &self.embed_tokens
    }

    /// The root-mean-square of the embedding table's values: the scale of a typical input row,
    /// which speech rows are matched to (the adapter's `output_rms`, stage-I initialisation).
    pub fn embedding_rms(&self) -> Result<f32> {
        let mean_sq = crate::engine::no_grad(|| {
            self.embed_tokens
                .to_dtype(DType::F32)?
                .sqr()?
                .mean_all()?
                .to_scalar_f32()
        })?;
        Ok(mean_sq.sqrt())
    }

    /// Token embeddings `[…ids, hidden]` (f32) of `ids` (u32/i64, any shape); ids outside the
    /// vocabulary are an error. Callers may splice other embeddings (speech) into the result and
    /// pass it to [`Llm::forward_embeds`].
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(self.embed_tokens.embedding(ids)?.to_dtype(DType::F32)?)
    }

    /// [`Llm::embed`] of one sequence given as a slice: `[1, T, hidden]`.
    pub fn embed_ids(&self, ids: &[u32]) -> Result<Tensor> {
        let t = Tensor::from_vec(ids.to_vec(), &[1, ids.len()], &self.device)?;
        self.embed(&t)
    }

    /// Logits `[B, T, vocab]` of every position of `ids` `[B, T]` (u32/i64). Without a cache the
    /// sequence starts at position 0 (training: differentiable through LoRA adapters); with one,
    /// it continues at `cache.len()` and its keys/values are appended (use under `no_grad`).
    pub fn forward(&self, ids: &Tensor, cache: Option<&mut LlmCache>) -> Result<Tensor> {
        self.forward_embeds(&self.embed(ids)?, cache)
    }

    /// [`Llm::forward`] from input embeddings `[B, T, hidden]` (f32).
    pub fn forward_embeds(&self, x: &Tensor, cache: Option<&mut LlmCache>) -> Result<Tensor> {
        self.logits(&self.hidden_states(x, cache)?)
    }

    /// The final-normed hidden states `[B, T, hidden]` of input embeddings `x` (what the LM head
    /// reads); [`Llm::logits`] turns any subset of positions into logits, so generation can
    /// project only the last position.
    pub fn hidden_states(&self, x: &Tensor, mut cache: Option<&mut LlmCache>) -> Result<Tensor> {
        let c = &self.config;
        let [b, t, h] = x.shape() else {
            return Err(LlmError::Invalid(format!(
                "input embeddings must be [B, T, {}], got {:?}",
                c.hidden,
                x.shape()
            )));
        };
        let (b, t) = (*b, *t);
        if *h != c.hidden || t == 0 {
            return Err(LlmError::Invalid(format!(
                "input embeddings must be [B, T>0, {}], got {:?}",
                c.hidden,
                x.shape()
            )));
        }
        let start = match cache.as_deref() {
            Some(cc) => {
                cc.check_room(b, t)?;
                cc.len()
            }
            None => 0,
        };
        let (cos, sin) = rope_tables(t, c.head_dim, c.rope_theta, start, &self.device)?;
        let rope = Rope {
            cos,
            sin,
            style: c.rope_style,
        };
        let mut x = x.clone();
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(&x, &rope, cache.as_deref_mut().map(|cc| (cc, i)))?;
        }
        if let Some(cc) = cache {
            cc.advance(t);
        }
        self.norm.forward(&x)
    }

    /// Project hidden states `[…, hidden]` to logits `[…, vocab]` (the LM head, or the
    /// embedding table when tied).
    pub fn logits(&self, h: &Tensor) -> Result<Tensor> {
        match &self.lm_head {
            Some(head) => head.forward(h),
            None => Ok(h.linear(&self.embed_tokens, None)?),
        }
    }

    /// An empty cache for `batch` sequences of up to `capacity` positions on this model's device.
    pub fn new_cache(&self, batch: usize, capacity: usize) -> Result<LlmCache> {
        LlmCache::new(&self.config, batch, capacity, &self.device)
    }

    /// Attach fresh adapters of rank `r` and scale `alpha/r` to `targets` in the blocks
    /// `layers` (e.g. `0..config.layers`), drawing A from `rng` (B = 0). Returns how many were
    /// attached.
    pub fn add_lora(
        &mut self,
        targets: &[LoraTarget],
        layers: std::ops::Range<usize>,
        r: usize,
        alpha: f32,
        rng: &mut Rng,
    ) -> Result<usize> {
        if layers.end > self.blocks.len() {
            return Err(LlmError::Invalid(format!(
                "LoRA layers {layers:?} exceed the model's {} blocks",
                self.blocks.len()
            )));
        }
        let mut n = 0;
        for block in &mut self.blocks[layers] {
            for (module, lin) in block.linears_mut() {
                if targets.iter().any(|t| t.module() == module) {
                    let lora = Lora::new(
                        lin.out_features(),
                        lin.in_features(),
                        r,
                        alpha,
                        rng,
                        &self.device,
                    )?;
                    lin.attach_lora(lora)?;
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// Every attached adapter's trainable tensors, named as PEFT saves them
    /// (`{linear}.lora_A.weight`, `{linear}.lora_B.weight`), in layer order.
    pub fn lora_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for block in &self.blocks {
            for lin in block.linears() {
                if let Some(l) = lin.lora() {
                    out.push((format!("{}.lora_A.weight", lin.name()), l.a().clone()));
                    out.push((format!("{}.lora_B.weight", lin.name()), l.b().clone()));
                }
            }
        }
        out
    }

    /// Set the dropout of every attached adapter to `p` (REFERENCE §7: 0.1), each with its own
    /// generator seeded from `seed` and its position; active only while gradients are recorded.
    pub fn set_lora_dropout(&mut self, p: f32, seed: u64) -> Result<()> {
        let mut i = 0u64;
        for block in &mut self.blocks {
            for (_, lin) in block.linears_mut() {
                lin.set_lora_dropout(p, seed.wrapping_add(i))?;
                i += 1;
            }
        }
        Ok(())
    }

    /// Fold every adapter into its weight (faster inference); see [`Linear::merge_lora`].
    pub fn merge_lora(&mut self) -> Result<()> {
        for block in &mut self.blocks {
            for (_, lin) in block.linears_mut() {
                lin.merge_lora()?;
            }
        }
        Ok(())
    }

    /// Undo [`Llm::merge_lora`]; see [`Linear::unmerge_lora`].
    pub fn unmerge_lora(&mut self) -> Result<()> {
        for block in &mut self.blocks {
            for (_, lin) in block.linears_mut() {
                lin.unmerge_lora()?;
            }
        }
        Ok(())
    }
}
