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
pub fn lora_linear(
    x: View,
    w: View,
    b: Option<View>,
    a: View,
    bm: View,
    scale: f32,
) -> Result<Buffer> {
    Err(nyi("lora_linear"))
}
