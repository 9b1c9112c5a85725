//! LoRA adapters (Hu et al. 2021; REFERENCE §7): a projection `W` `[out, in]` gains the
//! trainable update `(α/r)·B·A` with A `[r, in]` and B `[out, r]`. B starts at zero, so a fresh
//! adapter leaves the model unchanged; A starts like PEFT's (Kaiming-uniform with a = √5, i.e.
//! U(−1/√in, 1/√in)).

use super::{LlmError, Result};
use crate::engine::{Device, Rng, Tensor};
use std::sync::Arc;

/// Which projection of a block an adapter goes on (HF module names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoraTarget {
    /// `self_attn.q_proj`.
    Q,
    /// `self_attn.k_proj`.
    K,
    /// `self_attn.v_proj`.
    V,
    /// `self_attn.o_proj`.
    O,
    /// `mlp.gate_proj`.
    Gate,
    /// `mlp.up_proj`.
    Up,
    /// `mlp.down_proj`.
    Down,
}

impl LoraTarget {
    /// The targets OSUM and OSUM-Pangu train: q, k, v, o, gate, down (not up; REFERENCE §7).
    pub const OSUM: [LoraTarget; 6] = [
        LoraTarget::Q,
        LoraTarget::K,
        LoraTarget::V,
        LoraTarget::O,
        LoraTarget::Gate,
        LoraTarget::Down,
    ];

    /// The HF module name (`q_proj`, …, `down_proj`).
    pub fn module(self) -> &'static str {
        match self {
            LoraTarget::Q => "q_proj",
            LoraTarget::K => "k_proj",
            LoraTarget::V => "v_proj",
            LoraTarget::O => "o_proj",
            LoraTarget::Gate => "gate_proj",
            LoraTarget::Up => "up_proj",
            LoraTarget::Down => "down_proj",
        }
    }
}

/// One adapter: A `[r, in]`, B `[out, r]` and the scale `α/r`.
#[derive(Debug, Clone)]
pub struct Lora {
    a: Tensor,
    b: Tensor,
    alpha: f32,
}

impl Lora {
    /// A fresh trainable adapter for a `[out, in]` projection: A ~ U(−1/√in, 1/√in) from `rng`,
    /// B = 0; both f32 trainable leaves.
    pub fn new(
        out: usize,
        inp: usize,
        r: usize,
        alpha: f32,
        rng: &mut Rng,
        device: &Arc<dyn Device>,
    ) -> Result<Lora> {
        if r == 0 || inp == 0 || out == 0 {
            return Err(LlmError::Invalid(format!(
                "LoRA rank {r} for a [{out}, {inp}] projection: every size must be positive"
            )));
        }
        let bound = 1.0 / (inp as f32).sqrt();
        let a = Tensor::rand_uniform(&[r, inp], -bound, bound, rng, device)?;
        let b = Tensor::zeros(&[out, r], crate::engine::DType::F32, device)?;
        Self::from_tensors(a.variable(), b.variable(), alpha)
    }

    /// An adapter from existing tensors (e.g. PEFT's `lora_A`/`lora_B` weights); they keep their
    /// autograd state (call `.variable()` first to train them).
    pub fn from_tensors(a: Tensor, b: Tensor, alpha: f32) -> Result<Lora> {
        let ok = a.rank() == 2 && b.rank() == 2 && a.shape()[0] == b.shape()[1] && a.shape()[0] > 0;
        if !ok {
            return Err(LlmError::Invalid(format!(
                "LoRA A {:?} and B {:?} must be [r, in] and [out, r]",
                a.shape(),
                b.shape()
            )));
        }
        if !alpha.is_finite() {
            return Err(LlmError::Invalid(format!(
                "LoRA alpha {alpha} is not finite"
            )));
        }
        Ok(Lora { a, b, alpha })
    }

    /// A `[r, in]`.
    pub fn a(&self) -> &Tensor {
        &self.a
    }

    /// B `[out, r]`.
    pub fn b(&self) -> &Tensor {
        &self.b
    }

    /// The rank r.
    pub fn rank(&self) -> usize {
        self.a.shape()[0]
    }

    /// α.
    pub fn alpha(&self) -> f32 {
        self.alpha
    }

    /// `α/r`, the factor on `B·A`.
    pub fn scale(&self) -> f32 {
        self.alpha / self.rank() as f32
    }

    /// Error unless this adapter fits a `[out, in]` projection called `name`.
    pub(crate) fn check_fits(&self, name: &str, out: usize, inp: usize) -> Result<()> {
        if self.a.shape()[1] != inp || self.b.shape()[0] != out {
            return Err(LlmError::Invalid(format!(
                "{name}: LoRA A {:?} / B {:?} do not fit the weight [{out}, {inp}]",
                self.a.shape(),
                self.b.shape()
            )));
        }
        Ok(())
    }
}
