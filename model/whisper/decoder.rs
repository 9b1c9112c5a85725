//! The Whisper text decoder (REFERENCE §3): token + learned position embeddings, pre-LN blocks
//! of causal self-attention (with a [`KvCache`]), cross-attention over the encoder output and the
//! GELU feed-forward, a final LayerNorm and logits tied to the token embedding.

use super::config::WhisperConfig;
use super::layers::{Attention, Mlp, Norm};
use super::params::Params;
use super::{Result, WhisperError};
use crate::engine::{KvCache, Tensor};

/// Tokens greedy decoding never picks (`always`) and never picks first (`at_begin`), as
/// CTranslate2's `suppress_tokens` / `suppress_blank` (the checkpoint's `config.json`
/// `suppress_ids` / `suppress_ids_begin`). Ids outside the vocabulary are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Suppress {
    /// Never emitted.
    pub always: Vec<u32>,
    /// Not emitted as the first new token.
    pub at_begin: Vec<u32>,
}

/// One pre-LN decoder block.
struct Block {
    attn_ln: Norm,
    attn: Attention,
    cross_ln: Norm,
    cross: Attention,
    mlp_ln: Norm,
    mlp: Mlp,
}

/// The decoder's weights.
pub struct Decoder {
    config: WhisperConfig,
    tok: Tensor,
    pos: Tensor,
    blocks: Vec<Block>,
    ln: Norm,
}

/// Per-utterance decoding state: each block's self-attention cache and the cross-attention
/// keys/values of the encoder output, computed once.
pub struct DecodeState {
    caches: Vec<KvCache>,
    cross: Vec<(Tensor, Tensor)>,
}

impl DecodeState {
    /// Tokens consumed so far.
    pub fn len(&self) -> usize {
        self.caches.first().map_or(0, KvCache::len)
    }

    /// True before the first step.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Decoder {
    /// Load every decoder tensor (names via the session's convention, shapes checked).
    pub fn load(p: &mut Params) -> Result<Decoder> {
        let c = p.config;
        let mut blocks = Vec::with_capacity(c.n_text_layer);
        for n in 0..c.n_text_layer {
            let pre = format!("decoder.blocks.{n}");
            blocks.push(Block {
                attn_ln: Norm::load(p, &format!("{pre}.attn_ln"))?,
                attn: Attention::load(p, &format!("{pre}.attn"), c.n_text_head)?,
                cross_ln: Norm::load(p, &format!("{pre}.cross_attn_ln"))?,
                cross: Attention::load(p, &format!("{pre}.cross_attn"), c.n_text_head)?,
                mlp_ln: Norm::load(p, &format!("{pre}.mlp_ln"))?,
                mlp: Mlp::load(p, &format!("{pre}.mlp"))?,
            });
        }
        Ok(Decoder {
            config: c,
            tok: p.get("decoder.token_embedding.weight")?,
            pos: p.get("decoder.positional_embedding")?,
            blocks,
            ln: Norm::load(p, "decoder.ln")?,
        })
    }

    /// Start decoding over `enc` `[B, Ta, d]`: the cross keys/values of every block and empty
    /// self-attention caches of `n_text_ctx` positions.
    pub fn start(&self, enc: &Tensor) -> Result<DecodeState> {
        let c = &self.config;
        let s = enc.shape();
        if s.len() != 3 || s[2] != c.d_model {
            return Err(WhisperError::Invalid(format!(
                "encoder output has shape {s:?}, expected [batch, frames, {}]",
                c.d_model
            )));
        }
        let mut caches = Vec::with_capacity(self.blocks.len());
        let mut cross = Vec::with_capacity(self.blocks.len());
        for b in &self.blocks {
            let dh = c.text_head_dim();
            caches.push(KvCache::new(
                s[0],
                c.n_text_head,
                c.n_text_ctx,
                dh,
                enc.device(),
            )?);
            cross.push(b.cross.keys_values(enc)?);
        }
        Ok(DecodeState { caches, cross })
    }

    fn check_tokens(&self, tokens: &Tensor, past: usize) -> Result<usize> {
        let s = tokens.shape();
        if s.len() != 2 || s[1] == 0 {
            return Err(WhisperError::Invalid(format!(
                "decoder tokens have shape {s:?}, expected [batch, T > 0]"
            )));
        }
        if past + s[1] > self.config.n_text_ctx {
            return Err(WhisperError::Invalid(format!(
                "{past} + {} tokens exceed the decoder's {} positions",
                s[1], self.config.n_text_ctx
            )));
        }
        Ok(s[1])
    }

