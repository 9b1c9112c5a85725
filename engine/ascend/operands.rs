//! Operand preparation shared by the Ascend ops: dense f32 inputs and host-checked ids.
//!
//! Kernels read dense ranges. A strided or non-f32 view is first made dense *on the device* by
//! the device's own `copy_strided` / `cast` kernels — composition of device ops, never a CPU
//! fallback; where those kernels do not take a case yet, their named error is what the caller
//! sees. Ids (u32 or i64) are downloaded, range-checked and re-uploaded as u32 so a bad id is an
//! [`Error::IndexOutOfRange`] naming the op before any kernel runs (a sync per indexing op: the
//! price of a precise error without device-side asserts).

use super::memory::AscendBuffer;
use super::AscendDevice;
use crate::engine::device::{Buffer, Device, View};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::engine::storage::HostBuffer;
use crate::ffi::DeviceMemory;
use crate::kernels::nn::GmBytes;
use crate::kernels::{self, GmF32};

/// A dense f32 range on the device: the view's own buffer when it already is one, else a
/// device-made contiguous f32 copy.
pub(crate) struct DenseF32<'a> {
    owned: Option<Buffer>,
    borrowed: Option<&'a AscendBuffer>,
    /// First element of the range in [`DenseF32::mem`].
    pub start: usize,
    /// Elements.
    pub len: usize,
}

impl DenseF32<'_> {
    /// The device memory holding the range.
    pub fn mem(&self) -> &DeviceMemory {
        match (&self.owned, self.borrowed) {
            // Checked in `dense_f32`: the device's own ops return AscendBuffers.
            (Some(b), _) => b
                .as_any()
                .downcast_ref::<AscendBuffer>()
                .expect("checked when made")
                .mem(),
            (None, Some(b)) => b.mem(),
            (None, None) => unreachable!("DenseF32 always holds a buffer"),
        }
    }
    /// The range as a kernel operand.
    pub fn gm(&self, kernel: &'static str) -> kernels::KernelResult<GmF32<'_>> {
        GmF32::new(kernel, self.mem(), self.start, self.len)
    }
}

/// `v` as a dense f32 range on `dev`.
pub(crate) fn dense_f32<'a>(
    dev: &AscendDevice,
    op: &'static str,
    v: &View<'a>,
) -> Result<DenseF32<'a>> {
    let len = v.layout.elem_count();
    if v.dtype() == DType::F32 {
        if let Some((start, _)) = v.layout.contiguous_range() {
            return Ok(DenseF32 {
                owned: None,
                borrowed: Some(dev.buffer(op, v)?),
                start,
                len,
            });
        }
    }
    if !v.dtype().is_float() {
        return Err(Error::UnsupportedDType {
            op,
            dtype: v.dtype(),
            device: dev.name.to_string(),
        });
    }
    let owned = if v.dtype() == DType::F32 {
        dev.copy_strided(*v)?
    } else {
        dev.cast(*v, DType::F32)?
    };
    if owned.as_any().downcast_ref::<AscendBuffer>().is_none() {
        return Err(Error::invalid(
            op,
            "a converted operand is not an Ascend buffer",
        ));
    }
    Ok(DenseF32 {
        owned: Some(owned),
        borrowed: None,
        start: 0,
        len,
    })
}

/// Sentinel for a cross-entropy row whose target is the ignore index.
pub(crate) const IGNORED: u32 = u32::MAX;

/// The ids of `v` (u32 or i64), checked to lie in `0..size` (or equal `ignore`, mapped to
/// [`IGNORED`]), uploaded as a u32 buffer.
pub(crate) fn checked_ids(
    dev: &AscendDevice,
    op: &'static str,
    v: &View,
    size: usize,
    ignore: Option<i64>,
) -> Result<AscendBuffer> {
    let host = dev.to_host(*v)?;
    let ids: Vec<i64> = match &host {
        HostBuffer::U32(x) => x.iter().map(|&i| i as i64).collect(),
        HostBuffer::I64(x) => x.clone(),
        other => {
            return Err(Error::UnsupportedDType {
                op,
                dtype: other.dtype(),
                device: dev.name.to_string(),
            })
        }
    };
    let checked: Vec<u32> = ids
        .into_iter()
        .map(|i| {
            if Some(i) == ignore {
                Ok(IGNORED)
            } else if i < 0 || i as u64 >= size as u64 || i as u64 >= IGNORED as u64 {
                Err(Error::IndexOutOfRange { op, index: i, size })
            } else {
                Ok(i as u32)
            }
        })
        .collect::<Result<_>>()?;
    let buf = dev.alloc(op, DType::U32, checked.len())?;
    let bytes: Vec<u8> = checked.iter().flat_map(|i| i.to_le_bytes()).collect();
    buf.mem().write(0, &bytes).map_err(|e| dev.backend(op, e))?;
    Ok(buf)
}

/// A whole buffer of `bytes` as a kernel operand.
pub(crate) fn gm_bytes<'a>(
    dev: &AscendDevice,
    op: &'static str,
    kernel: &'static str,
    mem: &'a DeviceMemory,
    offset: usize,
    bytes: usize,
) -> Result<GmBytes<'a>> {
    GmBytes::new(kernel, mem, offset, bytes).map_err(|e| dev.backend(op, e))
}

/// Error unless `v` has dtype f32 (for outputs the op defines as f32).
pub(crate) fn require_f32(dev: &AscendDevice, op: &'static str, v: &View) -> Result<()> {
    if v.dtype() != DType::F32 {
        return Err(Error::UnsupportedDType {
            op,
            dtype: v.dtype(),
            device: dev.name.to_string(),
        });
    }
    Ok(())
}
