//! Elementwise binary ops on the Ascend device through `osum_binary_f32`
//! (kernels/ascend/elementwise.cpp).

use super::operands::dense_f32;
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

/// `lhs (op) rhs` for f32 views of the same shape. Broadcast (stride-0) or strided operands are
/// first made dense by the device's copy kernel ([`dense_f32`]): the binary kernel reads dense
/// ranges only.
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
    if lhs.shape() != rhs.shape() {
        return Err(Error::ShapeMismatch {
            op: name,
            lhs: lhs.shape().to_vec(),
            rhs: rhs.shape().to_vec(),
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
    Ok(Box::new(out))
}
