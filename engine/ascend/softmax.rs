//! Softmax over the last dimension on the Ascend device through `osum_softmax_f32`
//! (kernels/ascend/softmax.cpp). Contiguous f32 only; other layouts are refused by name.

use super::AscendDevice;
use crate::engine::device::{Buffer, View};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::kernels::{self, GmF32};

const OP: &str = "softmax";
const KERNEL: &str = "osum_softmax_f32";

/// Softmax of each last-dimension row.
pub fn softmax(dev: &AscendDevice, src: View) -> Result<Buffer> {
    if src.dtype() != DType::F32 {
        return Err(Error::UnsupportedDType {
            op: OP,
            dtype: src.dtype(),
            device: dev.name.to_string(),
        });
    }
    let Some((start, end)) = src.layout.contiguous_range() else {
        return Err(dev.unsupported_case(OP, "a strided input (contiguous f32 only)"));
    };
    let n = end - start;
    let out = dev.alloc(OP, DType::F32, n)?;
    let cols = src.shape().last().copied().unwrap_or(1);
    if n == 0 || cols == 0 {
        return Ok(Box::new(out));
    }
    let kerr = |e: kernels::KernelError| dev.backend(OP, e);
    let x = dev.buffer(OP, &src)?;
    kernels::softmax_f32(
        dev.stream(),
        n / cols,
        cols,
        GmF32::new(KERNEL, x.mem(), start, n).map_err(kerr)?,
        GmF32::new(KERNEL, out.mem(), 0, n).map_err(kerr)?,
    )
    .map_err(kerr)?;
    Ok(Box::new(out))
}
