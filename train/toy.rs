//! The engine's end-to-end toy training run: a small Llama-style transformer (token + learned position
//! embeddings, RMSNorm, rotary attention with grouped KV heads, SwiGLU, untied LM head) trained
//! from scratch with AdamW to reverse a digit sequence: `x₁…x_L <sep> x_L…x₁`.
//! Only the answer half is scored (the prompt positions use the ignore index), so the loss
//! measures exactly the reversal. Used by `osum toy` and by the conformance training tests.

use crate::engine::ops::rope::rope_tables;
use crate::engine::{no_grad, AttentionParams, DType, Device, Result, Rng, RopeStyle, Tensor};
use crate::train::optim::{clip_factor, AdamW, AdamWConfig, WarmupCosine};
use std::sync::Arc;

/// Targets at prompt positions carry this value and are not scored.
pub const IGNORE: i64 = -100;

/// Shape of the toy model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TinyConfig {
    /// Digits 0..digits-1 plus one separator token.
    pub digits: usize,
    /// Length of the sequence to reverse.
    pub seq_len: usize,
    /// Residual width.
    pub d_model: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (GQA when fewer than `heads`).
    pub kv_heads: usize,
    /// SwiGLU hidden width.
    pub ffn: usize,
}

impl Default for TinyConfig {
    fn default() -> Self {
        TinyConfig {
            digits: 10,
            seq_len: 6,
            d_model: 64,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            ffn: 128,
        }
    }
}

impl TinyConfig {
    fn vocab(&self) -> usize {
        self.digits + 1
    }
    fn sep(&self) -> u32 {
        self.digits as u32
    }
    fn head_dim(&self) -> usize {
        self.d_model / self.heads
    }
    /// Model input length: prompt, separator, all answer tokens but the last.
    fn context(&self) -> usize {
        2 * self.seq_len
    }
}

struct Block {
    attn_norm: Tensor,
    wq: Tensor,
    wk: Tensor,
    wv: Tensor,
    wo: Tensor,
    ffn_norm: Tensor,
    w_gate: Tensor,
    w_up: Tensor,
    w_down: Tensor,
}

/// The toy transformer; every weight is a trainable leaf.
pub struct TinyTransformer {
    cfg: TinyConfig,
    tok_emb: Tensor,
    pos_emb: Tensor,
    blocks: Vec<Block>,
    final_norm: Tensor,
    lm_head: Tensor,
    cos: Tensor,
    sin: Tensor,
}

impl TinyTransformer {
    /// Random initialisation (normal, std 0.02; output projections scaled by 1/√(2·layers)).
    pub fn new(cfg: TinyConfig, rng: &mut Rng, dev: &Arc<dyn Device>) -> Result<Self> {
        let (d, hd) = (cfg.d_model, cfg.head_dim());
        let mut w = |shape: &[usize], std: f32| -> Result<Tensor> {
            Ok(Tensor::randn(shape, 0.0, std, rng, dev)?.variable())
        };
        let out_std = 0.02 / (2.0 * cfg.layers as f32).sqrt();
        let mut blocks = Vec::with_capacity(cfg.layers);
        for _ in 0..cfg.layers {
            blocks.push(Block {
                attn_norm: Tensor::ones(&[d], DType::F32, dev)?.variable(),
                wq: w(&[cfg.heads * hd, d], 0.02)?,
                wk: w(&[cfg.kv_heads * hd, d], 0.02)?,
                wv: w(&[cfg.kv_heads * hd, d], 0.02)?,
                wo: w(&[d, cfg.heads * hd], out_std)?,
                ffn_norm: Tensor::ones(&[d], DType::F32, dev)?.variable(),
                w_gate: w(&[cfg.ffn, d], 0.02)?,
                w_up: w(&[cfg.ffn, d], 0.02)?,
                w_down: w(&[d, cfg.ffn], out_std)?,
            });
        }
        let (cos, sin) = rope_tables(cfg.context(), hd, 10_000.0, 0, dev)?;
        Ok(TinyTransformer {
            tok_emb: w(&[cfg.vocab(), d], 0.02)?,
            pos_emb: w(&[cfg.context(), d], 0.02)?,
            blocks,
            final_norm: Tensor::ones(&[d], DType::F32, dev)?.variable(),
            lm_head: w(&[cfg.vocab(), d], 0.02)?,
            cos,
            sin,
            cfg,
        })
    }

    /// Every trainable tensor.
    pub fn params(&self) -> Vec<Tensor> {
        let mut p = vec![
            self.tok_emb.clone(),
            self.pos_emb.clone(),
            self.final_norm.clone(),
            self.lm_head.clone(),
        ];
        for b in &self.blocks {
            p.extend(
                [
                    &b.attn_norm,
                    &b.wq,
                    &b.wk,
                    &b.wv,
                    &b.wo,
                    &b.ffn_norm,
                    &b.w_gate,
                    &b.w_up,
                    &b.w_down,
                ]
                .map(Tensor::clone),
            );
        }
        p
    }

