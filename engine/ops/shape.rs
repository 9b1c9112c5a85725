//! Views and copies: transpose, permute, narrow, reshape, broadcast, squeeze/unsqueeze,
//! contiguous, cast. Views never copy; their backward maps the gradient back through the
//! inverse view (or, for broadcast and narrow, sums or pads it).

use crate::engine::autograd::{adjoint, BackwardOp};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::engine::layout::{resolve_dim, Layout};
use crate::engine::tensor::Tensor;

impl Tensor {
    /// Swap two dimensions (a view).
    pub fn transpose(&self, d0: isize, d1: isize) -> Result<Tensor> {
        let a = self.layout().dim("transpose", d0)?;
        let b = self.layout().dim("transpose", d1)?;
        Ok(self.view_op(self.layout().transpose(a, b), || {
            adjoint("transpose", move |g| g.transpose(a as isize, b as isize))
        }))
    }

    /// Transpose the last two dimensions (a view).
    pub fn t(&self) -> Result<Tensor> {
        self.transpose(-2, -1)
    }

    /// Reorder dimensions: new dim `i` is old dim `perm[i]` (a view).
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let layout = self.layout().permute("permute", perm)?;
        let mut inverse = vec![0; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i;
        }
        Ok(self.view_op(layout, || adjoint("permute", move |g| g.permute(&inverse))))
    }

    /// Keep `len` entries of `dim` from `start` (a view).
    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Result<Tensor> {
        let d = self.layout().dim("narrow", dim)?;
        let layout = self.layout().narrow("narrow", d, start, len)?;
        let full = self.shape()[d];
        Ok(self.view_op(layout, || {
            adjoint("narrow", move |g| pad_narrowed(g, d, start, full))
        }))
    }

    /// Same elements, new shape. A view when the tensor is contiguous, a copy otherwise.
    /// One entry of `shape` may be `usize::MAX` to infer it.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let shape = infer_shape(self.shape(), shape)?;
        let src = if self.layout().is_contiguous() {
            self.clone()
        } else {
            self.contiguous()?
        };
        let layout = Layout::new(
            shape.clone(),
            crate::engine::layout::contiguous_strides(&shape),
            src.layout().offset(),
        );
        let from = self.shape().to_vec();
        Ok(src.view_op(layout, || reshape_back(from)))
    }

    /// Collapse all dimensions into one.
    pub fn flatten_all(&self) -> Result<Tensor> {
        self.reshape(&[self.elem_count()])
    }

    /// Broadcast to `shape` (a stride-0 view); the backward sums over the repeated dims.
    pub fn broadcast_as(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let layout = self.layout().broadcast_as("broadcast_as", shape)?;
        let from = self.shape().to_vec();
        Ok(self.view_op(layout, || reshape_back(from)))
    }

    /// Insert a size-1 dimension at `dim` (`dim == rank` appends).
    pub fn unsqueeze(&self, dim: isize) -> Result<Tensor> {
        let d = resolve_dim("unsqueeze", dim, self.rank() + 1)?;
        let from = self.shape().to_vec();
        Ok(self.view_op(self.layout().unsqueeze(d), || reshape_back(from)))
    }

    /// Remove a size-1 dimension.
    pub fn squeeze(&self, dim: isize) -> Result<Tensor> {
        let d = self.layout().dim("squeeze", dim)?;
        let layout = self.layout().squeeze("squeeze", d)?;
        let from = self.shape().to_vec();
        Ok(self.view_op(layout, || reshape_back(from)))
    }

    /// A row-major copy, or `self` when already contiguous.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.layout().is_contiguous() {
            return Ok(self.clone());
        }
        self.copy()
    }

    /// Always a fresh row-major copy.
    pub fn copy(&self) -> Result<Tensor> {
        let buf = {
            let r = self.read();
            self.device().copy_strided(r.view())?
        };
        Tensor::from_op(buf, self.shape(), self.device(), &[self], || {
            adjoint("copy", |g| Ok(g.clone()))
        })
    }

    /// Overwrite `src.shape()[dim]` entries of `dim` starting at `start` with `src`, in place.
    /// Every view of this storage sees the write. In-place writes are not differentiable, so a
    /// tensor that tracks gradients is refused (`NoBackward`) while recording.
    pub fn write_slice(&self, dim: isize, start: usize, src: &Tensor) -> Result<()> {
        const OP: &str = "write_slice";
        self.check_same_device(OP, src)?;
        self.check_same_dtype(OP, src)?;
        if crate::engine::autograd::should_record(&[self, src]) {
            return Err(Error::NoBackward { op: OP });
        }
        let d = self.layout().dim(OP, dim)?;
        let same_rest = src.rank() == self.rank()
            && (0..self.rank()).all(|i| i == d || src.shape()[i] == self.shape()[i]);
        if !same_rest {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: self.shape().to_vec(),
                rhs: src.shape().to_vec(),
            });
        }
        let region = self.layout().narrow(OP, d, start, src.shape()[d])?;
        if self.same_storage(src) {
            // Reading and writing one buffer would need both locks at once; copy the source.
            return self.write_slice(dim, start, &src.copy()?);
        }
        let s = src.read();
        let mut buf = self.storage().write();
        self.device().copy_into(&mut **buf, &region, s.view())
    }

    /// Convert to `dtype`. Float→float casts are differentiable (the gradient is cast back);
    /// casts to or from ids are not.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let buf = {
            let r = self.read();
            self.device().cast(r.view(), dtype)?
        };
        if dtype.is_float() && self.dtype().is_float() {
            let back = self.dtype();
            Tensor::from_op(buf, self.shape(), self.device(), &[self], || {
                adjoint("cast", move |g| g.to_dtype(back))
            })
        } else {
            Tensor::from_op_no_backward(buf, self.shape(), self.device(), &[self], "cast")
        }
    }

    /// Sum `self` (a gradient of broadcast shape) down to `shape`: the backward of broadcasting.
    pub fn sum_to_shape(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let err = || Error::ShapeMismatch {
            op: "sum_to_shape",
            lhs: self.shape().to_vec(),
            rhs: shape.to_vec(),
        };
        if shape.len() > self.rank() {
            return Err(err());
        }
        let lead = self.rank() - shape.len();
        let mut g = self.clone();
        for d in 0..self.rank() {
            let target = if d < lead { 1 } else { shape[d - lead] };
            if self.shape()[d] != target {
                if target != 1 {
                    return Err(err());
                }
                g = g.sum_keepdim(d as isize)?;
            }
        }
        g.reshape(shape)
    }
}

