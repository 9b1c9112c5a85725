//! LoRA adapters (Hu et al. 2021; REFERENCE §7): a projection `W` `[out, in]` gains the
//! trainable update `(α/r)·B·A` with A `[r, in]` and B `[out, r]`. B starts at zero, so a fresh
//! adapter leaves the model unchanged; A starts like PEFT's (Kaiming-uniform with a = √5, i.e.
//! U(−1/√in, 1/√in)).

use super::{LlmError, Result};
use crate::engine::{autograd, Device, Rng, Tensor};
use std::sync::{Arc, Mutex};

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

    /// Every target.
    pub const ALL: [LoraTarget; 7] = [
        LoraTarget::Q,
        LoraTarget::K,
        LoraTarget::V,
        LoraTarget::O,
        LoraTarget::Gate,
        LoraTarget::Up,
        LoraTarget::Down,
    ];

    /// The target whose HF module name is `name` (`q_proj`, …).
    pub fn from_module(name: &str) -> Option<LoraTarget> {
        Self::ALL.into_iter().find(|t| t.module() == name)
    }

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

/// One adapter: A `[r, in]`, B `[out, r]`, the scale `α/r` and an optional dropout on the
/// adapter's input (PEFT's `lora_dropout`: the base path sees the undropped input).
#[derive(Debug, Clone)]
pub struct Lora {
    a: Tensor,
    b: Tensor,
    alpha: f32,
    dropout: Option<Dropout>,
}

/// Inverted dropout with its own seeded generator (shared by clones of the adapter).
#[derive(Debug, Clone)]
struct Dropout {
    p: f32,
    rng: Arc<Mutex<Rng>>,
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
        Ok(Lora {
            a,
            b,
            alpha,
            dropout: None,
        })
    }

    /// Drop each input element of the adapter path with probability `p` (scaling the rest by
    /// `1/(1−p)`) while gradients are recorded, i.e. in training; under `no_grad` (inference,
    /// evaluation) the adapter sees the whole input. Masks come from a generator seeded with
    /// `seed`. `p` = 0 removes the dropout.
    pub fn with_dropout(mut self, p: f32, seed: u64) -> Result<Lora> {
        if !(0.0..1.0).contains(&p) {
            return Err(LlmError::Invalid(format!(
                "LoRA dropout {p} must be in [0, 1)"
            )));
        }
        self.dropout = (p > 0.0).then(|| Dropout {
            p,
            rng: Arc::new(Mutex::new(Rng::new(seed))),
        });
        Ok(self)
    }

    /// The dropout probability (0 when off).
    pub fn dropout(&self) -> f32 {
        self.dropout.as_ref().map_or(0.0, |d| d.p)
    }

    /// A fresh dropout mask (0 or `1/(1−p)`) shaped like `x`, or `None` when dropout is off or
    /// gradients are not being recorded.
    pub(crate) fn dropout_mask(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let Some(d) = &self.dropout else {
            return Ok(None);
        };
        if !autograd::is_grad_enabled() {
            return Ok(None);
        }
        let keep = 1.0 / (1.0 - d.p);
        // A poisoned lock only means another thread panicked mid-draw; the state is still a
        // valid generator state.
        let mut rng = d.rng.lock().unwrap_or_else(|e| e.into_inner());
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| if rng.uniform() < d.p { 0.0 } else { keep })
            .collect();
        Ok(Some(Tensor::from_vec(mask, x.shape(), x.device())?))
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
