//! Normalizations over the last dimension: softmax, log-softmax, LayerNorm and RMSNorm.
//!
//! Forward passes are single fused device kernels. Backward rules are compositions of tensor ops
//! (so they run on any device) that recompute the row statistics from the saved input instead of
//! storing them: a few cheap reductions traded for not keeping extra tensors alive on the tape.

use crate::engine::autograd::BackwardOp;
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::engine::tensor::Tensor;

/// Error unless `x` is an f32 activation with at least one dimension (the one normalized over).
fn check_rows(op: &'static str, x: &Tensor) -> Result<()> {
    x.check_dtype(op, DType::F32)?;
    if x.rank() == 0 {
        return Err(Error::BadShape {
            op,
            shape: vec![],
            msg: "needs at least one dimension (it normalizes over the last)".into(),
        });
    }
    Ok(())
}

/// Error unless a per-feature parameter is a float `[D]` on `x`'s device, `D` = last dim of `x`.
fn check_param(op: &'static str, x: &Tensor, p: &Tensor) -> Result<()> {
    x.check_same_device(op, p)?;
    if !p.dtype().is_float() {
        return Err(Error::DTypeMismatch {
            op,
            lhs: x.dtype(),
            rhs: p.dtype(),
        });
    }
    let d = x.shape()[x.rank() - 1];
    if p.shape() != [d] {
        return Err(Error::ShapeMismatch {
            op,
            lhs: x.shape().to_vec(),
            rhs: p.shape().to_vec(),
        });
    }
    Ok(())
}

impl Tensor {
    /// Softmax over the last dimension (f32), computed stably by subtracting each row's max.
    /// Backward: `dx = y·(g − Σ g·y)`, the sum over the last dimension.
    pub fn softmax(&self) -> Result<Tensor> {
        const OP: &str = "softmax";
        check_rows(OP, self)?;
        let buf = {
            let r = self.read();
            self.device().softmax(r.view())?
        };
        Tensor::from_op(buf, self.shape(), self.device(), &[self], || {
            Box::new(SoftmaxBackward)
        })
    }

    /// Log-softmax over the last dimension (f32): `x − logsumexp(x)`.
    /// Backward: `dx = g − exp(y)·Σ g`, the sum over the last dimension.
    pub fn log_softmax(&self) -> Result<Tensor> {
        const OP: &str = "log_softmax";
        check_rows(OP, self)?;
        let buf = {
            let r = self.read();
            self.device().log_softmax(r.view())?
        };
        Tensor::from_op(buf, self.shape(), self.device(), &[self], || {
            Box::new(LogSoftmaxBackward)
        })
    }

    /// LayerNorm over the last dimension `D`: `(x − μ)/√(σ² + eps)·w + b` with the biased
    /// variance. `x` is f32; `w` and `b` are `[D]` and may be f32, f16 or bf16 (their gradients,
    /// when they are trainable, come back in their own dtype).
    pub fn layer_norm(&self, w: &Tensor, b: Option<&Tensor>, eps: f32) -> Result<Tensor> {
        const OP: &str = "layer_norm";
        check_rows(OP, self)?;
        check_param(OP, self, w)?;
        if let Some(b) = b {
            check_param(OP, self, b)?;
        }
        let buf = {
            let (xr, wr) = (self.read(), w.read());
            let br = b.map(|b| b.read());
            self.device()
                .layer_norm(xr.view(), wr.view(), br.as_ref().map(|r| r.view()), eps)?
        };
        let inputs: Vec<&Tensor> = [Some(self), Some(w), b].into_iter().flatten().collect();
        Tensor::from_op(buf, self.shape(), self.device(), &inputs, || {
            Box::new(LayerNormBackward { eps })
        })
    }

    /// RMSNorm over the last dimension `D`: `x/√(mean x² + eps)·w`. `x` is f32; `w` is `[D]`
    /// and may be f32, f16 or bf16.
    pub fn rms_norm(&self, w: &Tensor, eps: f32) -> Result<Tensor> {
        const OP: &str = "rms_norm";
        check_rows(OP, self)?;
        check_param(OP, self, w)?;
        let buf = {
            let (xr, wr) = (self.read(), w.read());
            self.device().rms_norm(xr.view(), wr.view(), eps)?
        };
        Tensor::from_op(buf, self.shape(), self.device(), &[self, w], || {
            Box::new(RmsNormBackward { eps })
        })
    }
}

/// y = softmax(x) ⇒ ∂L/∂xᵢ = yᵢ·(gᵢ − Σⱼ gⱼyⱼ).
struct SoftmaxBackward;
impl BackwardOp for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "softmax"
    }
    fn backward(
        &self,
        _: &[Tensor],
        y: &Tensor,
        g: &Tensor,
        _: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let dot = g.mul(y)?.sum_keepdim(-1)?;
        Ok(vec![Some(y.mul(&g.sub(&dot)?)?)])
    }
}

