//! Kernel operands: a view as a dense f32 range of device memory.
//!
//! Our kernels read dense row-major f32. A contiguous f32 view is used in place; any other view
//! (strided, broadcast, f16/bf16 weights) is first made dense on the device by its own kernels
//! ([`Device::copy_strided`], [`Device::cast`]) — an explicit device-side step, never a CPU
//! fallback; when those kernels refuse the view, their named error is returned.

use super::memory::AscendBuffer;
use super::AscendDevice;
use crate::engine::device::{Buffer, Device, View};
use crate::engine::dtype::DType;
use crate::engine::error::Result;
use crate::kernels::{GmF32, KernelResult};

/// A dense f32 operand: borrowed from the view's buffer, or a device-made copy.
pub(crate) enum Dense<'a> {
    /// The view's own buffer, starting at element `offset`.
    Borrowed(&'a AscendBuffer, usize),
    /// A contiguous copy made on the device.
    Owned(Buffer),
}

impl Dense<'_> {
    /// The first `len` elements as a kernel range.
    pub(crate) fn gm(&self, kernel: &'static str, len: usize) -> KernelResult<GmF32<'_>> {
        match self {
            Dense::Borrowed(b, off) => GmF32::new(kernel, b.mem(), *off, len),
            Dense::Owned(b) => {
                let buf = b
                    .as_any()
                    .downcast_ref::<AscendBuffer>()
                    .expect("the Ascend device returns AscendBuffers");
                GmF32::new(kernel, buf.mem(), 0, len)
            }
        }
    }
}

/// `v` as dense row-major f32 on `dev` (see the module doc).
pub(crate) fn dense_f32<'a>(
    dev: &AscendDevice,
    op: &'static str,
    v: &View<'a>,
) -> Result<Dense<'a>> {
    let buf = dev.buffer(op, v)?;
    if v.dtype() == DType::F32 {
        if let Some((start, _)) = v.layout.contiguous_range() {
            return Ok(Dense::Borrowed(buf, start));
        }
        return Ok(Dense::Owned(dev.copy_strided(*v)?));
    }
    Ok(Dense::Owned(dev.cast(*v, DType::F32)?))
}
