//! (kernel family not yet implemented)
use crate::engine::device::*;
use crate::engine::error::*;
use crate::engine::storage::DeviceBuffer;
#[allow(unused)]
fn nyi(op: &'static str) -> Error {
    Error::Unsupported {
        op,
        device: "cpu".into(),
    }
}
#[allow(unused)]
pub fn adamw_step(
    param: &mut dyn DeviceBuffer,
    grad: View,
    m: &mut dyn DeviceBuffer,
    v: &mut dyn DeviceBuffer,
    hp: &AdamWParams,
) -> Result<()> {
    Err(nyi("x"))
}
