//! Convolutions: `conv2d`, `conv1d` (conv2d with height 1) and the differentiable `im2col` /
//! `col2im` pair they are built on. Only `groups = 1` is supported.
//!
//! Backward of `Y_n = W·cols_n + b` with `cols_n = im2col(x_n)` (W viewed as `[O, C·KH·KW]`):
//! `dW = Σ_n dY_n·cols_nᵀ`, `dx = col2im(Wᵀ·dY)`, `db = Σ_{n,oh,ow} dY`. im2col and col2im are
//! adjoint linear maps, so the backward of each is the other.

use crate::engine::autograd::{adjoint, BackwardOp};
use crate::engine::device::Conv2dParams;
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::engine::tensor::Tensor;

/// Refuse zero strides/dilations and kernels that do not fit the padded input; on success the
/// output (height, width). `x`/`w` shapes are only used for the message.
fn output_hw(
    op: &'static str,
    input: (usize, usize),
    kernel: (usize, usize),
    p: &Conv2dParams,
    x: &[usize],
    w: &[usize],
) -> Result<(usize, usize)> {
    if p.stride.0 == 0 || p.stride.1 == 0 || p.dilation.0 == 0 || p.dilation.1 == 0 {
        return Err(Error::invalid(
            op,
            format!("stride and dilation must be positive, got {p:?}"),
        ));
    }
    p.output_hw(input, kernel).ok_or_else(|| {
        Error::invalid(
            op,
            format!(
                "kernel {kernel:?} with dilation {:?} does not fit input {input:?} padded by \
                 {:?} (input {x:?}, weight {w:?})",
                p.dilation, p.padding
            ),
        )
    })
}

/// Error unless `t` holds floats.
fn check_float(op: &'static str, t: &Tensor) -> Result<()> {
    if !t.dtype().is_float() {
        return Err(Error::UnsupportedDType {
            op,
            dtype: t.dtype(),
            device: t.device().name(),
        });
    }
    Ok(())
}

impl Tensor {
    /// 2-D convolution (cross-correlation, as in PyTorch) of `self` x `[N, C, H, W]` (f32)
    /// with w `[O, C, KH, KW]` (f32/f16/bf16) and optional bias b `[O]` → `[N, O, OH, OW]`,
    /// `OH = (H + 2·ph − dh·(KH − 1) − 1)/sh + 1` (likewise OW). Only `groups = 1`.
    pub fn conv2d(&self, w: &Tensor, b: Option<&Tensor>, p: &Conv2dParams) -> Result<Tensor> {
        const OP: &str = "conv2d";
        self.check_same_device(OP, w)?;
        self.check_rank(OP, 4)?;
        w.check_rank(OP, 4)?;
        self.check_dtype(OP, DType::F32)?;
        check_float(OP, w)?;
        let (xs, ws) = (self.shape(), w.shape());
        if xs[1] != ws[1] {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: xs.to_vec(),
                rhs: ws.to_vec(),
            });
        }
        if let Some(b) = b {
            self.check_same_device(OP, b)?;
            check_float(OP, b)?;
            if b.shape() != [ws[0]] {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    lhs: ws.to_vec(),
                    rhs: b.shape().to_vec(),
                });
            }
        }
        let (oh, ow) = output_hw(OP, (xs[2], xs[3]), (ws[2], ws[3]), p, xs, ws)?;
        let buf = {
            let (xr, wr) = (self.read(), w.read());
            let br = b.map(|b| b.read());
            self.device()
                .conv2d(xr.view(), wr.view(), br.as_ref().map(|r| r.view()), p)?
        };
        let mut inputs = vec![self, w];
        inputs.extend(b);
        Tensor::from_op(buf, &[xs[0], ws[0], oh, ow], self.device(), &inputs, || {
            Box::new(Conv2dBackward(*p))
        })
    }

    /// 1-D convolution of `self` x `[N, C, L]` (f32) with w `[O, C, K]` and optional bias
    /// b `[O]` → `[N, O, (L + 2·padding − dilation·(K − 1) − 1)/stride + 1]`. Runs as conv2d
    /// over a height-1 view, sharing its kernels and backward. Only `groups = 1`.
    pub fn conv1d(
        &self,
        w: &Tensor,
        b: Option<&Tensor>,
        stride: usize,
        padding: usize,
        dilation: usize,
    ) -> Result<Tensor> {
        const OP: &str = "conv1d";
        self.check_rank(OP, 3)?;
        w.check_rank(OP, 3)?;
        let (xs, ws) = (self.shape(), w.shape());
        if xs[1] != ws[1] {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: xs.to_vec(),
                rhs: ws.to_vec(),
            });
        }
        let p = Conv2dParams {
            stride: (1, stride),
            padding: (0, padding),
            dilation: (1, dilation),
        };
        output_hw(OP, (1, xs[2]), (1, ws[2]), &p, xs, ws)?;
        self.unsqueeze(2)?
            .conv2d(&w.unsqueeze(2)?, b, &p)?
            .squeeze(2)
    }

    /// Unfold `self` x `[N, C, H, W]` (f32) into columns `[N, C·KH·KW, OH·OW]`: row
    /// `(c·KH + i)·KW + j`, column `oh·OW + ow` holds `x[n, c, oh·sh + i·dh − ph, ow·sw + j·dw − pw]`
    /// (0 in the padding). Differentiable; its backward is [`Tensor::col2im`].
    pub fn im2col(&self, kernel: (usize, usize), p: &Conv2dParams) -> Result<Tensor> {
        const OP: &str = "im2col";
        self.check_rank(OP, 4)?;
        self.check_dtype(OP, DType::F32)?;
        let s = self.shape();
        let (oh, ow) = output_hw(OP, (s[2], s[3]), kernel, p, s, &[kernel.0, kernel.1])?;
        let buf = {
            let r = self.read();
            self.device().im2col(r.view(), kernel, p)?
        };
        let shape = [s[0], s[1] * kernel.0 * kernel.1, oh * ow];
        // cols = im2col(x) is linear ⇒ dx = col2im(dcols), its adjoint.
        let (channels, input_hw, p) = (s[1], (s[2], s[3]), *p);
        Tensor::from_op(buf, &shape, self.device(), &[self], || {
            adjoint("im2col", move |g| g.col2im(channels, input_hw, kernel, &p))
        })
    }

    /// Fold `self` columns `[N, C·KH·KW, OH·OW]` (f32) back into `[N, C, H, W]` with
    /// `(H, W) = input_hw`, adding overlapping taps: the adjoint of [`Tensor::im2col`], so
    /// `⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩`. Differentiable; its backward is `im2col`.
    pub fn col2im(
        &self,
        channels: usize,
        input_hw: (usize, usize),
        kernel: (usize, usize),
        p: &Conv2dParams,
    ) -> Result<Tensor> {
        const OP: &str = "col2im";
        self.check_rank(OP, 3)?;
        self.check_dtype(OP, DType::F32)?;
        let s = self.shape();
        let image = [s[0], channels, input_hw.0, input_hw.1];
        let (oh, ow) = output_hw(OP, input_hw, kernel, p, &image, &[kernel.0, kernel.1])?;
        if s[1] != channels * kernel.0 * kernel.1 || s[2] != oh * ow {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: s.to_vec(),
                rhs: vec![s[0], channels * kernel.0 * kernel.1, oh * ow],
            });
        }
        let buf = {
            let r = self.read();
            self.device()
                .col2im(r.view(), channels, input_hw, kernel, p)?
        };
        // x = col2im(cols) ⇒ dcols = im2col(dx).
        let p = *p;
        Tensor::from_op(buf, &image, self.device(), &[self], || {
            adjoint("col2im", move |g| g.im2col(kernel, &p))
        })
    }
}

