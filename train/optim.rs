//! AdamW with global-norm gradient clipping and warmup + cosine or warmup + inverse-sqrt
//! learning-rate schedules (REFERENCE §7: OSUM-Pangu uses warmup then inverse-sqrt decay).
//! The update itself is the engine's fused `adamw_step` op, so it runs on any device.

use crate::engine::{ops::optim::adamw_step, AdamWParams, Gradients, Result, Tensor, TensorId};
use std::collections::HashMap;

/// AdamW hyper-parameters (the learning rate comes from the schedule each step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// First-moment decay β₁.
    pub beta1: f32,
    /// Second-moment decay β₂.
    pub beta2: f32,
    /// Denominator ε.
    pub eps: f32,
    /// Decoupled weight decay λ.
    pub weight_decay: f32,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// AdamW over a fixed set of trainable tensors; moments are allocated lazily on first update.
#[derive(Debug)]
pub struct AdamW {
    cfg: AdamWConfig,
    moments: HashMap<TensorId, (Tensor, Tensor)>,
    step: u64,
}

impl AdamW {
    /// A fresh optimizer.
    pub fn new(cfg: AdamWConfig) -> Self {
        AdamW {
            cfg,
            moments: HashMap::new(),
            step: 0,
        }
    }

    /// Number of updates applied so far.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// The hyper-parameters.
    pub fn config(&self) -> AdamWConfig {
        self.cfg
    }

    /// The first and second moments of `p`, once it has been updated.
    pub fn moments(&self, p: &Tensor) -> Option<&(Tensor, Tensor)> {
        self.moments.get(&p.id())
    }

    /// Continue from a checkpoint: `steps` updates taken, and the saved moments `(m, v)` of each
    /// parameter (shapes must match the parameter's). The step updates moments in place, so
    /// moments borrowed from a memory-mapped checkpoint are copied.
    pub fn restore(&mut self, steps: u64, moments: Vec<(Tensor, Tensor, Tensor)>) -> Result<()> {
        self.step = steps;
        self.moments.clear();
        for (p, m, v) in moments {
            for t in [&m, &v] {
                if t.shape() != p.shape() {
                    return Err(crate::engine::Error::invalid(
                        "AdamW::restore",
                        format!(
                            "a saved moment is {:?}, its parameter {:?}",
                            t.shape(),
                            p.shape()
                        ),
                    ));
                }
            }
            let own = |t: Tensor| match t.mapped_region() {
                Some(_) => t.copy(),
                None => Ok(t),
            };
            self.moments.insert(p.id(), (own(m)?, own(v)?));
        }
        Ok(())
    }

    /// Update every parameter that has a gradient, in place, with learning rate `lr`;
    /// gradients are multiplied by `grad_scale` first (the clipping factor).
    pub fn step(
        &mut self,
        params: &[Tensor],
        grads: &Gradients,
        lr: f32,
        grad_scale: f32,
    ) -> Result<()> {
        self.step += 1;
        let hp = AdamWParams {
            lr,
            beta1: self.cfg.beta1,
            beta2: self.cfg.beta2,
            eps: self.cfg.eps,
            weight_decay: self.cfg.weight_decay,
            step: self.step,
        };
        for p in params {
            let Some(g) = grads.get(p) else { continue };
            let g = if grad_scale == 1.0 {
                g.clone()
            } else {
                g.scale(grad_scale)?
            };
            let (m, v) = match self.moments.get(&p.id()) {
                Some(mv) => mv.clone(),
                None => {
                    let mv = (p.zeros_like()?, p.zeros_like()?);
                    self.moments.insert(p.id(), mv.clone());
                    mv
                }
            };
            adamw_step(p, &g, &m, &v, &hp)?;
        }
        Ok(())
    }
}

