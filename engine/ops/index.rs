//! Indexing ops: concat, embedding lookup (index_select) / index_add, gather / scatter_add.

use crate::engine::autograd::BackwardOp;
use crate::engine::error::{Error, Result};
use crate::engine::tensor::Tensor;

impl Tensor {
    /// Concatenate along `dim`; every other dimension, the dtype and the device must agree.
    pub fn cat(parts: &[Tensor], dim: isize) -> Result<Tensor> {
        const OP: &str = "cat";
        let first = parts
            .first()
            .ok_or_else(|| Error::invalid(OP, "needs at least one tensor"))?;
        let d = first.layout().dim(OP, dim)?;
        let mut shape = first.shape().to_vec();
        shape[d] = 0;
        for p in parts {
            first.check_same_device(OP, p)?;
            first.check_same_dtype(OP, p)?;
            let same_rest = p.rank() == first.rank()
                && (0..p.rank()).all(|i| i == d || p.shape()[i] == first.shape()[i]);
            if !same_rest {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    lhs: first.shape().to_vec(),
                    rhs: p.shape().to_vec(),
                });
            }
            shape[d] += p.shape()[d];
        }
        if parts.len() == 1 {
            return Ok(first.clone());
        }
        let buf = {
            let reads: Vec<_> = parts.iter().map(|p| p.read()).collect();
            let views: Vec<_> = reads.iter().map(|r| r.view()).collect();
            first.device().concat(&views, d)?
        };
        let sizes: Vec<usize> = parts.iter().map(|p| p.shape()[d]).collect();
        let inputs: Vec<&Tensor> = parts.iter().collect();
        Tensor::from_op(buf, &shape, first.device(), &inputs, || {
            Box::new(CatBackward { dim: d, sizes })
        })
    }
}

struct CatBackward {
    dim: usize,
    sizes: Vec<usize>,
}
impl BackwardOp for CatBackward {
    fn name(&self) -> &'static str {
        "cat"
    }
    fn backward(
        &self,
        _: &[Tensor],
        _: &Tensor,
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let mut start = 0;
        let mut out = Vec::with_capacity(self.sizes.len());
        for (&n, &need) in self.sizes.iter().zip(needs) {
            out.push(
                need.then(|| g.narrow(self.dim as isize, start, n))
                    .transpose()?,
            );
            start += n;
        }
        Ok(out)
    }
}
