//! Indexing kernels: index_select (embedding lookup) and its adjoint index_add, gather and its
//! adjoint scatter_add (PyTorch semantics), and concat.
//!
//! Ids are u32 or i64. Every id is checked against the size of the indexed dimension before
//! anything is read or written, so a bad id is an [`Error::IndexOutOfRange`] naming the op,
//! never a panic or a silent wrap. Value kernels (index_add, scatter_add) compute in f32 and
//! return the destination's float dtype; selection kernels copy elements of any dtype.

use super::elementwise::PAR_THRESHOLD;
use super::memory::{boxed, contiguous, f32_values, host_slice, id_values};
use crate::engine::device::{Buffer, View};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::engine::layout::{contiguous_strides, Layout};
use crate::engine::storage::{HostBuffer, HostElem};
use crate::with_host_slice;
use half::{bf16, f16};
use rayon::prelude::*;

/// Error unless every id lies in `0..size`.
fn check_ids(op: &'static str, ids: &[i64], size: usize) -> Result<()> {
    match ids.iter().find(|&&i| i < 0 || i as u64 >= size as u64) {
        Some(&index) => Err(Error::IndexOutOfRange { op, index, size }),
        None => Ok(()),
    }
}

/// `shape` seen as `[outer, shape[dim], inner]`.
fn around(shape: &[usize], dim: usize) -> (usize, usize, usize) {
    (
        shape[..dim].iter().product(),
        shape[dim],
        shape[dim + 1..].iter().product(),
    )
}

/// Error unless `dim` is a dimension of `v`.
fn check_dim(op: &'static str, v: &View, dim: usize) -> Result<()> {
    if dim >= v.layout.rank() {
        return Err(Error::DimOutOfRange {
            op,
            dim: dim as isize,
            rank: v.layout.rank(),
        });
    }
    Ok(())
}

/// Error unless the two shapes have the same rank and agree everywhere except at `dim`, where
/// `rhs` must have `rhs_dim` entries when given.
fn check_same_except(
    op: &'static str,
    lhs: &[usize],
    rhs: &[usize],
    dim: usize,
    rhs_dim: Option<usize>,
) -> Result<()> {
    let ok = lhs.len() == rhs.len()
        && dim < rhs.len()
        && rhs_dim.is_none_or(|n| rhs[dim] == n)
        && (0..lhs.len()).all(|d| d == dim || lhs[d] == rhs[d]);
    if !ok {
        return Err(Error::ShapeMismatch {
            op,
            lhs: lhs.to_vec(),
            rhs: rhs.to_vec(),
        });
    }
    Ok(())
}

/// f32 results back in the destination's float dtype.
fn narrow_to(dtype: DType, v: Vec<f32>) -> HostBuffer {
    match dtype {
        DType::F16 => HostBuffer::F16(v.into_iter().map(f16::from_f32).collect()),
        DType::BF16 => HostBuffer::BF16(v.into_iter().map(bf16::from_f32).collect()),
        _ => HostBuffer::F32(v),
    }
}

/// Error unless `dst` and `src` share a float dtype (the value kernels add them).
fn check_float_pair(op: &'static str, dst: &View, src: &View) -> Result<()> {
    let (a, b) = (dst.dtype(), src.dtype());
    if a != b {
        return Err(Error::DTypeMismatch { op, lhs: a, rhs: b });
    }
    if !a.is_float() {
        return Err(Error::UnsupportedDType {
            op,
            dtype: a,
            device: "cpu".into(),
        });
    }
    Ok(())
}

// ---- index_select / index_add ----------------------------------------------------------------

