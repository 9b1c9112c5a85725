//! Matrix products: batched `matmul` with NumPy batch broadcasting, and `linear` (x·Wᵀ + b).

use crate::engine::autograd::BackwardOp;
use crate::engine::device::{UnaryOp, View};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::engine::layout::broadcast_shape;
use crate::engine::tensor::Tensor;

impl Tensor {
    /// `[…, M, K] × […, K, N] → […, M, N]`, batch dims broadcast. Transposed operands are
    /// passed to the device as strides, never copied here. `rhs` may be f16/bf16 (weights).
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        const OP: &str = "matmul";
        self.check_same_device(OP, rhs)?;
        let mismatch = || Error::ShapeMismatch {
            op: OP,
            lhs: self.shape().to_vec(),
            rhs: rhs.shape().to_vec(),
        };
        if self.rank() < 2 || rhs.rank() < 2 {
            return Err(mismatch());
        }
        if self.dtype() != DType::F32 || !rhs.dtype().is_float() {
            return Err(Error::invalid(
                OP,
                format!(
                    "lhs must be f32 and rhs f32/f16/bf16, got {:?} and {:?}",
                    self.dtype(),
                    rhs.dtype()
                ),
            ));
        }
        let (lr, rr) = (self.rank(), rhs.rank());
        let (m, k) = (self.shape()[lr - 2], self.shape()[lr - 1]);
        let (k2, n) = (rhs.shape()[rr - 2], rhs.shape()[rr - 1]);
        if k != k2 {
            return Err(mismatch());
        }
        let batch = broadcast_shape(OP, &self.shape()[..lr - 2], &rhs.shape()[..rr - 2])
            .map_err(|_| mismatch())?;
        let with = |tail: [usize; 2]| [batch.as_slice(), &tail].concat();
        let ll = self.layout().broadcast_as(OP, &with([m, k]))?;
        let rl = rhs.layout().broadcast_as(OP, &with([k, n]))?;
        let buf = {
            let (a, b) = (self.read(), rhs.read());
            self.device()
                .matmul(View::new(a.view().buf, &ll), View::new(b.view().buf, &rl))?
        };
        Tensor::from_op(buf, &with([m, n]), self.device(), &[self, rhs], || {
            Box::new(MatmulBackward)
        })
    }

    /// `x·Wᵀ + b` for x `[…, in]` (f32), W `[out, in]` (PyTorch layout; f32/f16/bf16),
    /// b `[out]`: one device op, so the bias is added as the product is written.
    pub fn linear(&self, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        let (buf, shape) = self.linear_op(w, b, None)?;
        let mut inputs = vec![self, w];
        inputs.extend(b);
        Tensor::from_op(buf, &shape, self.device(), &inputs, || {
            Box::new(LinearBackward)
        })
    }

    /// `gelu(x·Wᵀ + b)` (a transformer MLP's first layer): when no gradient is recorded the
    /// device applies GELU as it writes the product (no pass and no buffer of its own); when
    /// training, it is [`Tensor::linear`] then [`Tensor::gelu`], whose backward needs the
    /// pre-activation.
    pub fn linear_gelu(&self, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        let mut inputs = vec![self, w];
        inputs.extend(b);
        if crate::engine::autograd::should_record(&inputs) {
            return self.linear(w, b)?.gelu();
        }
        let (buf, shape) = self.linear_op(w, b, Some(UnaryOp::Gelu))?;
        Tensor::from_op_no_backward(buf, &shape, self.device(), &inputs, "linear+gelu")
    }

    /// The dtype/device checks every layer op makes: x is f32, and each weight is a float tensor
    /// (f32/f16/bf16) on x's device.
    pub(crate) fn check_layer_inputs(&self, op: &'static str, weights: &[&Tensor]) -> Result<()> {
        for t in weights {
            self.check_same_device(op, t)?;
            if !t.dtype().is_float() {
                return Err(Error::DTypeMismatch {
                    op,
                    lhs: DType::F32,
                    rhs: t.dtype(),
                });
            }
        }
        self.check_dtype(op, DType::F32)
    }

    /// Checks and the device call of the linear ops: the output buffer and shape.
    fn linear_op(
        &self,
        w: &Tensor,
        b: Option<&Tensor>,
        act: Option<UnaryOp>,
    ) -> Result<(crate::engine::device::Buffer, Vec<usize>)> {
        const OP: &str = "linear";
        let weights: Vec<&Tensor> = [w].into_iter().chain(b).collect();
        self.check_layer_inputs(OP, &weights)?;
        let mismatch = |rhs: &Tensor| Error::ShapeMismatch {
            op: OP,
            lhs: self.shape().to_vec(),
            rhs: rhs.shape().to_vec(),
        };
        let inp = self.shape().last().copied();
        if w.rank() != 2 || inp != Some(w.shape()[1]) {
            return Err(mismatch(w));
        }
        let out = w.shape()[0];
        if let Some(b) = b.filter(|b| b.shape() != [out]) {
            return Err(mismatch(b));
        }
        let mut shape = self.shape().to_vec();
        *shape.last_mut().expect("rank ≥ 1 (checked)") = out;
        let buf = {
            let (xr, wr) = (self.read(), w.read());
            let br = b.map(|b| b.read());
            self.device()
                .linear(xr.view(), wr.view(), br.as_ref().map(|r| r.view()), act)?
        };
        Ok((buf, shape))
    }
}