/// The factor that scales all gradients to a global L2 norm of at most `max_norm`, and the norm
/// before clipping. Returns factor 1 when already within bounds.
pub fn clip_factor(params: &[Tensor], grads: &Gradients, max_norm: f32) -> Result<(f32, f32)> {
    // Sum the squares on the device and read back once: one host sync per step, not per tensor.
    let mut sq: Option<Tensor> = None;
    for p in params {
        if let Some(g) = grads.get(p) {
            let s = g.sqr()?.sum_all()?;
            sq = Some(match sq {
                Some(acc) => acc.add(&s)?,
                None => s,
            });
        }
    }
    let norm = match sq {
        Some(s) => s.to_scalar_f32()?.sqrt(),
        None => 0.0,
    };
    let factor = if norm > max_norm && norm > 0.0 {
        max_norm / norm
    } else {
        1.0
    };
    Ok((factor, norm))
}

/// Linear warmup to `peak` over `warmup` steps, then cosine decay to `floor` at `total`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmupCosine {
    /// Peak learning rate.
    pub peak: f32,
    /// Final learning rate.
    pub floor: f32,
    /// Warmup steps.
    pub warmup: u64,
    /// Total steps.
    pub total: u64,
}

impl WarmupCosine {
    /// Learning rate for 1-based `step`.
    pub fn lr(&self, step: u64) -> f32 {
        if step <= self.warmup {
            return self.peak * step as f32 / self.warmup.max(1) as f32;
        }
        let span = self.total.saturating_sub(self.warmup).max(1);
        let t = ((step - self.warmup) as f32 / span as f32).min(1.0);
        self.floor + 0.5 * (self.peak - self.floor) * (1.0 + (std::f32::consts::PI * t).cos())
    }
}

/// Linear warmup to `peak` over `warmup` steps, then `peak·√(warmup/step)` (the inverse-sqrt
/// decay of OSUM-Pangu's recipe, REFERENCE §7).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmupInverseSqrt {
    /// Peak learning rate (reached at the end of warmup).
    pub peak: f32,
    /// Warmup steps.
    pub warmup: u64,
}

impl WarmupInverseSqrt {
    /// Learning rate for 1-based `step`.
    pub fn lr(&self, step: u64) -> f32 {
        let w = self.warmup.max(1) as f32;
        let s = step.max(1) as f32;
        if s <= w {
            self.peak * s / w
        } else {
            self.peak * (w / s).sqrt()
        }
    }
}

/// The learning-rate schedules the trainer offers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// [`WarmupCosine`].
    Cosine(WarmupCosine),
    /// [`WarmupInverseSqrt`].
    InverseSqrt(WarmupInverseSqrt),
}

impl Schedule {
    /// Learning rate for 1-based `step`.
    pub fn lr(&self, step: u64) -> f32 {
        match self {
            Schedule::Cosine(s) => s.lr(step),
            Schedule::InverseSqrt(s) => s.lr(step),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_cosine_rises_then_decays_to_floor() {
        let s = WarmupCosine {
            peak: 1.0,
            floor: 0.1,
            warmup: 10,
            total: 110,
        };
        assert!((s.lr(5) - 0.5).abs() < 1e-6);
        assert!((s.lr(10) - 1.0).abs() < 1e-6);
        assert!((s.lr(60) - 0.55).abs() < 1e-5);
        assert!((s.lr(110) - 0.1).abs() < 1e-6);
        assert!((s.lr(500) - 0.1).abs() < 1e-6);
    }

    #[test]
    fn warmup_inverse_sqrt_rises_then_decays_as_one_over_root_step() {
        let s = WarmupInverseSqrt {
            peak: 2.0,
            warmup: 100,
        };
        assert!((s.lr(50) - 1.0).abs() < 1e-6);
        assert!((s.lr(100) - 2.0).abs() < 1e-6);
        assert!((s.lr(400) - 1.0).abs() < 1e-6);
        assert!((s.lr(10_000) - 0.2).abs() < 1e-6);
    }
}
