//! Log-softmax over the last dimension on the Ascend device through `osum_log_softmax_f32`
//! (kernels/ascend/log_softmax.cpp). Input made dense f32 on the device first.

use super::operands::{dense_f32, require_f32};
use super::AscendDevice;
use crate::engine::device::{Buffer, View};
use crate::engine::dtype::DType;
use crate::engine::error::Result;
use crate::kernels::{self, nn, GmF32};

const OP: &str = "log_softmax";
const KERNEL: &str = "osum_log_softmax_f32";

/// `x − logΣexp(x)` of each last-dimension row.
pub fn log_softmax(dev: &AscendDevice, src: View) -> Result<Buffer> {
    require_f32(dev, OP, &src)?;
    let n = src.layout.elem_count();
    let cols = src.shape().last().copied().unwrap_or(1);
    let out = dev.alloc(OP, DType::F32, n)?;
    if n == 0 || cols == 0 {
        return Ok(Box::new(out));
    }
    let x = dense_f32(dev, OP, &src)?;
    let kerr = |e: kernels::KernelError| dev.backend(OP, e);
    nn::log_softmax_f32(
        dev.stream(),
        n / cols,
        cols,
        x.gm(KERNEL).map_err(kerr)?,
        GmF32::new(KERNEL, out.mem(), 0, n).map_err(kerr)?,
    )
    .map_err(kerr)?;
    Ok(Box::new(out))
}
