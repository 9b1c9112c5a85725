//! Elementwise binary ops on the Ascend device through `osum_binary_f32`
//! (kernels/ascend/elementwise.cpp).

use super::AscendDevice;
use crate::engine::device::{BinaryOp, Buffer, View};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::kernels::{self, BinaryKernelOp, GmF32};

/// The kernel op for an engine op, if there is one.
fn kernel_op(op: BinaryOp) -> Option<BinaryKernelOp> {
    match op {
        BinaryOp::Add => Some(BinaryKernelOp::Add),
        BinaryOp::Mul => Some(BinaryKernelOp::Mul),
        BinaryOp::Sub => Some(BinaryKernelOp::Sub),
        BinaryOp::Maximum => Some(BinaryKernelOp::Max),
        _ => None,
    }
}

/// `lhs (op) rhs` for same-shape contiguous f32 views. Broadcast (stride-0) or strided operands
/// are refused by name: the kernel reads dense ranges only.
pub fn binary(dev: &AscendDevice, op: BinaryOp, lhs: View, rhs: View) -> Result<Buffer> {
    let name = op.name();
    let Some(kop) = kernel_op(op) else {
        return Err(Error::Unsupported {
            op: name,
            device: dev.name.to_string(),
        });
    };
    for v in [&lhs, &rhs] {
        if v.dtype() != DType::F32 {
            return Err(Error::UnsupportedDType {
                op: name,
                dtype: v.dtype(),
                device: dev.name.to_string(),
            });
        }
    }
    let (Some((ls, le)), Some((rs, _))) =
        (lhs.layout.contiguous_range(), rhs.layout.contiguous_range())
    else {
        return Err(dev.unsupported_case(name, "strided or broadcast operands (dense f32 only)"));
    };
    let n = le - ls;
    let out = dev.alloc(name, DType::F32, n)?;
    if n == 0 {
        return Ok(Box::new(out));
    }
    let (a, b) = (dev.buffer(name, &lhs)?, dev.buffer(name, &rhs)?);
    let k = |e: kernels::KernelError| dev.backend(name, e);
    let x = GmF32::new("osum_binary_f32", a.mem(), ls, n).map_err(k)?;
    let y = GmF32::new("osum_binary_f32", b.mem(), rs, n).map_err(k)?;
    let z = GmF32::new("osum_binary_f32", out.mem(), 0, n).map_err(k)?;
    kernels::binary_f32(dev.stream(), kop, x, y, z).map_err(k)?;
    Ok(Box::new(out))
}