/// Y_n = W·im2col(x_n) + b ⇒ dx = col2im(Wᵀ·dY), dW = Σ_n dY_n·cols_nᵀ, db = Σ dY over
/// (n, oh, ow). Gradients of half-precision weights/bias are cast back to their dtype.
struct Conv2dBackward(Conv2dParams);
impl BackwardOp for Conv2dBackward {
    fn name(&self) -> &'static str {
        "conv2d"
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        _: &Tensor,
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (x, w) = (&inputs[0], &inputs[1]);
        let (xs, ws) = (x.shape(), w.shape());
        let (n, o) = (xs[0], ws[0]);
        let kernel = (ws[2], ws[3]);
        let k = ws[1] * ws[2] * ws[3];
        let gs = g.shape();
        let l = gs[2] * gs[3];
        // The images side by side, `[O, N·L]`: one product with depth N·L instead of N products
        // of depth L and a sum over N. The adapter's convolutions see L of 50–250 positions
        // per clip, where a product of that depth runs far below the GEMM's rate, and the
        // batched form wrote an `[N, O, C·KH·KW]` intermediate only to sum it.
        let g_wide = g
            .reshape(&[n, o, l])?
            .permute(&[1, 0, 2])?
            .reshape(&[o, n * l])?;
        let dx = needs[0]
            .then(|| {
                let wt = w.reshape(&[o, k])?.to_dtype(DType::F32)?.t()?;
                wt.matmul(&g_wide)?
                    .reshape(&[k, n, l])?
                    .permute(&[1, 0, 2])?
                    .col2im(xs[1], (xs[2], xs[3]), kernel, &self.0)
            })
            .transpose()?;
        let dw = needs[1]
            .then(|| {
                let cols = x.detach().im2col(kernel, &self.0)?;
                let cols_wide = cols.permute(&[1, 0, 2])?.reshape(&[k, n * l])?;
                g_wide
                    .matmul(&cols_wide.t()?)?
                    .reshape(ws)?
                    .to_dtype(w.dtype())
            })
            .transpose()?;
        let db = match inputs.get(2) {
            Some(b) if needs[2] => Some(
                g.sum_keepdim(0)?
                    .sum_keepdim(2)?
                    .sum_keepdim(3)?
                    .reshape(&[o])?
                    .to_dtype(b.dtype())?,
            ),
            _ => None,
        };
        let mut grads = vec![dx, dw];
        if inputs.len() == 3 {
            grads.push(db);
        }
        Ok(grads)
    }
}
