//! Indexing ops: concat, embedding lookup (index_select) / index_add, gather / scatter_add.
//!
//! Each pair is adjoint: the backward of index_select is index_add into zeros and vice versa,
//! the backward of gather is scatter_add into zeros and vice versa. Ids and indices are u32 or
//! i64 and never receive gradients; out-of-range or negative ids are
//! [`Error::IndexOutOfRange`] errors from the device, naming the op.

use crate::engine::autograd::BackwardOp;
use crate::engine::dtype::DType;
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

/// Error unless `ids` holds ids (u32 or i64).
fn check_id_dtype(op: &'static str, ids: &Tensor) -> Result<()> {
    if ids.dtype().is_int() {
        return Ok(());
    }
    Err(Error::DTypeMismatch {
        op,
        lhs: DType::I64,
        rhs: ids.dtype(),
    })
}

/// Error unless `ids` is a 1-D id tensor.
fn check_id_vector(op: &'static str, ids: &Tensor) -> Result<()> {
    check_id_dtype(op, ids)?;
    if ids.rank() != 1 {
        return Err(Error::BadShape {
            op,
            shape: ids.shape().to_vec(),
            msg: "ids must be 1-D".into(),
        });
    }
    Ok(())
}

/// Error unless `t` holds floats (the ops that add values).
fn check_float(op: &'static str, t: &Tensor) -> Result<()> {
    if t.dtype().is_float() {
        return Ok(());
    }
    Err(Error::UnsupportedDType {
        op,
        dtype: t.dtype(),
        device: t.device().name(),
    })
}

/// Error unless `index` has the rank of `of` and `index.shape[d] ≤ of.shape[d]` for every `d`
/// (except `skip`) — PyTorch's rule for gather/scatter_add.
fn check_index_fits(
    op: &'static str,
    of: &Tensor,
    index: &Tensor,
    skip: Option<usize>,
) -> Result<()> {
    let ok = index.rank() == of.rank()
        && (0..of.rank()).all(|d| Some(d) == skip || index.shape()[d] <= of.shape()[d]);
    if !ok {
        return Err(Error::ShapeMismatch {
            op,
            lhs: of.shape().to_vec(),
            rhs: index.shape().to_vec(),
        });
    }
    Ok(())
}

impl Tensor {
    /// Entries of `dim` picked by the 1-D ids (u32/i64): the result has `ids.len()` entries
    /// along `dim`. Repeated ids are allowed; their gradients add up.
    pub fn index_select(&self, ids: &Tensor, dim: isize) -> Result<Tensor> {
        const OP: &str = "index_select";
        self.check_same_device(OP, ids)?;
        check_id_vector(OP, ids)?;
        let d = self.layout().dim(OP, dim)?;
        let buf = {
            let (s, i) = (self.read(), ids.read());
            self.device().index_select(s.view(), i.view(), d)?
        };
        let mut shape = self.shape().to_vec();
        shape[d] = ids.elem_count();
        Tensor::from_op(buf, &shape, self.device(), &[self, ids], || {
            Box::new(IndexSelectBackward(d))
        })
    }

    /// Embedding lookup: rows of the table `[V, D]` at ids of any shape → `[…ids, D]`.
    pub fn embedding(&self, ids: &Tensor) -> Result<Tensor> {
        const OP: &str = "embedding";
        self.check_rank(OP, 2)?;
        check_id_dtype(OP, ids)?;
        let flat = ids.flatten_all()?;
        let rows = self.index_select(&flat, 0).map_err(|e| match e {
            Error::IndexOutOfRange { index, size, .. } => Error::IndexOutOfRange {
                op: OP,
                index,
                size,
            },
            other => other,
        })?;
        let shape = [ids.shape(), &[self.shape()[1]]].concat();
        rows.reshape(&shape)
    }