/// y = x·Wᵀ + b with x, g flattened to `[rows, in]`, `[rows, out]`:
/// dx = g·W, dW = gᵀ·x (one product over all rows), db = Σ_rows g.
struct LinearBackward;
impl BackwardOp for LinearBackward {
    fn name(&self) -> &'static str {
        "linear"
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        _: &Tensor,
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (x, w) = (&inputs[0], &inputs[1]);
        let (out, inp) = (w.shape()[0], w.shape()[1]);
        let rows: usize = x.shape()[..x.rank() - 1].iter().product();
        let g2 = g.reshape(&[rows, out])?;
        let mut grads = vec![None; inputs.len()];
        if needs[0] {
            grads[0] = Some(g2.matmul(w)?.reshape(x.shape())?);
        }
        if needs[1] {
            grads[1] = Some(g2.t()?.matmul(&x.reshape(&[rows, inp])?)?);
        }
        if inputs.len() > 2 && needs[2] {
            grads[2] = Some(g2.sum(0)?.reshape(&[out])?);
        }
        Ok(grads)
    }
}

/// C = A·B ⇒ dA = dC·Bᵀ, dB = Aᵀ·dC, each summed over broadcast batch dims.
struct MatmulBackward;
impl BackwardOp for MatmulBackward {
    fn name(&self) -> &'static str {
        "matmul"
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        _: &Tensor,
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (a, b) = (&inputs[0], &inputs[1]);
        let da = needs[0]
            .then(|| g.matmul(&b.t()?)?.sum_to_shape(a.shape()))
            .transpose()?;
        let db = needs[1].then(|| rhs_grad(a, b, g)).transpose()?;
        Ok(vec![da, db])
    }
}

/// dB = Σ_batch Aᵀ·dC. When B is shared by the whole batch (a weight), the batch sum is the
/// single product `A_flatᵀ · dC_flat` over all `Π batch · M` rows, so no per-batch
/// `[K, N]` partials are materialised and summed.
fn rhs_grad(a: &Tensor, b: &Tensor, g: &Tensor) -> Result<Tensor> {
    let rb = b.rank();
    let shared = a.rank() > 2 && b.shape()[..rb - 2].iter().all(|&d| d == 1);
    if !shared {
        return a.t()?.matmul(g)?.sum_to_shape(b.shape());
    }
    let (k, n) = (b.shape()[rb - 2], b.shape()[rb - 1]);
    let rows: usize = a.shape()[..a.rank() - 1].iter().product();
    let a2 = a.reshape(&[rows, k])?;
    let g2 = g.reshape(&[rows, n])?;
    a2.t()?.matmul(&g2)?.reshape(b.shape())
}
