//! Indexing on the Ascend device (kernels/ascend/index.cpp): index_select (embedding lookup, any
//! dtype) and its adjoint index_add (f32), gather (any dtype) and its adjoint scatter_add (f32),
//! with the CPU device's semantics and shape rules (engine/cpu/index.rs). Ids are checked on the
//! host before any kernel runs ([`super::operands::checked_ids`]); the accumulating ops start
//! from a device-to-device copy of `dst`.

use super::memory::AscendBuffer;
use super::operands::{checked_ids, dense_f32, gm_bytes};
use super::AscendDevice;
use crate::engine::device::{Buffer, Device, View};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::kernels::{self, nn, GmF32};

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

fn around(shape: &[usize], dim: usize) -> (usize, usize, usize) {
    (
        shape[..dim].iter().product(),
        shape[dim],
        shape[dim + 1..].iter().product(),
    )
}

fn check_ids_1d(op: &'static str, ids: &View) -> Result<()> {
    if ids.layout.rank() != 1 {
        return Err(Error::BadShape {
            op,
            shape: ids.shape().to_vec(),
            msg: "ids must be 1-D".into(),
        });
    }
    Ok(())
}

/// Error unless `dst` and `src` are both f32 (the accumulating kernels add in f32).
fn check_f32_pair(dev: &AscendDevice, op: &'static str, dst: &View, src: &View) -> Result<()> {
    let (a, b) = (dst.dtype(), src.dtype());
    if a != b {
        return Err(Error::DTypeMismatch { op, lhs: a, rhs: b });
    }
    if a != DType::F32 {
        return Err(Error::UnsupportedDType {
            op,
            dtype: a,
            device: dev.name.to_string(),
        });
    }
    Ok(())
}

/// Index shape fits `of` (same rank; ≤ everywhere except `dim` when `except_dim`).
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

/// A contiguous same-dtype copy of any view, made on the device (the selection kernels move
/// elements of any dtype, so no cast).
fn dense_any(dev: &AscendDevice, v: &View) -> Result<Buffer> {
    dev.copy_strided(*v)
}

fn ascend(b: &Buffer) -> &AscendBuffer {
    b.as_any()
        .downcast_ref::<AscendBuffer>()
        .expect("copy_strided on this device returns an AscendBuffer")
}

/// `out[o, j, i] = src[o, ids[j], i]` with src seen as `[outer, size, inner]`.
pub fn index_select(dev: &AscendDevice, src: View, ids: View, dim: usize) -> Result<Buffer> {
    const OP: &str = "index_select";
    const KERNEL: &str = "osum_index_select";
    check_dim(OP, &src, dim)?;
    check_ids_1d(OP, &ids)?;
    let (outer, size, inner) = around(src.shape(), dim);
    let n = ids.layout.elem_count();
    let idb = checked_ids(dev, OP, &ids, size, None)?;
    let es = src.dtype().size_in_bytes();
    let out = dev.alloc(OP, src.dtype(), outer * n * inner)?;
    if outer * n * inner == 0 {
        return Ok(Box::new(out));
    }
    let owned;
    let (mem, off) = match src.layout.contiguous_range() {
        Some((start, _)) => (dev.buffer(OP, &src)?.mem(), start * es),
        None => {
            owned = dense_any(dev, &src)?;
            (ascend(&owned).mem(), 0)
        }
    };
    let kerr = |e: kernels::KernelError| dev.backend(OP, e);
    nn::index_select(
        dev.stream(),
        (outer, size, inner),
        n,
        es,
        gm_bytes(dev, OP, KERNEL, mem, off, outer * size * inner * es)?,
        gm_bytes(dev, OP, KERNEL, idb.mem(), 0, n * 4)?,
        gm_bytes(dev, OP, KERNEL, out.mem(), 0, outer * n * inner * es)?,
    )
    .map_err(kerr)?;
    Ok(Box::new(out))
}

/// A fresh f32 buffer holding a dense copy of `dst` (the accumulators' starting value).
fn start_from(dev: &AscendDevice, op: &'static str, dst: &View) -> Result<AscendBuffer> {
    let n = dst.layout.elem_count();
    let d = dense_f32(dev, op, dst)?;
    let out = dev.alloc(op, DType::F32, n)?;
    out.mem()
        .copy_from(0, d.mem(), d.start * 4, n * 4)
        .map_err(|e| dev.backend(op, e))?;
    Ok(out)
}

