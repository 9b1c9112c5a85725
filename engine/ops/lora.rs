//! LoRA linear layer: `y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ` (Hu et al. 2021, eq. 3 with the scale
//! `s = α/r` folded in). W is usually frozen (and may be f16/bf16); only A and B train.

use crate::engine::autograd::BackwardOp;
use crate::engine::error::{Error, Result};
use crate::engine::tensor::Tensor;

const OP: &str = "lora_linear";

impl Tensor {
    /// `x·Wᵀ + b + scale·(x·Aᵀ)·Bᵀ` for x `[…, in]` (f32), W `[out, in]`, b `[out]`,
    /// A `[r, in]`, B `[out, r]` (weights f32/f16/bf16). The device never forms `B·A`.
    pub fn lora_linear(
        &self,
        w: &Tensor,
        b: Option<&Tensor>,
        a: &Tensor,
        bm: &Tensor,
        scale: f32,
    ) -> Result<Tensor> {
        let out_shape = self.check_lora(w, b, a, bm)?;
        let buf = {
            let (xr, wr, ar, br) = (self.read(), w.read(), a.read(), bm.read());
            let biasr = b.map(|b| b.read());
            self.device().lora_linear(
                xr.view(),
                wr.view(),
                biasr.as_ref().map(|r| r.view()),
                ar.view(),
                br.view(),
                scale,
            )?
        };
        let mut inputs = vec![self, w, a, bm];
        inputs.extend(b);
        Tensor::from_op(buf, &out_shape, self.device(), &inputs, || {
            Box::new(LoraBackward { scale })
        })
    }

    /// Device, dtype and shape checks of [`Tensor::lora_linear`]; returns the output shape.
    fn check_lora(
        &self,
        w: &Tensor,
        b: Option<&Tensor>,
        a: &Tensor,
        bm: &Tensor,
    ) -> Result<Vec<usize>> {
        let weights: Vec<&Tensor> = [w, a, bm].into_iter().chain(b).collect();
        self.check_layer_inputs(OP, &weights)?;
        let mismatch = |lhs: &Tensor, rhs: &Tensor| Error::ShapeMismatch {
            op: OP,
            lhs: lhs.shape().to_vec(),
            rhs: rhs.shape().to_vec(),
        };
        let Some(&inp) = self.shape().last() else {
            return Err(Error::BadShape {
                op: OP,
                shape: vec![],
                msg: "x needs at least one dimension".into(),
            });
        };
        // x·Wᵀ and x·Aᵀ need W, A of shape [·, in].
        if w.rank() != 2 || w.shape()[1] != inp {
            return Err(mismatch(self, w));
        }
        if a.rank() != 2 || a.shape()[1] != inp {
            return Err(mismatch(self, a));
        }
        let (out, r) = (w.shape()[0], a.shape()[0]);
        if bm.shape() != [out, r] {
            return Err(Error::BadShape {
                op: OP,
                shape: bm.shape().to_vec(),
                msg: format!(
                    "B must be [out, r] = [{out}, {r}] for W {:?} and A {:?}",
                    w.shape(),
                    a.shape()
                ),
            });
        }
        if let Some(b) = b {
            if b.shape() != [out] {
                return Err(mismatch(w, b));
            }
        }
        let mut shape = self.shape().to_vec();
        shape.pop();
        shape.push(out);
        Ok(shape)
    }
}

/// With x, g flattened to `[rows, in]`, `[rows, out]` and `gB = s·g·B` (`[rows, r]`):
/// dx = g·W + gB·A, dW = gᵀ·x, db = Σ_rows g, dA = gBᵀ·x, dB = s·gᵀ·(x·Aᵀ).
/// Only the gradients asked for are computed (W is usually frozen and gets none).
struct LoraBackward {
    scale: f32,
}
impl BackwardOp for LoraBackward {
    fn name(&self) -> &'static str {
        OP
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        _: &Tensor,
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (x, w, a, bm) = (&inputs[0], &inputs[1], &inputs[2], &inputs[3]);
        let (inp, out) = (w.shape()[1], w.shape()[0]);
        let rows: usize = x.shape()[..x.rank() - 1].iter().product();
        let x2 = x.reshape(&[rows, inp])?;
        let g2 = g.reshape(&[rows, out])?;
        let s = self.scale;
        let gbs = (needs[0] || needs[2])
            .then(|| g2.matmul(bm)?.scale(s))
            .transpose()?;
        let mut grads = vec![None; inputs.len()];
        if let (true, Some(gbs)) = (needs[0], &gbs) {
            let dx = g2.matmul(w)?.add(&gbs.matmul(a)?)?;
            grads[0] = Some(dx.reshape(x.shape())?);
        }
        if needs[1] {
            grads[1] = Some(g2.t()?.matmul(&x2)?);
        }
        if let (true, Some(gbs)) = (needs[2], &gbs) {
            grads[2] = Some(gbs.t()?.matmul(&x2)?);
        }
        if needs[3] {
            let h = x2.matmul(&a.t()?)?.scale(s)?;
            grads[3] = Some(g2.t()?.matmul(&h)?);
        }
        if inputs.len() > 4 && needs[4] {
            grads[4] = Some(g2.sum(0)?);
        }
        Ok(grads)
    }
}
