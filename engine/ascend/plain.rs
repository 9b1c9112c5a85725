//! Plain data ops on the Ascend device: strided copies (`copy_strided`, `copy_into`, `concat`
//! through `osum_copy_strided`), dtype casts (`osum_cast`, any pair of f32/f16/bf16/u32/i64)
//! and elementwise unary functions (`osum_unary_f32`, every [`UnaryOp`], on f32 or half
//! inputs). Cases without a kernel (strided views of more than 8 dims) are errors naming them.

use super::memory::AscendBuffer;
use super::operands::dense_f32;
use super::AscendDevice;
use crate::engine::device::{Buffer, UnaryOp, View};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::engine::layout::Layout;
use crate::engine::storage::DeviceBuffer;
use crate::kernels::plain::{self, ElemKind, StridedSide, COPY_MAX_RANK};
use crate::kernels::{self, GmF32};

/// Copy `src` (read through its layout) into `dst` through `dst_layout` (same shape) with the
/// gather kernel; a contiguous-to-contiguous copy is one device-to-device memcpy.
pub(crate) fn copy_layout(
    dev: &AscendDevice,
    op: &'static str,
    src: &View,
    dst: &AscendBuffer,
    dst_layout: &Layout,
) -> Result<()> {
    let buf = dev.buffer(op, src)?;
    let size = buf.dtype().size_in_bytes();
    if src.layout.elem_count() == 0 {
        return Ok(());
    }
    if let (Some((s0, s1)), Some((d0, _))) =
        (src.layout.contiguous_range(), dst_layout.contiguous_range())
    {
        return dst
            .mem()
            .copy_from(d0 * size, buf.mem(), s0 * size, (s1 - s0) * size)
            .map_err(|e| dev.backend(op, e));
    }
    // Rank 0 is always contiguous, so rank ≥ 1 here.
    if src.layout.rank() > COPY_MAX_RANK {
        return Err(dev.unsupported_case(
            op,
            format!(
                "a strided view of rank {} > {COPY_MAX_RANK}",
                src.layout.rank()
            ),
        ));
    }
    plain::copy_strided(
        dev.stream(),
        src.shape(),
        size,
        StridedSide {
            mem: buf.mem(),
            strides: src.layout.strides(),
            offset: src.layout.offset(),
        },
        StridedSide {
            mem: dst.mem(),
            strides: dst_layout.strides(),
            offset: dst_layout.offset(),
        },
    )
    .map_err(|e| dev.backend(op, e))?;
    Ok(())
}

/// Contiguous copy of a view (any dtype).
pub fn copy_strided(dev: &AscendDevice, src: View) -> Result<Buffer> {
    const OP: &str = "copy";
    let dtype = dev.buffer(OP, &src)?.dtype();
    let out = dev.alloc(OP, dtype, src.layout.elem_count())?;
    copy_layout(dev, OP, &src, &out, &Layout::contiguous(src.shape()))?;
    Ok(Box::new(out))
}

/// `dst[dst_layout] = src` in place (KV cache appends).
pub fn copy_into(
    dev: &AscendDevice,
    dst: &mut dyn DeviceBuffer,
    dst_layout: &Layout,
    src: View,
) -> Result<()> {
    const OP: &str = "copy_into";
    let d = dst.as_any().downcast_ref::<AscendBuffer>().ok_or_else(|| {
        Error::invalid(OP, format!("destination does not belong to {}", dev.name))
    })?;
    if d.dtype() != src.dtype() {
        return Err(Error::DTypeMismatch {
            op: OP,
            lhs: d.dtype(),
            rhs: src.dtype(),
        });
    }
    copy_layout(dev, OP, &src, d, dst_layout)
}