/// `out = dst; out[o, ids[j], i] += src[o, j, i]`.
pub fn index_add(
    dev: &AscendDevice,
    dst: View,
    ids: View,
    src: View,
    dim: usize,
) -> Result<Buffer> {
    const OP: &str = "index_add";
    const KERNEL: &str = "osum_index_add_f32";
    check_dim(OP, &dst, dim)?;
    check_f32_pair(dev, OP, &dst, &src)?;
    check_ids_1d(OP, &ids)?;
    let n = ids.layout.elem_count();
    let (ds, ss) = (dst.shape(), src.shape());
    let same =
        ds.len() == ss.len() && ss[dim] == n && (0..ds.len()).all(|d| d == dim || ds[d] == ss[d]);
    if !same {
        return Err(Error::ShapeMismatch {
            op: OP,
            lhs: ds.to_vec(),
            rhs: ss.to_vec(),
        });
    }
    let (outer, size, inner) = around(ds, dim);
    let idb = checked_ids(dev, OP, &ids, size, None)?;
    let out = start_from(dev, OP, &dst)?;
    if outer * n * inner == 0 {
        return Ok(Box::new(out));
    }
    let s = dense_f32(dev, OP, &src)?;
    let kerr = |e: kernels::KernelError| dev.backend(OP, e);
    nn::index_add_f32(
        dev.stream(),
        (outer, size, inner),
        n,
        s.gm(KERNEL).map_err(kerr)?,
        gm_bytes(dev, OP, KERNEL, idb.mem(), 0, n * 4)?,
        GmF32::new(KERNEL, out.mem(), 0, outer * size * inner).map_err(kerr)?,
    )
    .map_err(kerr)?;
    Ok(Box::new(out))
}

/// `out[p] = src[p with coordinate dim := index[p]]`.
pub fn gather(dev: &AscendDevice, src: View, index: View, dim: usize) -> Result<Buffer> {
    const OP: &str = "gather";
    const KERNEL: &str = "osum_gather";
    check_dim(OP, &src, dim)?;
    check_fits(OP, index.shape(), src.shape(), dim, true)?;
    let idb = checked_ids(dev, OP, &index, src.shape()[dim], None)?;
    let total = index.layout.elem_count();
    let es = src.dtype().size_in_bytes();
    let out = dev.alloc(OP, src.dtype(), total)?;
    if total == 0 {
        return Ok(Box::new(out));
    }
    if src.layout.rank() > nn::GATHER_MAX_RANK {
        return Err(dev.unsupported_case(
            OP,
            format!("rank {} > {}", src.layout.rank(), nn::GATHER_MAX_RANK),
        ));
    }
    let owned;
    let (mem, off) = match src.layout.contiguous_range() {
        Some((start, _)) => (dev.buffer(OP, &src)?.mem(), start * es),
        None => {
            owned = dense_any(dev, &src)?;
            (ascend(&owned).mem(), 0)
        }
    };
    let src_bytes = src.layout.elem_count() * es;
    nn::gather(
        dev.stream(),
        src.shape(),
        index.shape(),
        dim,
        es,
        gm_bytes(dev, OP, KERNEL, mem, off, src_bytes)?,
        gm_bytes(dev, OP, KERNEL, idb.mem(), 0, total * 4)?,
        gm_bytes(dev, OP, KERNEL, out.mem(), 0, total * es)?,
    )
    .map_err(|e| dev.backend(OP, e))?;
    Ok(Box::new(out))
}

/// `out = dst; out[p with coordinate dim := index[p]] += src[p]`.
pub fn scatter_add(
    dev: &AscendDevice,
    dst: View,
    index: View,
    src: View,
    dim: usize,
) -> Result<Buffer> {
    const OP: &str = "scatter_add";
    const KERNEL: &str = "osum_scatter_add_f32";
    check_dim(OP, &dst, dim)?;
    check_f32_pair(dev, OP, &dst, &src)?;
    check_fits(OP, index.shape(), dst.shape(), dim, true)?;
    check_fits(OP, index.shape(), src.shape(), dim, false)?;
    let idb = checked_ids(dev, OP, &index, dst.shape()[dim], None)?;
    let out = start_from(dev, OP, &dst)?;
    let total = index.layout.elem_count();
    if total == 0 {
        return Ok(Box::new(out));
    }
    if dst.layout.rank() > nn::GATHER_MAX_RANK {
        return Err(dev.unsupported_case(
            OP,
            format!("rank {} > {}", dst.layout.rank(), nn::GATHER_MAX_RANK),
        ));
    }
    let s = dense_f32(dev, OP, &src)?;
    let kerr = |e: kernels::KernelError| dev.backend(OP, e);
    nn::scatter_add_f32(
        dev.stream(),
        dst.shape(),
        index.shape(),
        src.shape(),
        dim,
        s.gm(KERNEL).map_err(kerr)?,
        gm_bytes(dev, OP, KERNEL, idb.mem(), 0, total * 4)?,
        GmF32::new(KERNEL, out.mem(), 0, dst.layout.elem_count()).map_err(kerr)?,
    )
    .map_err(kerr)?;
    Ok(Box::new(out))
}