    /// `self` with the slices of `src` along `dim` added at the 1-D `ids`
    /// (`out[…, ids[j], …] += src[…, j, …]`; repeated ids accumulate).
    pub fn index_add(&self, ids: &Tensor, src: &Tensor, dim: isize) -> Result<Tensor> {
        const OP: &str = "index_add";
        self.check_same_device(OP, ids)?;
        self.check_same_device(OP, src)?;
        check_id_vector(OP, ids)?;
        check_float(OP, self)?;
        self.check_same_dtype(OP, src)?;
        let d = self.layout().dim(OP, dim)?;
        let fits = src.rank() == self.rank()
            && (0..self.rank()).all(|i| {
                src.shape()[i]
                    == if i == d {
                        ids.elem_count()
                    } else {
                        self.shape()[i]
                    }
            });
        if !fits {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: self.shape().to_vec(),
                rhs: src.shape().to_vec(),
            });
        }
        let buf = {
            let (t, i, s) = (self.read(), ids.read(), src.read());
            self.device().index_add(t.view(), i.view(), s.view(), d)?
        };
        Tensor::from_op(buf, self.shape(), self.device(), &[self, ids, src], || {
            Box::new(IndexAddBackward(d))
        })
    }

    /// `out[p] = self[p with coordinate dim := index[p]]` for every position p of `index`
    /// (PyTorch `gather`): `index` has the rank of `self` and fits inside it except along `dim`.
    pub fn gather(&self, index: &Tensor, dim: isize) -> Result<Tensor> {
        const OP: &str = "gather";
        self.check_same_device(OP, index)?;
        check_id_dtype(OP, index)?;
        let d = self.layout().dim(OP, dim)?;
        check_index_fits(OP, self, index, Some(d))?;
        let buf = {
            let (s, i) = (self.read(), index.read());
            self.device().gather(s.view(), i.view(), d)?
        };
        Tensor::from_op(buf, index.shape(), self.device(), &[self, index], || {
            Box::new(GatherBackward(d))
        })
    }

    /// `self` with `out[p with coordinate dim := index[p]] += src[p]` for every position p of
    /// `index` (PyTorch `scatter_add`): `index` fits inside `src`, and inside `self` except
    /// along `dim`.
    pub fn scatter_add(&self, index: &Tensor, src: &Tensor, dim: isize) -> Result<Tensor> {
        const OP: &str = "scatter_add";
        self.check_same_device(OP, index)?;
        self.check_same_device(OP, src)?;
        check_id_dtype(OP, index)?;
        check_float(OP, self)?;
        self.check_same_dtype(OP, src)?;
        let d = self.layout().dim(OP, dim)?;
        check_index_fits(OP, self, index, Some(d))?;
        check_index_fits(OP, src, index, None)?;
        let buf = {
            let (t, i, s) = (self.read(), index.read(), src.read());
            self.device().scatter_add(t.view(), i.view(), s.view(), d)?
        };
        Tensor::from_op(
            buf,
            self.shape(),
            self.device(),
            &[self, index, src],
            || Box::new(ScatterAddBackward(d)),
        )
    }

    /// `self` zero-padded at the end of every dimension up to `shape` (each `≥` the current).
    fn pad_end_to(&self, shape: &[usize]) -> Result<Tensor> {
        let mut t = self.clone();
        for (d, &want) in shape.iter().enumerate() {
            let have = t.shape()[d];
            if have < want {
                let mut zs = t.shape().to_vec();
                zs[d] = want - have;
                let zeros = Tensor::zeros(&zs, t.dtype(), t.device())?;
                t = Tensor::cat(&[t, zeros], d as isize)?;
            }
        }
        Ok(t)
    }
}

/// y = src[ids] along dim ⇒ dsrc = index_add(0, ids, dy).
struct IndexSelectBackward(usize);
impl BackwardOp for IndexSelectBackward {
    fn name(&self) -> &'static str {
        "index_select"
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        _: &Tensor,
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (src, ids) = (&inputs[0], &inputs[1]);
        let dsrc = needs[0]
            .then(|| {
                Tensor::zeros(src.shape(), g.dtype(), g.device())?.index_add(
                    ids,
                    g,
                    self.0 as isize,
                )
            })
            .transpose()?;
        Ok(vec![dsrc, None])
    }
}

/// y = dst + scatter(src at ids) ⇒ ddst = dy, dsrc = dy[ids].
struct IndexAddBackward(usize);
impl BackwardOp for IndexAddBackward {
    fn name(&self) -> &'static str {
        "index_add"
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        _: &Tensor,
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let ids = &inputs[1];
        let dsrc = needs[2]
            .then(|| g.index_select(ids, self.0 as isize))
            .transpose()?;
        Ok(vec![needs[0].then(|| g.clone()), None, dsrc])
    }
}

/// y = gather(src, index) ⇒ dsrc = scatter_add(0, index, dy).
struct GatherBackward(usize);
impl BackwardOp for GatherBackward {
    fn name(&self) -> &'static str {
        "gather"
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        _: &Tensor,
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (src, index) = (&inputs[0], &inputs[1]);
        let dsrc = needs[0]
            .then(|| {
                Tensor::zeros(src.shape(), g.dtype(), g.device())?.scatter_add(
                    index,
                    g,
                    self.0 as isize,
                )
            })
            .transpose()?;
        Ok(vec![dsrc, None])
    }
}

/// y = dst + scatter(src at index) ⇒ ddst = dy, dsrc = gather(dy, index) at the positions
/// `index` covers and 0 where `src` is larger than `index`.
struct ScatterAddBackward(usize);
impl BackwardOp for ScatterAddBackward {
    fn name(&self) -> &'static str {
        "scatter_add"
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        _: &Tensor,
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (index, src) = (&inputs[1], &inputs[2]);
        let dsrc = needs[2]
            .then(|| g.gather(index, self.0 as isize)?.pad_end_to(src.shape()))
            .transpose()?;
        Ok(vec![needs[0].then(|| g.clone()), None, dsrc])
    }
}