/// Concatenation along `dim`: each part is copied into its slice of the contiguous output.
pub fn concat(dev: &AscendDevice, parts: &[View], dim: usize) -> Result<Buffer> {
    const OP: &str = "concat";
    let first = parts
        .first()
        .ok_or_else(|| Error::invalid(OP, "needs at least one part"))?;
    let mut shape = first.shape().to_vec();
    if dim >= shape.len() {
        return Err(Error::invalid(
            OP,
            format!("dim {dim} of a rank-{} tensor", shape.len()),
        ));
    }
    for p in parts {
        let same_other = p.shape().len() == shape.len()
            && p.shape()
                .iter()
                .zip(&shape)
                .enumerate()
                .all(|(i, (a, b))| i == dim || a == b);
        if !same_other {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: first.shape().to_vec(),
                rhs: p.shape().to_vec(),
            });
        }
        if p.dtype() != first.dtype() {
            return Err(Error::DTypeMismatch {
                op: OP,
                lhs: first.dtype(),
                rhs: p.dtype(),
            });
        }
    }
    shape[dim] = parts.iter().map(|p| p.shape()[dim]).sum();
    let out_layout = Layout::contiguous(&shape);
    let out = dev.alloc(OP, first.dtype(), out_layout.elem_count())?;
    let mut at = 0;
    for p in parts {
        let slice = Layout::new(
            p.shape().to_vec(),
            out_layout.strides().to_vec(),
            at * out_layout.strides()[dim],
        );
        copy_layout(dev, OP, p, &out, &slice)?;
        at += p.shape()[dim];
    }
    Ok(Box::new(out))
}

fn elem_kind(d: DType) -> ElemKind {
    match d {
        DType::F32 => ElemKind::F32,
        DType::F16 => ElemKind::F16,
        DType::BF16 => ElemKind::BF16,
        DType::U32 => ElemKind::U32,
        DType::I64 => ElemKind::I64,
    }
}

/// Contiguous copy converted to `dtype` by the cast kernel (a strided view is gathered first; a
/// same-dtype cast is a copy). Half ↔ integer goes through f32 in two launches: half → f32 is
/// exact, and f32 → f16/bf16 rounds the integer once more — the same value as the CPU's
/// direct rounding for every integer below 2²⁴ (larger ones can differ in the last bf16 bit).
pub fn cast(dev: &AscendDevice, src: View, dtype: DType) -> Result<Buffer> {
    const OP: &str = "cast";
    if src.dtype() == dtype {
        return copy_strided(dev, src);
    }
    let (from, to) = (elem_kind(src.dtype()), elem_kind(dtype));
    let integer = |k: ElemKind| matches!(k, ElemKind::U32 | ElemKind::I64);
    let half = |k: ElemKind| matches!(k, ElemKind::F16 | ElemKind::BF16);
    if (half(from) && (integer(to) || half(to))) || (integer(from) && half(to)) {
        let wide = cast(dev, src, DType::F32)?;
        let dense = Layout::contiguous(src.shape());
        return cast(dev, View::new(&*wide, &dense), dtype);
    }
    let n = src.layout.elem_count();
    let out = dev.alloc(OP, dtype, n)?;
    if n == 0 {
        return Ok(Box::new(out));
    }
    let gathered;
    let (mem, off) = match src.layout.contiguous_range() {
        Some((s, _)) => (dev.buffer(OP, &src)?.mem(), s),
        None => {
            gathered = copy_strided(dev, src)?;
            let b = gathered
                .as_any()
                .downcast_ref::<AscendBuffer>()
                .expect("the Ascend device returns AscendBuffers");
            (b.mem(), 0)
        }
    };
    plain::cast(dev.stream(), n, (mem, off, from), (out.mem(), to))
        .map_err(|e| dev.backend(OP, e))?;
    Ok(Box::new(out))
}

/// Elementwise `op(src)`: f32 (a strided view is gathered first), or f16/bf16 widened to f32
/// by the cast kernel, computed in f32 and narrowed back (the CPU device's semantics).
pub fn unary(dev: &AscendDevice, op: UnaryOp, src: View) -> Result<Buffer> {
    let name = op.name();
    let dtype = src.dtype();
    if !dtype.is_float() {
        return Err(Error::UnsupportedDType {
            op: name,
            dtype,
            device: dev.name.to_string(),
        });
    }
    let n = src.layout.elem_count();
    let out = dev.alloc(name, DType::F32, n)?;
    if n == 0 {
        return Ok(Box::new(out));
    }
    let kerr = |e: kernels::KernelError| dev.backend(name, e);
    let x = dense_f32(dev, name, &src)?;
    plain::unary_f32(
        dev.stream(),
        op,
        x.gm("osum_unary_f32").map_err(kerr)?,
        GmF32::new("osum_unary_f32", out.mem(), 0, n).map_err(kerr)?,
    )
    .map_err(kerr)?;
    if dtype == DType::F32 {
        return Ok(Box::new(out));
    }
    let dense = Layout::contiguous(src.shape());
    cast(dev, View::new(&out, &dense), dtype)
}