/// `out[o, j, i] = src[o, ids[j], i]` with src seen as `[outer, size, inner]`: whole `inner`
/// runs are copied, so an embedding lookup is one memcpy per id.
pub fn index_select(src: View, ids: View, dim: usize) -> Result<Buffer> {
    const OP: &str = "index_select";
    check_dim(OP, &src, dim)?;
    if ids.layout.rank() != 1 {
        return Err(Error::BadShape {
            op: OP,
            shape: ids.shape().to_vec(),
            msg: "ids must be 1-D".into(),
        });
    }
    let idv = id_values(OP, &ids)?;
    let (outer, size, inner) = around(src.shape(), dim);
    check_ids(OP, &idv, size)?;
    fn select<T: Copy + Default + Send + Sync>(
        src: &[T],
        (outer, size, inner): (usize, usize, usize),
        ids: &[i64],
    ) -> Vec<T> {
        let n = ids.len();
        let mut out = vec![T::default(); outer * n * inner];
        if inner == 0 {
            return out;
        }
        let row = |(r, dst): (usize, &mut [T])| {
            let (o, j) = (r / n, r % n);
            let from = (o * size + ids[j] as usize) * inner;
            dst.copy_from_slice(&src[from..from + inner]);
        };
        if out.len() >= PAR_THRESHOLD {
            out.par_chunks_mut(inner).enumerate().for_each(row);
        } else {
            out.chunks_mut(inner).enumerate().for_each(row);
        }
        out
    }
    let h = host_slice(&src)?;
    let out = with_host_slice!(h, x => {
        HostBuffer::from_vec(select(&contiguous(x, src.layout), (outer, size, inner), &idv))
    });
    Ok(boxed(out))
}

/// `out = dst; out[o, ids[j], i] += src[o, j, i]` (repeated ids accumulate). Parallel over
/// `outer` slabs, which never share a destination element.
pub fn index_add(dst: View, ids: View, src: View, dim: usize) -> Result<Buffer> {
    const OP: &str = "index_add";
    check_dim(OP, &dst, dim)?;
    check_float_pair(OP, &dst, &src)?;
    if ids.layout.rank() != 1 {
        return Err(Error::BadShape {
            op: OP,
            shape: ids.shape().to_vec(),
            msg: "ids must be 1-D".into(),
        });
    }
    let idv = id_values(OP, &ids)?;
    check_same_except(OP, dst.shape(), src.shape(), dim, Some(idv.len()))?;
    let (outer, size, inner) = around(dst.shape(), dim);
    check_ids(OP, &idv, size)?;
    let mut out = f32_values(OP, &dst)?.into_owned();
    let s = f32_values(OP, &src)?;
    let n = idv.len();
    if inner > 0 && size > 0 {
        let slab = |(o, d): (usize, &mut [f32])| {
            for (j, &id) in idv.iter().enumerate() {
                let from = &s[(o * n + j) * inner..(o * n + j + 1) * inner];
                let to = &mut d[id as usize * inner..(id as usize + 1) * inner];
                to.iter_mut().zip(from).for_each(|(t, &f)| *t += f);
            }
        };
        if outer > 1 && outer * n * inner >= PAR_THRESHOLD {
            out.par_chunks_mut(size * inner).enumerate().for_each(slab);
        } else {
            out.chunks_mut(size * inner).enumerate().for_each(slab);
        }
    }
    Ok(boxed(narrow_to(dst.dtype(), out)))
}

// ---- gather / scatter_add --------------------------------------------------------------------

/// For every position of `index` (row-major), the offset in a row-major tensor of `shape` of
/// that position with coordinate `dim` set to 0. Positions beyond `shape` never occur: the
/// caller checked `index.shape[d] ≤ shape[d]` for `d ≠ dim`.
fn bases(index_shape: &[usize], shape: &[usize], dim: usize) -> Vec<usize> {
    let mut strides = contiguous_strides(shape);
    strides[dim] = 0;
    Layout::new(index_shape.to_vec(), strides, 0)
        .offsets()
        .collect()
}

/// Error unless `index` has the rank of `of` and fits inside it (except along `dim` when
/// `except_dim`).
fn check_fits(
    op: &'static str,
    index: &[usize],
    of: &[usize],
    dim: usize,
    except_dim: bool,
) -> Result<()> {
    let ok = index.len() == of.len()
        && (0..of.len()).all(|d| (except_dim && d == dim) || index[d] <= of[d]);
    if !ok {
        return Err(Error::ShapeMismatch {
            op,
            lhs: of.to_vec(),
            rhs: index.to_vec(),
        });
    }
    Ok(())
}

