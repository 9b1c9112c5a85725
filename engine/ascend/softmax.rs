//! Softmax and log-softmax over the last dimension on the Ascend device, through
//! `osum_softmax_f32` (kernels/ascend/softmax.cpp) and `osum_log_softmax_f32`
//! (kernels/ascend/log_softmax.cpp). Both kernels read contiguous rows: a strided or broadcast
//! input is made dense f32 on the device first (the copy kernel).

use super::operands::{dense_f32, require_f32};
use super::AscendDevice;
use crate::engine::device::{Buffer, View};
use crate::engine::dtype::DType;
use crate::engine::error::Result;
use crate::ffi::Stream;
use crate::kernels::{self, nn, GmF32, KernelResult, LaunchStats};

/// A row-wise kernel's launcher: `(stream, rows, cols, x, y)`.
type RowKernel = fn(&Stream, usize, usize, GmF32, GmF32) -> KernelResult<LaunchStats>;

/// Softmax of each last-dimension row.
pub fn softmax(dev: &AscendDevice, src: View) -> Result<Buffer> {
    by_rows(
        dev,
        src,
        "softmax",
        "osum_softmax_f32",
        kernels::softmax_f32,
    )
}

/// `x − logΣexp(x)` of each last-dimension row.
pub fn log_softmax(dev: &AscendDevice, src: View) -> Result<Buffer> {
    by_rows(
        dev,
        src,
        "log_softmax",
        "osum_log_softmax_f32",
        nn::log_softmax_f32,
    )
}

/// Run `launch` over the rows of `src` (f32) into a new dense buffer of its size.
fn by_rows(
    dev: &AscendDevice,
    src: View,
    op: &'static str,
    kernel: &'static str,
    launch: RowKernel,
) -> Result<Buffer> {
    require_f32(dev, op, &src)?;
    let n = src.layout.elem_count();
    let cols = src.shape().last().copied().unwrap_or(1);
    let out = dev.alloc(op, DType::F32, n)?;
    if n == 0 || cols == 0 {
        return Ok(Box::new(out));
    }
    let x = dense_f32(dev, op, &src)?;
    let kerr = |e: kernels::KernelError| dev.backend(op, e);
    launch(
        dev.stream(),
        n / cols,
        cols,
        x.gm(kernel).map_err(kerr)?,
        GmF32::new(kernel, out.mem(), 0, n).map_err(kerr)?,
    )
    .map_err(kerr)?;
    Ok(Box::new(out))
}
