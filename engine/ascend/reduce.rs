//! Reductions over one dimension on the Ascend device through `osum_reduce_f32`
//! (kernels/ascend/reduce.cpp): sum, max, min (f32 out) and argmax (u32 out), the dimension
//! kept with size 1 by the caller's shape. Float inputs are made dense f32 on the device.

use super::operands::{dense_f32, gm_bytes};
use super::AscendDevice;
use crate::engine::device::{Buffer, ReduceOp, View};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::kernels::{self, nn::ReduceKernelOp};

const KERNEL: &str = "osum_reduce_f32";

/// Reduce `src` over `dim`.
pub fn reduce(dev: &AscendDevice, op: ReduceOp, src: View, dim: usize) -> Result<Buffer> {
    let name = op.name();
    let shape = src.shape();
    if dim >= shape.len() {
        return Err(Error::DimOutOfRange {
            op: name,
            dim: dim as isize,
            rank: shape.len(),
        });
    }
    let (outer, n, inner) = (
        shape[..dim].iter().product::<usize>(),
        shape[dim],
        shape[dim + 1..].iter().product::<usize>(),
    );
    let (kop, out_dtype) = match op {
        ReduceOp::Sum => (ReduceKernelOp::Sum, DType::F32),
        ReduceOp::Max => (ReduceKernelOp::Max, DType::F32),
        ReduceOp::Min => (ReduceKernelOp::Min, DType::F32),
        ReduceOp::Argmax => (ReduceKernelOp::Argmax, DType::U32),
    };
    let count = outer * inner;
    let out = dev.alloc(name, out_dtype, count)?;
    if count == 0 {
        return Ok(Box::new(out));
    }
    if n == 0 {
        // Like the CPU: an empty sum is 0, max/min of nothing are -inf/+inf, argmax 0.
        let fill: f32 = match op {
            ReduceOp::Sum => 0.0,
            ReduceOp::Max => f32::NEG_INFINITY,
            ReduceOp::Min => f32::INFINITY,
            ReduceOp::Argmax => 0.0,
        };
        let bytes: Vec<u8> = (0..count)
            .flat_map(|_| {
                if op == ReduceOp::Argmax {
                    0u32.to_le_bytes()
                } else {
                    fill.to_le_bytes()
                }
            })
            .collect();
        out.mem()
            .write(0, &bytes)
            .map_err(|e| dev.backend(name, e))?;
        return Ok(Box::new(out));
    }
    let x = dense_f32(dev, name, &src)?;
    let kerr = |e: kernels::KernelError| dev.backend(name, e);
    kernels::nn::reduce_f32(
        dev.stream(),
        kop,
        (outer, n, inner),
        x.gm(KERNEL).map_err(kerr)?,
        gm_bytes(dev, name, KERNEL, out.mem(), 0, count * 4)?,
    )
    .map_err(kerr)?;
    Ok(Box::new(out))
}