/// `out[p] = src[p with coordinate dim := index[p]]` for every position p of `index`.
pub fn gather(src: View, index: View, dim: usize) -> Result<Buffer> {
    const OP: &str = "gather";
    check_dim(OP, &src, dim)?;
    check_fits(OP, index.shape(), src.shape(), dim, true)?;
    let idv = id_values(OP, &index)?;
    let size = src.shape()[dim];
    check_ids(OP, &idv, size)?;
    let step = contiguous_strides(src.shape())[dim];
    let base = bases(index.shape(), src.shape(), dim);
    fn pick<T: Copy>(src: &[T], base: &[usize], ids: &[i64], step: usize) -> Vec<T> {
        base.iter()
            .zip(ids)
            .map(|(&b, &i)| src[b + i as usize * step])
            .collect()
    }
    let h = host_slice(&src)?;
    let out = with_host_slice!(h, x => {
        HostBuffer::from_vec(pick(&contiguous(x, src.layout), &base, &idv, step))
    });
    Ok(boxed(out))
}

/// `out = dst; out[p with coordinate dim := index[p]] += src[p]` for every position p of
/// `index` (repeated targets accumulate, so this runs on one thread).
pub fn scatter_add(dst: View, index: View, src: View, dim: usize) -> Result<Buffer> {
    const OP: &str = "scatter_add";
    check_dim(OP, &dst, dim)?;
    check_float_pair(OP, &dst, &src)?;
    check_fits(OP, index.shape(), dst.shape(), dim, true)?;
    check_fits(OP, index.shape(), src.shape(), dim, false)?;
    let idv = id_values(OP, &index)?;
    check_ids(OP, &idv, dst.shape()[dim])?;
    let mut out = f32_values(OP, &dst)?.into_owned();
    let s = f32_values(OP, &src)?;
    let step = contiguous_strides(dst.shape())[dim];
    let to = bases(index.shape(), dst.shape(), dim);
    let from = Layout::new(index.shape().to_vec(), contiguous_strides(src.shape()), 0);
    for ((&t, &i), f) in to.iter().zip(&idv).zip(from.offsets()) {
        out[t + i as usize * step] += s[f];
    }
    Ok(boxed(narrow_to(dst.dtype(), out)))
}

// ---- concat ----------------------------------------------------------------------------------

/// Concatenate along `dim`: for each `outer` index, each part's contiguous `[size_p · inner]`
/// block is copied in turn. Any dtype; all parts share it and every other dimension.
pub fn concat(parts: &[View], dim: usize) -> Result<Buffer> {
    const OP: &str = "concat";
    let first = parts
        .first()
        .ok_or_else(|| Error::invalid(OP, "needs at least one part"))?;
    check_dim(OP, first, dim)?;
    for p in parts {
        check_same_except(OP, first.shape(), p.shape(), dim, None)?;
        if p.dtype() != first.dtype() {
            return Err(Error::DTypeMismatch {
                op: OP,
                lhs: first.dtype(),
                rhs: p.dtype(),
            });
        }
    }
    fn cat<T: HostElem>(parts: &[View], dim: usize) -> Result<HostBuffer> {
        let (outer, _, inner) = around(parts[0].shape(), dim);
        let mut blocks = Vec::with_capacity(parts.len());
        for p in parts {
            let x = host_slice(p)?.as_slice::<T>().ok_or(Error::DTypeMismatch {
                op: OP,
                lhs: T::DTYPE,
                rhs: p.dtype(),
            })?;
            blocks.push((contiguous(x, p.layout), p.shape()[dim] * inner));
        }
        let total: usize = blocks.iter().map(|(_, b)| b).sum();
        let mut out = Vec::with_capacity(outer * total);
        for o in 0..outer {
            for (x, b) in &blocks {
                out.extend_from_slice(&x[o * b..(o + 1) * b]);
            }
        }
        Ok(HostBuffer::from_vec(out))
    }
    let out = match first.dtype() {
        DType::F32 => cat::<f32>(parts, dim)?,
        DType::F16 => cat::<f16>(parts, dim)?,
        DType::BF16 => cat::<bf16>(parts, dim)?,
        DType::U32 => cat::<u32>(parts, dim)?,
        DType::I64 => cat::<i64>(parts, dim)?,
    };
    Ok(boxed(out))
}
