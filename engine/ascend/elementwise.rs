//! Elementwise binary ops and selection on the Ascend device: arithmetic through
//! `osum_binary_f32` (kernels/ascend/elementwise.cpp), comparisons through `osum_compare`
//! (compare.cpp) and `where_cond` through `osum_where` (where.cpp).
//!
//! Kernels read dense ranges: broadcast (stride-0) or strided operands are first made dense by
//! the device's copy kernel, f16/bf16 operands widened by its cast kernel ([`dense_f32`]). As on
//! the CPU device, arithmetic on half operands computes in f32 and narrows the result back to
//! the operands' dtype, and comparisons of half operands compare their (exact) f32 values.

use super::operands::{dense, dense_f32};
use super::AscendDevice;
use crate::engine::device::{BinaryOp, Buffer, Device, View};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::engine::layout::Layout;
use crate::kernels::plain::{self, CompareKernelOp, ElemKind};
use crate::kernels::{self, BinaryKernelOp, GmF32};

/// The arithmetic kernel op for an engine op (`None` for comparisons).
fn arith_op(op: BinaryOp) -> Option<BinaryKernelOp> {
    match op {
        BinaryOp::Add => Some(BinaryKernelOp::Add),
        BinaryOp::Mul => Some(BinaryKernelOp::Mul),
        BinaryOp::Sub => Some(BinaryKernelOp::Sub),
        BinaryOp::Div => Some(BinaryKernelOp::Div),
        BinaryOp::Maximum => Some(BinaryKernelOp::Max),
        BinaryOp::Minimum => Some(BinaryKernelOp::Min),
        _ => None,
    }
}

/// The comparison kernel op for an engine op (`None` for arithmetic).
fn compare_op(op: BinaryOp) -> Option<CompareKernelOp> {
    match op {
        BinaryOp::Eq => Some(CompareKernelOp::Eq),
        BinaryOp::Ne => Some(CompareKernelOp::Ne),
        BinaryOp::Lt => Some(CompareKernelOp::Lt),
        BinaryOp::Le => Some(CompareKernelOp::Le),
        BinaryOp::Gt => Some(CompareKernelOp::Gt),
        BinaryOp::Ge => Some(CompareKernelOp::Ge),
        _ => None,
    }
}

/// `lhs (op) rhs` for two views of the same shape and dtype.
pub fn binary(dev: &AscendDevice, op: BinaryOp, lhs: View, rhs: View) -> Result<Buffer> {
    let name = op.name();
    if lhs.dtype() != rhs.dtype() {
        return Err(Error::DTypeMismatch {
            op: name,
            lhs: lhs.dtype(),
            rhs: rhs.dtype(),
        });
    }
    if lhs.shape() != rhs.shape() {
        return Err(Error::ShapeMismatch {
            op: name,
            lhs: lhs.shape().to_vec(),
            rhs: rhs.shape().to_vec(),
        });
    }
    match (arith_op(op), compare_op(op)) {
        (Some(kop), _) => arith(dev, name, kop, lhs, rhs),
        (_, Some(cop)) => compare(dev, name, cop, lhs, rhs),
        (None, None) => Err(Error::Unsupported {
            op: name,
            device: dev.name.to_string(),
        }),
    }
}

fn arith(
    dev: &AscendDevice,
    name: &'static str,
    kop: BinaryKernelOp,
    lhs: View,
    rhs: View,
) -> Result<Buffer> {
    let dtype = lhs.dtype();
    if !dtype.is_float() {
        return Err(Error::UnsupportedDType {
            op: name,
            dtype,
            device: dev.name.to_string(),
        });
    }
    let n = lhs.layout.elem_count();
    let out = dev.alloc(name, DType::F32, n)?;
    if n == 0 {
        return Ok(Box::new(out));
    }
    let (a, b) = (dense_f32(dev, name, &lhs)?, dense_f32(dev, name, &rhs)?);
    let k = |e: kernels::KernelError| dev.backend(name, e);
    let x = a.gm("osum_binary_f32").map_err(k)?;
    let y = b.gm("osum_binary_f32").map_err(k)?;
    let z = GmF32::new("osum_binary_f32", out.mem(), 0, n).map_err(k)?;
    kernels::binary_f32(dev.stream(), kop, x, y, z).map_err(k)?;
    if dtype == DType::F32 {
        return Ok(Box::new(out));
    }
    let dense = Layout::contiguous(lhs.shape());
    dev.cast(View::new(&out, &dense), dtype)
}

fn compare(
    dev: &AscendDevice,
    name: &'static str,
    cop: CompareKernelOp,
    lhs: View,
    rhs: View,
) -> Result<Buffer> {
    let n = lhs.layout.elem_count();
    let out = dev.alloc(name, DType::U32, n)?;
    if n == 0 {
        return Ok(Box::new(out));
    }
    let kind = match lhs.dtype() {
        DType::U32 => ElemKind::U32,
        DType::I64 => ElemKind::I64,
        _ => ElemKind::F32,
    };
    let (a, b) = if kind == ElemKind::F32 {
        (dense_f32(dev, name, &lhs)?, dense_f32(dev, name, &rhs)?)
    } else {
        (dense(dev, name, &lhs)?, dense(dev, name, &rhs)?)
    };
    let k = |e: kernels::KernelError| dev.backend(name, e);
    const KERNEL: &str = "osum_compare";
    let x = a.gm_bytes(KERNEL, kind.size()).map_err(k)?;
    let y = b.gm_bytes(KERNEL, kind.size()).map_err(k)?;
    let z = kernels::nn::GmBytes::new(KERNEL, out.mem(), 0, n * 4).map_err(k)?;
    plain::compare(dev.stream(), cop, kind, (x, y, z)).map_err(k)?;
    Ok(Box::new(out))
}

/// `cond ? on_true : on_false` elementwise; `cond` is u32, the data any dtype (both the same).
pub fn where_cond(dev: &AscendDevice, cond: View, on_true: View, on_false: View) -> Result<Buffer> {
    const OP: &str = "where_cond";
    const KERNEL: &str = "osum_where";
    if cond.dtype() != DType::U32 {
        return Err(Error::DTypeMismatch {
            op: OP,
            lhs: cond.dtype(),
            rhs: DType::U32,
        });
    }
    if on_true.dtype() != on_false.dtype() {
        return Err(Error::DTypeMismatch {
            op: OP,
            lhs: on_true.dtype(),
            rhs: on_false.dtype(),
        });
    }
    for v in [&on_true, &on_false] {
        if v.shape() != cond.shape() {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: cond.shape().to_vec(),
                rhs: v.shape().to_vec(),
            });
        }
    }
    let dtype = on_true.dtype();
    let size = dtype.size_in_bytes();
    let n = cond.layout.elem_count();
    let out = dev.alloc(OP, dtype, n)?;
    if n == 0 {
        return Ok(Box::new(out));
    }
    let (c, t, f) = (
        dense(dev, OP, &cond)?,
        dense(dev, OP, &on_true)?,
        dense(dev, OP, &on_false)?,
    );
    let k = |e: kernels::KernelError| dev.backend(OP, e);
    plain::where_select(
        dev.stream(),
        size,
        (
            c.gm_bytes(KERNEL, 4).map_err(k)?,
            t.gm_bytes(KERNEL, size).map_err(k)?,
            f.gm_bytes(KERNEL, size).map_err(k)?,
            kernels::nn::GmBytes::new(KERNEL, out.mem(), 0, n * size).map_err(k)?,
        ),
    )
    .map_err(k)?;
    Ok(Box::new(out))
}