    /// Logits `[B, T, vocab]` for token ids `[B, T]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (b, t) = (ids.dim(0)?, ids.dim(1)?);
        let (hd, eps) = (cfg.head_dim(), 1e-5);
        let mut x = self
            .tok_emb
            .embedding(ids)?
            .add(&self.pos_emb.narrow(0, 0, t)?)?;
        let (cos, sin) = (self.cos.narrow(0, 0, t)?, self.sin.narrow(0, 0, t)?);
        let attn = AttentionParams {
            scale: 1.0 / (hd as f32).sqrt(),
            causal: true,
        };
        for blk in &self.blocks {
            let h = x.rms_norm(&blk.attn_norm, eps)?;
            // [B, T, H·hd] → [B, H, T, hd]: a strided view, no copy.
            let heads = |w: &Tensor, n: usize| -> Result<Tensor> {
                h.linear(w, None)?.reshape(&[b, t, n, hd])?.transpose(1, 2)
            };
            let q = heads(&blk.wq, cfg.heads)?.rope(&cos, &sin, RopeStyle::RotateHalf)?;
            let k = heads(&blk.wk, cfg.kv_heads)?.rope(&cos, &sin, RopeStyle::RotateHalf)?;
            let v = heads(&blk.wv, cfg.kv_heads)?;
            let a = q.attention(&k, &v, None, &attn)?;
            let a = a.transpose(1, 2)?.reshape(&[b, t, cfg.heads * hd])?;
            x = x.add(&a.linear(&blk.wo, None)?)?;
            let h = x.rms_norm(&blk.ffn_norm, eps)?;
            let gated = h
                .linear(&blk.w_gate, None)?
                .silu()?
                .mul(&h.linear(&blk.w_up, None)?)?;
            x = x.add(&gated.linear(&blk.w_down, None)?)?;
        }
        x.rms_norm(&self.final_norm, eps)?
            .linear(&self.lm_head, None)
    }
}

/// A batch of reversal problems: inputs `[B, 2L]` (u32) and targets `[B, 2L]` (i64, prompt
/// positions = [`IGNORE`]).
pub fn reversal_batch(
    cfg: &TinyConfig,
    batch: usize,
    rng: &mut Rng,
    dev: &Arc<dyn Device>,
) -> Result<(Tensor, Tensor)> {
    let l = cfg.seq_len;
    let mut inputs = Vec::with_capacity(batch * 2 * l);
    let mut targets = Vec::with_capacity(batch * 2 * l);
    for _ in 0..batch {
        let xs: Vec<u32> = (0..l)
            .map(|_| rng.below(cfg.digits as u64) as u32)
            .collect();
        let mut seq = xs.clone();
        seq.push(cfg.sep());
        seq.extend(xs.iter().rev());
        inputs.extend_from_slice(&seq[..2 * l]);
        // Position p predicts seq[p+1]; only the answer (p ≥ L) is scored.
        targets.extend((0..2 * l).map(|p| if p < l { IGNORE } else { seq[p + 1] as i64 }));
    }
    Ok((
        Tensor::from_vec(inputs, &[batch, 2 * l], dev)?,
        Tensor::from_vec(targets, &[batch, 2 * l], dev)?,
    ))
}

/// Options for [`train_reversal`].
#[derive(Debug, Clone, Copy)]
pub struct TrainOptions {
    /// Optimizer steps.
    pub steps: u64,
    /// Sequences per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f32,
    /// Seed for initialisation and data.
    pub seed: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            steps: 600,
            batch: 32,
            lr: 3e-3,
            seed: 1,
        }
    }
}

/// One logged point of a training run.
#[derive(Debug, Clone, Copy)]
pub struct StepLog {
    /// 1-based step.
    pub step: u64,
    /// Mean cross-entropy over answer tokens.
    pub loss: f32,
    /// Learning rate used.
    pub lr: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
}

/// Outcome of a run.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// Every step's loss.
    pub log: Vec<StepLog>,
    /// Fraction of answer tokens predicted exactly (teacher-forced argmax) on fresh data.
    pub eval_accuracy: f32,
}

/// Train the toy model; `on_step` sees every step (for progress output).
pub fn train_reversal(
    cfg: TinyConfig,
    opts: TrainOptions,
    dev: &Arc<dyn Device>,
    mut on_step: impl FnMut(&StepLog),
) -> Result<TrainReport> {
    let mut rng = Rng::new(opts.seed);
    let model = TinyTransformer::new(cfg, &mut rng, dev)?;
    let params = model.params();
    let mut opt = AdamW::new(AdamWConfig::default());
    let sched = WarmupCosine {
        peak: opts.lr,
        floor: opts.lr * 0.1,
        warmup: (opts.steps / 10).max(1),
        total: opts.steps,
    };
    let mut log = Vec::with_capacity(opts.steps as usize);
    for step in 1..=opts.steps {
        let (x, y) = reversal_batch(&cfg, opts.batch, &mut rng, dev)?;
        let loss = model.forward(&x)?.cross_entropy(&y, IGNORE)?;
        let grads = loss.backward()?;
        let (scale, grad_norm) = clip_factor(&params, &grads, 1.0)?;
        let lr = sched.lr(step);
        opt.step(&params, &grads, lr, scale)?;
        let entry = StepLog {
            step,
            loss: loss.to_scalar_f32()?,
            lr,
            grad_norm,
        };
        on_step(&entry);
        log.push(entry);
    }
    let eval_accuracy = no_grad(|| evaluate(&model, &cfg, &mut Rng::new(opts.seed ^ 0xE7A1), dev))?;
    Ok(TrainReport { log, eval_accuracy })
}

fn evaluate(
    model: &TinyTransformer,
    cfg: &TinyConfig,
    rng: &mut Rng,
    dev: &Arc<dyn Device>,
) -> Result<f32> {
    let (x, y) = reversal_batch(cfg, 256, rng, dev)?;
    let pred = model.forward(&x)?.argmax(-1)?.to_vec::<u32>()?;
    let want = y.to_vec::<i64>()?;
    let (mut hit, mut total) = (0usize, 0usize);
    for (p, w) in pred.iter().zip(&want) {
        if *w != IGNORE {
            total += 1;
            hit += (*p as i64 == *w) as usize;
        }
    }
    Ok(hit as f32 / total.max(1) as f32)
}
