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
pub fn matmul(lhs: View, rhs: View) -> Result<Buffer> {
    Err(nyi("matmul"))
}
