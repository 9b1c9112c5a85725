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
pub fn attention(
    q: View,
    k: View,
    v: View,
    mask: Option<View>,
    p: &AttentionParams,
) -> Result<Buffer> {
    Err(nyi("x"))
}
#[allow(unused)]
pub fn attention_backward(
    q: View,
    k: View,
    v: View,
    mask: Option<View>,
    dout: View,
    p: &AttentionParams,
) -> Result<(Buffer, Buffer, Buffer)> {
    Err(nyi("x"))
}