/// Resolve one `usize::MAX` placeholder and check the element count.
fn infer_shape(from: &[usize], to: &[usize]) -> Result<Vec<usize>> {
    let n: usize = from.iter().product();
    let holes = to.iter().filter(|&&d| d == usize::MAX).count();
    let known: Vec<usize> = to.iter().copied().filter(|&d| d != usize::MAX).collect();
    let known = crate::engine::layout::checked_elem_count("reshape", &known)?;
    let err = || Error::ShapeMismatch {
        op: "reshape",
        lhs: from.to_vec(),
        rhs: to
            .iter()
            .map(|&d| if d == usize::MAX { 0 } else { d })
            .collect(),
    };
    match holes {
        0 if known == n => Ok(to.to_vec()),
        1 if known > 0 && n.is_multiple_of(known) => Ok(to
            .iter()
            .map(|&d| if d == usize::MAX { n / known } else { d })
            .collect()),
        _ => Err(err()),
    }
}

/// Backward of reshape-like views (reshape, squeeze/unsqueeze, broadcast): reshape the gradient
/// back to the input shape, or, where the view broadcast (more elements), sum it back down.
fn reshape_back(shape: Vec<usize>) -> Box<dyn BackwardOp> {
    adjoint("reshape", move |g| {
        if g.elem_count() == shape.iter().product::<usize>() {
            g.reshape(&shape)
        } else {
            g.sum_to_shape(&shape)
        }
    })
}

/// Backward of narrow: the gradient padded with zeros on both sides of the kept range.
fn pad_narrowed(g: &Tensor, dim: usize, start: usize, full: usize) -> Result<Tensor> {
    let zeros = |n: usize| {
        let mut s = g.shape().to_vec();
        s[dim] = n;
        Tensor::zeros(&s, g.dtype(), g.device())
    };
    let after = full - start - g.shape()[dim];
    let mut parts = Vec::with_capacity(3);
    if start > 0 {
        parts.push(zeros(start)?);
    }
    parts.push(g.clone());
    if after > 0 {
        parts.push(zeros(after)?);
    }
    Tensor::cat(&parts, dim as isize)
}
