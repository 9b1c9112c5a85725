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
pub fn softmax(src: View) -> Result<Buffer> {
    Err(nyi("x"))
}
#[allow(unused)]
pub fn log_softmax(src: View) -> Result<Buffer> {
    Err(nyi("x"))
}
#[allow(unused)]
pub fn layer_norm(x: View, w: View, b: Option<View>, eps: f32) -> Result<Buffer> {
    Err(nyi("x"))
}
#[allow(unused)]
pub fn rms_norm(x: View, w: View, eps: f32) -> Result<Buffer> {
    Err(nyi("x"))
}
