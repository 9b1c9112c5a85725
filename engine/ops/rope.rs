//! Rotary position embedding (RoFormer, Su et al. 2021) and its cos/sin tables.
//!
//! A rotation by angle α is orthogonal, so its adjoint is the rotation by −α: the backward of
//! `rope(x, cos, sin)` is `rope(g, cos, −sin)`. The tables are constants (functions of position
//! only); gradients with respect to them are not provided.

use crate::engine::autograd::{self, BackwardOp};
use crate::engine::device::{Device, RopeStyle};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::engine::tensor::Tensor;
use std::sync::Arc;

impl Tensor {
    /// Rotate pairs of the last dimension of x `[…, T, D]` (f32, `D` even) by the angles whose
    /// cosines and sines `cos`/`sin` `[T, D/2]` hold (see [`rope_tables`]); `style` picks the
    /// pairs (`(i, i + D/2)` or `(2i, 2i + 1)`). Errors with [`Error::NoBackward`] if the tables
    /// track gradients while recording.
    pub fn rope(&self, cos: &Tensor, sin: &Tensor, style: RopeStyle) -> Result<Tensor> {
        const OP: &str = "rope";
        self.check_dtype(OP, DType::F32)?;
        self.check_same_device(OP, cos)?;
        self.check_same_device(OP, sin)?;
        let (t, d) = match self.shape() {
            [.., t, d] => (*t, *d),
            s => {
                return Err(Error::BadShape {
                    op: OP,
                    shape: s.to_vec(),
                    msg: "expected x [.., T, D]".into(),
                })
            }
        };
        if !d.is_multiple_of(2) {
            return Err(Error::BadShape {
                op: OP,
                shape: self.shape().to_vec(),
                msg: format!("the last dimension D = {d} must be even to form pairs"),
            });
        }
        for table in [cos, sin] {
            if !table.dtype().is_float() {
                return Err(Error::DTypeMismatch {
                    op: OP,
                    lhs: self.dtype(),
                    rhs: table.dtype(),
                });
            }
            if table.shape() != [t, d / 2] {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    lhs: self.shape().to_vec(),
                    rhs: table.shape().to_vec(),
                });
            }
        }
        // The tables have no backward: refuse up front rather than cut the graph silently.
        if autograd::is_grad_enabled() && (cos.tracks_grad() || sin.tracks_grad()) {
            return Err(Error::NoBackward { op: OP });
        }
        let buf = {
            let (x, c, s) = (self.read(), cos.read(), sin.read());
            self.device().rope(x.view(), c.view(), s.view(), style)?
        };
        Tensor::from_op(buf, self.shape(), self.device(), &[self, cos, sin], || {
            Box::new(RopeBackward(style))
        })
    }
}

/// `(cos, sin)` tables `[seq_len, head_dim/2]` (f32) for positions `start_pos..start_pos+seq_len`:
/// `angle[t, i] = (start_pos + t)·θ^(−2i/D)`, evaluated in f64 (positions in the tens of
/// thousands times the fastest frequency would lose digits in f32) and rounded once at the end.
/// `start_pos` lets a decoder with a KV cache rotate only the new positions.
pub fn rope_tables(
    seq_len: usize,
    head_dim: usize,
    theta: f32,
    start_pos: usize,
    device: &Arc<dyn Device>,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "rope_tables";
    if head_dim == 0 || !head_dim.is_multiple_of(2) {
        return Err(Error::BadShape {
            op: OP,
            shape: vec![seq_len, head_dim],
            msg: format!("head_dim {head_dim} must be even and positive"),
        });
    }
    if !(theta.is_finite() && theta > 0.0) {
        return Err(Error::invalid(
            OP,
            format!("theta must be finite and positive, got {theta}"),
        ));
    }
    let half = head_dim / 2;
    let inv_freq: Vec<f64> = (0..half)
        .map(|i| (theta as f64).powf(-2.0 * i as f64 / head_dim as f64))
        .collect();
    let mut cos = Vec::with_capacity(seq_len * half);
    let mut sin = Vec::with_capacity(seq_len * half);
    for t in 0..seq_len {
        let pos = start_pos as f64 + t as f64; // in f64: no usize overflow
        for &f in &inv_freq {
            let (s, c) = (pos * f).sin_cos();
            cos.push(c as f32);
            sin.push(s as f32);
        }
    }
    Ok((
        Tensor::from_vec(cos, &[seq_len, half], device)?,
        Tensor::from_vec(sin, &[seq_len, half], device)?,
    ))
}

/// Rotation by −α undoes rotation by α: `dx = rope(g, cos, −sin)`.
struct RopeBackward(RopeStyle);
impl BackwardOp for RopeBackward {
    fn name(&self) -> &'static str {
        "rope"
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        _: &Tensor,
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        if needs[1] || needs[2] {
            return Err(Error::NoBackward { op: "rope" });
        }
        let (cos, sin) = (&inputs[1], &inputs[2]);
        Ok(vec![Some(g.rope(cos, &sin.neg()?, self.0)?), None, None])
    }
}
