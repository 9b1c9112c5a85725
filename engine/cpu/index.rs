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
pub fn index_select(src: View, ids: View, dim: usize) -> Result<Buffer> {
    Err(nyi("index_select"))
}
#[allow(unused)]
pub fn index_add(dst: View, ids: View, src: View, dim: usize) -> Result<Buffer> {
    Err(nyi("x"))
}
#[allow(unused)]
pub fn gather(src: View, index: View, dim: usize) -> Result<Buffer> {
    Err(nyi("x"))
}
#[allow(unused)]
pub fn scatter_add(dst: View, index: View, src: View, dim: usize) -> Result<Buffer> {
    Err(nyi("x"))
}
#[allow(unused)]
pub fn concat(parts: &[View], dim: usize) -> Result<Buffer> {
    Err(nyi("concat"))
}
