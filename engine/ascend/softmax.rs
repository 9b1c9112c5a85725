//! Softmax over the last dimension on the Ascend device through `osum_softmax_f32`
//! (kernels/ascend/softmax.cpp). The kernel reads contiguous rows: a strided or broadcast input
//! is made dense f32 on the device first (the copy kernel), as in log_softmax.rs.

use super::operands::{dense_f32, require_f32};
use super::AscendDevice;
use crate::engine::device::{Buffer, View};
use crate::engine::dtype::DType;
use crate::engine::error::Result;
use crate::kernels::{self, GmF32};

const OP: &str = "softmax";
const KERNEL: &str = "osum_softmax_f32";

/// Softmax of each last-dimension row.
pub fn softmax(dev: &AscendDevice, src: View) -> Result<Buffer> {
    require_f32(dev, OP, &src)?;
    let n = src.layout.elem_count();
    let cols = src.shape().last().copied().unwrap_or(1);
    let out = dev.alloc(OP, DType::F32, n)?;
    if n == 0 || cols == 0 {
        return Ok(Box::new(out));
    }
    let x = dense_f32(dev, OP, &src)?;
    let kerr = |e: kernels::KernelError| dev.backend(OP, e);
    kernels::softmax_f32(
        dev.stream(),
        n / cols,
        cols,
        x.gm(KERNEL).map_err(kerr)?,
        GmF32::new(KERNEL, out.mem(), 0, n).map_err(kerr)?,
    )
    .map_err(kerr)?;
    Ok(Box::new(out))
}
