//! (kernel family not yet implemented)
use crate::engine::device::*;
use crate::engine::error::*;
#[allow(unused)]
fn nyi(op: &'static str) -> Error {
    Error::Unsupported {
        op,
        device: "cpu".into(),
    }
}
#[allow(unused)]
pub fn conv2d(x: View, w: View, b: Option<View>, p: &Conv2dParams) -> Result<Buffer> {
    Err(nyi("x"))
}
#[allow(unused)]
pub fn im2col(x: View, kernel: (usize, usize), p: &Conv2dParams) -> Result<Buffer> {
    Err(nyi("x"))
}
#[allow(unused)]
pub fn col2im(
    cols: View,
    channels: usize,
    input_hw: (usize, usize),
    kernel: (usize, usize),
    p: &Conv2dParams,
) -> Result<Buffer> {
    Err(nyi("x"))
}
