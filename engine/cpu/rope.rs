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
pub fn rope(x: View, cos: View, sin: View, style: RopeStyle) -> Result<Buffer> {
    Err(nyi("x"))
}
