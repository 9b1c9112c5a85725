//! AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", Alg. 2), in place.
//!
//! Per element, with bias corrections `bc₁ = 1 − β₁ᵗ`, `bc₂ = 1 − β₂ᵗ`:
//! `θ ← θ − lr·wd·θ` (decay decoupled from the gradient, applied to the old θ);
//! `m ← β₁m + (1 − β₁)g`; `v ← β₂v + (1 − β₂)g²`;
//! `θ ← θ − lr·(m/bc₁)/(√(v/bc₂) + ε)`.

use super::memory::f32_values;
use crate::engine::device::{AdamWParams, View};
use crate::engine::error::{Error, Result};
use crate::engine::storage::{DeviceBuffer, HostBuffer};
use rayon::prelude::*;

/// Elements per rayon task: big enough that scheduling is negligible, small enough to balance.
const CHUNK: usize = 1 << 14;

/// The f32 slice inside a CPU buffer that the step updates in place.
fn f32_mut<'a>(what: &'static str, b: &'a mut dyn DeviceBuffer) -> Result<&'a mut [f32]> {
    let dtype = b.dtype();
    let h = b
        .as_any_mut()
        .downcast_mut::<HostBuffer>()
        .ok_or_else(|| Error::invalid("adamw_step", format!("{what} is not a cpu buffer")))?;
    h.as_mut_slice::<f32>().ok_or(Error::UnsupportedDType {
        op: "adamw_step",
        dtype,
        device: "cpu".into(),
    })
}

/// Constants shared by every element of one step.
#[derive(Clone, Copy)]
struct StepConsts {
    decay: f32,
    b1: f32,
    b2: f32,
    inv_bc1: f32,
    inv_bc2: f32,
    lr: f32,
    eps: f32,
}

impl StepConsts {
    fn new(hp: &AdamWParams) -> Self {
        // Bias corrections in f64: β^t for large t underflows gracefully to 0 (bc → 1).
        let t = hp.step.min(i32::MAX as u64) as i32;
        let bc1 = 1.0 - (hp.beta1 as f64).powi(t);
        let bc2 = 1.0 - (hp.beta2 as f64).powi(t);
        StepConsts {
            decay: 1.0 - hp.lr * hp.weight_decay,
            b1: hp.beta1,
            b2: hp.beta2,
            inv_bc1: (1.0 / bc1) as f32,
            inv_bc2: (1.0 / bc2) as f32,
            lr: hp.lr,
            eps: hp.eps,
        }
    }

    /// One contiguous run of elements; a straight loop the compiler can vectorize.
    fn apply(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *p *= self.decay;
            *m = self.b1 * *m + (1.0 - self.b1) * g;
            *v = self.b2 * *v + (1.0 - self.b2) * g * g;
            let m_hat = *m * self.inv_bc1;
            let v_hat = *v * self.inv_bc2;
            *p -= self.lr * m_hat / (v_hat.sqrt() + self.eps);
        }
    }
}

/// One AdamW step: updates `param`, `m`, `v` (contiguous f32 buffers of one length) in place
/// from `grad` (any float dtype and layout with that many elements). `hp.step` is 1-based.
pub fn adamw_step(
    param: &mut dyn DeviceBuffer,
    grad: View,
    m: &mut dyn DeviceBuffer,
    v: &mut dyn DeviceBuffer,
    hp: &AdamWParams,
) -> Result<()> {
    const OP: &str = "adamw_step";
    if hp.step == 0 {
        return Err(Error::invalid(
            OP,
            "step is 1-based (bias correction divides by 1 − β^step)",
        ));
    }
    let g = f32_values(OP, &grad)?;
    let (p, m, v) = (f32_mut("param", param)?, f32_mut("m", m)?, f32_mut("v", v)?);
    if p.len() != g.len() || m.len() != g.len() || v.len() != g.len() {
        return Err(Error::invalid(
            OP,
            format!(
                "lengths differ: param {}, grad {}, m {}, v {}",
                p.len(),
                g.len(),
                m.len(),
                v.len()
            ),
        ));
    }
    let k = StepConsts::new(hp);
    if p.len() >= 2 * CHUNK {
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(|(((p, g), m), v)| k.apply(p, g, m, v));
    } else {
        k.apply(p, &g, m, v);
    }
    Ok(())
}