/// y = log_softmax(x) ⇒ ∂L/∂xᵢ = gᵢ − exp(yᵢ)·Σⱼ gⱼ.
struct LogSoftmaxBackward;
impl BackwardOp for LogSoftmaxBackward {
    fn name(&self) -> &'static str {
        "log_softmax"
    }
    fn backward(
        &self,
        _: &[Tensor],
        y: &Tensor,
        g: &Tensor,
        _: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let total = g.sum_keepdim(-1)?;
        Ok(vec![Some(g.sub(&y.exp()?.mul(&total)?)?)])
    }
}

/// `(x̂, rstd)` of a row-normalization: with `centered`, `x̂ = (x − μ)·rstd` and
/// `rstd = 1/√(mean (x − μ)² + eps)` (LayerNorm); without, `x̂ = x·rstd`,
/// `rstd = 1/√(mean x² + eps)` (RMSNorm). `rstd` keeps the last dimension with size 1.
fn normalized(x: &Tensor, eps: f32, centered: bool) -> Result<(Tensor, Tensor)> {
    let xc = if centered {
        x.sub(&x.mean_keepdim(-1)?)?
    } else {
        x.clone()
    };
    let rstd = xc
        .sqr()?
        .mean_keepdim(-1)?
        .affine(1.0, eps)?
        .sqrt()?
        .recip()?;
    Ok((xc.mul(&rstd)?, rstd))
}

/// `∂L/∂x` of `y = x̂·w (+ b)` given `dx̂ = g·w`: with `x̂ = (x − μ)·rstd` (centered),
/// `dx = rstd·(dx̂ − mean dx̂ − x̂·mean(dx̂·x̂))`; with `x̂ = x·rstd` (RMS, no mean to subtract),
/// `dx = rstd·(dx̂ − x̂·mean(dx̂·x̂))`. Means over the last dimension.
fn input_grad(
    g: &Tensor,
    w: &Tensor,
    xhat: &Tensor,
    rstd: &Tensor,
    centered: bool,
) -> Result<Tensor> {
    let dxhat = g.mul(&w.to_dtype(DType::F32)?)?;
    let proj = xhat.mul(&dxhat.mul(xhat)?.mean_keepdim(-1)?)?;
    let mut inner = dxhat.sub(&proj)?;
    if centered {
        inner = inner.sub(&dxhat.mean_keepdim(-1)?)?;
    }
    inner.mul(rstd)
}

/// `Σ_rows g·x̂` reduced to the parameter's `[D]` shape and dtype.
fn param_grad(contrib: &Tensor, p: &Tensor) -> Result<Tensor> {
    contrib.sum_to_shape(p.shape())?.to_dtype(p.dtype())
}

/// Backward of LayerNorm, recomputing μ and rstd from the saved input:
/// `dx = rstd·(dx̂ − mean dx̂ − x̂·mean(dx̂·x̂))`, `dw = Σ_rows g·x̂`, `db = Σ_rows g`.
struct LayerNormBackward {
    eps: f32,
}
impl BackwardOp for LayerNormBackward {
    fn name(&self) -> &'static str {
        "layer_norm"
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        _: &Tensor,
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (x, w) = (&inputs[0], &inputs[1]);
        let (xhat, rstd) = normalized(x, self.eps, true)?;
        let mut grads = vec![None; inputs.len()];
        if needs[0] {
            grads[0] = Some(input_grad(g, w, &xhat, &rstd, true)?);
        }
        if needs[1] {
            grads[1] = Some(param_grad(&g.mul(&xhat)?, w)?);
        }
        if let (Some(b), Some(true)) = (inputs.get(2), needs.get(2)) {
            grads[2] = Some(param_grad(g, b)?);
        }
        Ok(grads)
    }
}

/// Backward of RMSNorm, recomputing rstd: `dx = rstd·(dx̂ − x̂·mean(dx̂·x̂))`, `dw = Σ_rows g·x̂`.
struct RmsNormBackward {
    eps: f32,
}
impl BackwardOp for RmsNormBackward {
    fn name(&self) -> &'static str {
        "rms_norm"
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        _: &Tensor,
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (x, w) = (&inputs[0], &inputs[1]);
        let (xhat, rstd) = normalized(x, self.eps, false)?;
        let dx = if needs[0] {
            Some(input_grad(g, w, &xhat, &rstd, false)?)
        } else {
            None
        };
        let dw = if needs[1] {
            Some(param_grad(&g.mul(&xhat)?, w)?)
        } else {
            None
        };
        Ok(vec![dx, dw])
    }
}