    fn embed(&self, tokens: &Tensor, past: usize, t: usize) -> Result<Tensor> {
        let e = self.tok.embedding(tokens)?;
        Ok(e.add(&self.pos.narrow(0, past, t)?)?)
    }

    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        // The output projection is the token embedding, transposed (tied weights).
        Ok(self.ln.forward(x)?.linear(&self.tok, None)?)
    }

    /// Feed `tokens` `[B, T]` (u32 or i64 ids) after the tokens already in `state`; returns
    /// logits `[B, T, n_vocab]`.
    pub fn step(&self, state: &mut DecodeState, tokens: &Tensor) -> Result<Tensor> {
        let past = state.len();
        let t = self.check_tokens(tokens, past)?;
        let mut x = self.embed(tokens, past, t)?;
        for ((b, cache), (ck, cv)) in self.blocks.iter().zip(&mut state.caches).zip(&state.cross) {
            let h = b.attn_ln.forward(&x)?;
            let q = b.attn.queries(&h)?;
            let (k, v) = b.attn.keys_values(&h)?;
            let (k, v) = cache.append(&k, &v)?;
            // Causal masking is aligned to the end of the keys, so new queries see the past.
            x = x.add(&b.attn.attend(&q, &k, &v, true)?)?;
            let h = b.cross_ln.forward(&x)?;
            x = x.add(&b.cross.attend(&b.cross.queries(&h)?, ck, cv, false)?)?;
            x = x.add(&b.mlp.forward(&b.mlp_ln.forward(&x)?)?)?;
        }
        self.logits(&x)
    }

    /// Logits `[B, T, n_vocab]` of a whole token sequence in one causal pass, without a cache
    /// (the reference the cached [`Decoder::step`] must reproduce).
    pub fn forward(&self, enc: &Tensor, tokens: &Tensor) -> Result<Tensor> {
        let t = self.check_tokens(tokens, 0)?;
        let mut x = self.embed(tokens, 0, t)?;
        for b in &self.blocks {
            x = x.add(&b.attn.self_attend(&b.attn_ln.forward(&x)?, true)?)?;
            let h = b.cross_ln.forward(&x)?;
            let (k, v) = b.cross.keys_values(enc)?;
            x = x.add(&b.cross.attend(&b.cross.queries(&h)?, &k, &v, false)?)?;
            x = x.add(&b.mlp.forward(&b.mlp_ln.forward(&x)?)?)?;
        }
        self.logits(&x)
    }

    /// Greedy decoding of batch-1 `enc` from `prompt` until `eot` or `max_tokens` new tokens
    /// (and never past the decoder's context), skipping `suppress`ed tokens; returns the new
    /// tokens without `eot`.
    pub fn greedy(
        &self,
        enc: &Tensor,
        prompt: &[u32],
        eot: u32,
        max_tokens: usize,
        suppress: &Suppress,
    ) -> Result<Vec<u32>> {
        if enc.shape().first() != Some(&1) || prompt.is_empty() {
            return Err(WhisperError::Invalid(
                "greedy decoding needs a batch-1 encoder output and a non-empty prompt".into(),
            ));
        }
        let vocab = self.config.n_vocab;
        if let Some(&bad) = prompt.iter().find(|&&id| id as usize >= vocab) {
            return Err(WhisperError::Invalid(format!(
                "prompt token {bad} is outside the vocabulary of {vocab}"
            )));
        }
        let room = self.config.n_text_ctx.saturating_sub(prompt.len());
        let mut state = self.start(enc)?;
        let mut input = prompt.to_vec();
        let mut out = Vec::new();
        while out.len() < max_tokens.min(room) {
            let ids = Tensor::from_vec(input.clone(), &[1, input.len()], enc.device())?;
            let logits = self.step(&mut state, &ids)?;
            let mut last = logits.narrow(1, input.len() - 1, 1)?.to_vec::<f32>()?;
            let begin = if out.is_empty() {
                &suppress.at_begin[..]
            } else {
                &[]
            };
            for &id in suppress.always.iter().chain(begin) {
                if let Some(v) = last.get_mut(id as usize) {
                    *v = f32::NEG_INFINITY;
                }
            }
            // First maximum, as the engine's argmax.
            let next = last
                .iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 {
                        (i, v)
                    } else {
                        best
                    }
                })
                .0 as u32;
            if next == eot {
                break;
            }
            out.push(next);
            input = vec![next];
        }
        Ok(out)
    }
}
