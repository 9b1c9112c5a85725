//! Reductions over one or all dimensions: sum, mean, max, min, argmax.

use crate::engine::autograd::BackwardOp;
use crate::engine::device::ReduceOp;
use crate::engine::error::{Error, Result};
use crate::engine::tensor::Tensor;

impl Tensor {
    /// Reduce `dim`, keeping it with size 1.
    pub fn reduce_keepdim(&self, op: ReduceOp, dim: isize) -> Result<Tensor> {
        let d = self.layout().dim(op.name(), dim)?;
        if !self.dtype().is_float() {
            return Err(Error::UnsupportedDType {
                op: op.name(),
                dtype: self.dtype(),
                device: self.device().name(),
            });
        }
        if op != ReduceOp::Sum && self.shape()[d] == 0 {
            return Err(Error::BadShape {
                op: op.name(),
                shape: self.shape().to_vec(),
                msg: format!("cannot take {} over empty dimension {d}", op.name()),
            });
        }
        let buf = {
            let r = self.read();
            self.device().reduce(op, r.view(), d)?
        };
        let mut shape = self.shape().to_vec();
        shape[d] = 1;
        match op {
            // Integer output: a constant, not a cut (see elementwise.rs).
            ReduceOp::Argmax => Tensor::from_buffer(buf, &shape, self.device()),
            _ => Tensor::from_op(buf, &shape, self.device(), &[self], || {
                Box::new(ReduceBackward(op))
            }),
        }
    }

    /// Σ over `dim`, kept with size 1.
    pub fn sum_keepdim(&self, dim: isize) -> Result<Tensor> {
        self.reduce_keepdim(ReduceOp::Sum, dim)
    }
    /// Σ over `dim`, removed.
    pub fn sum(&self, dim: isize) -> Result<Tensor> {
        self.sum_keepdim(dim)?.squeeze(dim_after_keep(self, dim)?)
    }
    /// Mean over `dim`, kept with size 1.
    pub fn mean_keepdim(&self, dim: isize) -> Result<Tensor> {
        let n = self.dim(dim)?;
        self.sum_keepdim(dim)?.scale(1.0 / n as f32)
    }
    /// Mean over `dim`, removed.
    pub fn mean(&self, dim: isize) -> Result<Tensor> {
        self.mean_keepdim(dim)?.squeeze(dim_after_keep(self, dim)?)
    }
    /// Max over `dim`, kept with size 1 (ties share the gradient equally).
    pub fn max_keepdim(&self, dim: isize) -> Result<Tensor> {
        self.reduce_keepdim(ReduceOp::Max, dim)
    }
    /// Min over `dim`, kept with size 1 (ties share the gradient equally).
    pub fn min_keepdim(&self, dim: isize) -> Result<Tensor> {
        self.reduce_keepdim(ReduceOp::Min, dim)
    }
    /// Index of the first maximum along `dim` (u32), dimension removed.
    pub fn argmax(&self, dim: isize) -> Result<Tensor> {
        self.reduce_keepdim(ReduceOp::Argmax, dim)?
            .squeeze(dim_after_keep(self, dim)?)
    }
    /// Σ of every element, as a 0-d tensor.
    pub fn sum_all(&self) -> Result<Tensor> {
        self.flatten_all()?.sum(0)
    }
    /// Mean of every element, as a 0-d tensor.
    pub fn mean_all(&self) -> Result<Tensor> {
        let n = self.elem_count().max(1);
        self.sum_all()?.scale(1.0 / n as f32)
    }
}

fn dim_after_keep(t: &Tensor, dim: isize) -> Result<isize> {
    Ok(t.layout().dim("reduce", dim)? as isize)
}

struct ReduceBackward(ReduceOp);
impl BackwardOp for ReduceBackward {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        y: &Tensor,
        g: &Tensor,
        _: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let x = &inputs[0];
        let dx = match self.0 {
            ReduceOp::Sum => g.broadcast_as(x.shape())?,
            ReduceOp::Max | ReduceOp::Min => {
                // Gradient split evenly among the positions that attain the extremum.
                let hit = x.eq(&y.broadcast_as(x.shape())?)?.to_dtype(x.dtype())?;
                let count = hit.sum_to_shape(y.shape())?;
                hit.mul(&g.div(&count)?)?
            }
            ReduceOp::Argmax => return Err(Error::NoBackward { op: "argmax" }),
        };
        Ok(vec![Some(dx)])
    }
}
