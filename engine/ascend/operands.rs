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
use crate::engine::layout::Layout;
use crate::engine::storage::HostBuffer;
use crate::ffi::DeviceMemory;
use crate::kernels::nn::GmBytes;
use crate::kernels::{self, GmF32};

/// A dense range on the device: the view's own buffer when it already is one, else a
/// device-made contiguous copy (f32 when made by [`dense_f32`], the view's dtype when made by
/// [`dense`]).
pub(crate) struct Dense<'a> {
    owned: Option<Buffer>,
    borrowed: Option<&'a AscendBuffer>,
    /// First element of the range in [`Dense::mem`].
    pub start: usize,
    /// Elements.
    pub len: usize,
}

impl Dense<'_> {
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
            (None, None) => unreachable!("Dense always holds a buffer"),
        }
    }
    /// The range as a kernel operand of `elem_bytes`-byte elements.
    pub fn gm_bytes(
        &self,
        kernel: &'static str,
        elem_bytes: usize,
    ) -> kernels::KernelResult<GmBytes<'_>> {
        GmBytes::new(
            kernel,
            self.mem(),
            self.start * elem_bytes,
            self.len * elem_bytes,
        )
    }
    /// The range as an f32 kernel operand.
    pub fn gm(&self, kernel: &'static str) -> kernels::KernelResult<GmF32<'_>> {
        GmF32::new(kernel, self.mem(), self.start, self.len)
    }
}

/// `v` as a dense f32 range on `dev`.
pub(crate) fn dense_f32<'a>(
    dev: &AscendDevice,
    op: &'static str,
    v: &View<'a>,
) -> Result<Dense<'a>> {
    let len = v.layout.elem_count();
    if v.dtype() == DType::F32 {
        if let Some((start, _)) = v.layout.contiguous_range() {
            return Ok(Dense {
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
    Ok(Dense {
        owned: Some(owned),
        borrowed: None,
        start: 0,
        len,
    })
}

/// `v` as a dense range of its own dtype on `dev` (a strided or broadcast view is gathered by
/// the copy kernel).
pub(crate) fn dense<'a>(dev: &AscendDevice, op: &'static str, v: &View<'a>) -> Result<Dense<'a>> {
    let len = v.layout.elem_count();
    if let Some((start, _)) = v.layout.contiguous_range() {
        return Ok(Dense {
            owned: None,
            borrowed: Some(dev.buffer(op, v)?),
            start,
            len,
        });
    }
    Ok(Dense {
        owned: Some(dev.copy_strided(*v)?),
        borrowed: None,
        start: 0,
        len,
    })
}

/// An f16/bf16 view widened to f32 on the device by the cast kernel, keeping its layout so a
/// transposed weight stays a transposed view the cube path reads without a copy: the span the
/// layout reaches is converted and the same strides are read from it. A layout reaching more
/// than twice its elements (a narrow slice of a big tensor) is gathered first instead, so the
/// conversion never costs more than twice the view. `None` for an f32 view.
pub(crate) fn widened_f32(
    dev: &AscendDevice,
    op: &'static str,
    v: &View,
) -> Result<Option<(Buffer, Layout)>> {
    if v.dtype() == DType::F32 {
        return Ok(None);
    }
    if !v.dtype().is_float() {
        return Err(Error::UnsupportedDType {
            op,
            dtype: v.dtype(),
            device: dev.name.to_string(),
        });
    }
    let count = v.layout.elem_count();
    let (offset, end) = (v.layout.offset(), v.layout.max_index_exclusive());
    if count == 0 || end - offset > 2 * count {
        let wide = dev.cast(*v, DType::F32)?;
        return Ok(Some((wide, Layout::contiguous(v.shape()))));
    }
    let span = Layout::new(vec![end - offset], vec![1], offset);
    let wide = dev.cast(View::new(v.buf, &span), DType::F32)?;
    let layout = Layout::new(v.shape().to_vec(), v.layout.strides().to_vec(), 0);
    Ok(Some((wide, layout)))
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
