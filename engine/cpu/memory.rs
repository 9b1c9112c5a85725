//! Host memory plumbing for the CPU device: its two buffer kinds, downcasts, strided copies,
//! casts, and the accessors every CPU kernel uses to read its inputs.
//!
//! A CPU buffer is either a [`HostBuffer`] (owned vectors) or a [`MappedBuffer`] (weights
//! borrowed from a memory-mapped file, zero-copy). [`host_slice`] reads both without copying;
//! the accessors below ([`f32_values`], [`contiguous`] users, casts, copies) and the kernels
//! that see weights (matmul's operands, index_select / gather, cat) go through it. [`host`]
//! serves kernels that match on owned vectors: for a mapped buffer it makes one private copy,
//! kept with the buffer and reported by [`DeviceBuffer::mapped`] (`copied`), so a test can
//! check that the weights of a model never take that path.

use crate::engine::device::{Buffer, View};
use crate::engine::dtype::{DType, WithDType};
use crate::engine::error::{Error, Result};
use crate::engine::layout::Layout;
use crate::engine::storage::{DeviceBuffer, HostBuffer, HostSlice, MappedHost, MappedRegion};
use crate::with_host_slice;
use half::{bf16, f16};
use std::any::Any;
use std::borrow::Cow;
use std::sync::OnceLock;

/// A CPU buffer borrowing its elements from a read-only memory map. It cannot be written:
/// in-place ops downcast to [`HostBuffer`] and refuse it.
#[derive(Debug)]
pub struct MappedBuffer {
    data: MappedHost,
    /// The owned copy made for a kernel that reads owned vectors ([`host`]), if one asked.
    owned: OnceLock<HostBuffer>,
}

impl MappedBuffer {
    /// Wrap borrowed data.
    pub fn new(data: MappedHost) -> MappedBuffer {
        MappedBuffer {
            data,
            owned: OnceLock::new(),
        }
    }
}

impl DeviceBuffer for MappedBuffer {
    fn dtype(&self) -> DType {
        self.data.dtype()
    }
    fn len(&self) -> usize {
        self.data.len()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn mapped(&self) -> Option<MappedRegion> {
        let b = self.data.bytes();
        Some(MappedRegion {
            addr: b.as_ptr() as usize,
            bytes: b.len(),
            copied: self.owned.get().is_some(),
        })
    }
}

fn foreign() -> Error {
    Error::invalid("cpu", "buffer does not belong to the cpu device")
}

/// The CPU buffer behind a view as owned vectors (error if the buffer belongs to another
/// device). A mapped buffer is copied once for this (see the module docs); prefer
/// [`host_slice`].
pub fn host<'a>(v: &View<'a>) -> Result<&'a HostBuffer> {
    let any = v.buf.as_any();
    if let Some(h) = any.downcast_ref::<HostBuffer>() {
        return Ok(h);
    }
    let m = any.downcast_ref::<MappedBuffer>().ok_or_else(foreign)?;
    Ok(m.owned.get_or_init(|| m.data.to_host()))
}

/// The elements of the CPU buffer behind a view, owned or mapped, borrowed without copying.
pub fn host_slice<'a>(v: &View<'a>) -> Result<HostSlice<'a>> {
    let any = v.buf.as_any();
    if let Some(h) = any.downcast_ref::<HostBuffer>() {
        return Ok(h.slice());
    }
    let m = any.downcast_ref::<MappedBuffer>().ok_or_else(foreign)?;
    Ok(match m.owned.get() {
        Some(h) => h.slice(),
        None => m.data.slice(),
    })
}

/// Box a host buffer as a device buffer.
pub fn boxed(b: HostBuffer) -> Buffer {
    Box::new(b)
}

/// Copy the elements a layout selects, in row-major order.
pub fn strided_copy<T: Copy>(src: &[T], layout: &Layout) -> Vec<T> {
    if let Some((start, end)) = layout.contiguous_range() {
        return src[start..end].to_vec();
    }
    // Copy whole rows when the innermost dimension is dense, otherwise element by element.
    let rank = layout.rank();
    if rank > 0 && layout.strides()[rank - 1] == 1 {
        let row = layout.shape()[rank - 1];
        let outer = Layout::new(
            layout.shape()[..rank - 1].to_vec(),
            layout.strides()[..rank - 1].to_vec(),
            layout.offset(),
        );
        let mut out = Vec::with_capacity(layout.elem_count());
        for o in outer.offsets() {
            out.extend_from_slice(&src[o..o + row]);
        }
        return out;
    }
    layout.offsets().map(|o| src[o]).collect()
}

/// Borrow the view's elements as a contiguous slice of `T`, copying only if strided.
pub fn contiguous<'a, T: Copy>(src: &'a [T], layout: &Layout) -> Cow<'a, [T]> {
    match layout.contiguous_range() {
        Some((s, e)) => Cow::Borrowed(&src[s..e]),
        None => Cow::Owned(strided_copy(src, layout)),
    }
}

/// The view's values as contiguous f32, widening f16/bf16. Errors for id dtypes.
pub fn f32_values<'a>(op: &'static str, v: &View<'a>) -> Result<Cow<'a, [f32]>> {
    let h = host_slice(v)?;
    Ok(match h {
        HostSlice::F32(x) => contiguous(x, v.layout),
        HostSlice::F16(x) => Cow::Owned(widen(&contiguous(x, v.layout))),
        HostSlice::BF16(x) => Cow::Owned(widen(&contiguous(x, v.layout))),
        _ => {
            return Err(Error::UnsupportedDType {
                op,
                dtype: h.dtype(),
                device: "cpu".into(),
            })
        }
    })
}

/// The view's f32 values, refusing any other dtype (for kernels whose inputs must be f32).
pub fn f32_only<'a>(op: &'static str, v: &View<'a>) -> Result<Cow<'a, [f32]>> {
    match host_slice(v)? {
        HostSlice::F32(x) => Ok(contiguous(x, v.layout)),
        other => Err(Error::UnsupportedDType {
            op,
            dtype: other.dtype(),
            device: "cpu".into(),
        }),
    }
}

/// The view's ids (u32 or i64) as contiguous i64. Errors for float dtypes.
pub fn id_values(op: &'static str, v: &View) -> Result<Vec<i64>> {
    match host_slice(v)? {
        HostSlice::U32(x) => Ok(contiguous(x, v.layout).iter().map(|&i| i as i64).collect()),
        HostSlice::I64(x) => Ok(contiguous(x, v.layout).into_owned()),
        other => Err(Error::UnsupportedDType {
            op,
            dtype: other.dtype(),
            device: "cpu".into(),
        }),
    }
}

/// f32 from any half type.
fn widen<T: WithDType>(x: &[T]) -> Vec<f32> {
    x.iter().map(|v| v.to_f64() as f32).collect()
}

/// Contiguous copy of a view, same dtype.
pub fn copy_strided(v: View) -> Result<Buffer> {
    let h = host_slice(&v)?;
    Ok(boxed(
        with_host_slice!(h, x => HostBuffer::from_vec(strided_copy(x, v.layout))),
    ))
}

/// Write `src` into the elements of `dst` that `dst_layout` selects.
pub fn copy_into(dst: &mut dyn DeviceBuffer, dst_layout: &Layout, src: View) -> Result<()> {
    let s = host_slice(&src)?;
    if dst.mapped().is_some() {
        return Err(Error::invalid(
            "copy_into",
            "the destination borrows a read-only memory-mapped weight file; copy the tensor first",
        ));
    }
    let d = dst
        .as_any_mut()
        .downcast_mut::<HostBuffer>()
        .ok_or_else(|| Error::invalid("copy_into", "buffer does not belong to the cpu device"))?;
    if dst_layout.max_index_exclusive() > d.len() {
        return Err(Error::invalid(
            "copy_into",
            "destination view exceeds its buffer",
        ));
    }
    let mismatch = Error::DTypeMismatch {
        op: "copy_into",
        lhs: d.dtype(),
        rhs: s.dtype(),
    };
    with_host_slice!(s, x => {
        let values = contiguous(x, src.layout);
        let out = d.as_mut_slice().ok_or(mismatch)?;
        for (o, &v) in dst_layout.offsets().zip(values.iter()) {
            out[o] = v;
        }
    });
    Ok(())
}

/// Contiguous copy converted to `dtype` (floats round to nearest; float→int truncates).
pub fn cast(v: View, dtype: DType) -> Result<Buffer> {
    let h = host_slice(&v)?;
    if h.dtype() == dtype {
        return copy_strided(v);
    }
    fn conv<S: WithDType, D: WithDType>(x: &[S]) -> Vec<D> {
        x.iter().map(|&s| D::from_f64(s.to_f64())).collect()
    }
    // f32 → half goes straight through half's f32 converters (round to nearest even, as
    // PyTorch and the Ascend cast kernel). Not through f64: half 2.7's `bf16::from_f64` rounds
    // some values just above a tie down (f32 0x3db0_8001 → bf16 0x3db0, not 0x3db1).
    if let HostSlice::F32(x) = h {
        let x = contiguous(x, v.layout);
        match dtype {
            DType::F16 => {
                return Ok(boxed(HostBuffer::F16(
                    x.iter().map(|&s| f16::from_f32(s)).collect(),
                )))
            }
            DType::BF16 => {
                return Ok(boxed(HostBuffer::BF16(
                    x.iter().map(|&s| bf16::from_f32(s)).collect(),
                )))
            }
            _ => {}
        }
    }
    let out = with_host_slice!(h, x => {
        let x = contiguous(x, v.layout);
        match dtype {
            // half → f32 is exact through f64.
            DType::F32 => HostBuffer::F32(conv(&x)),
            DType::F16 => HostBuffer::F16(conv::<_, f16>(&x)),
            DType::BF16 => HostBuffer::BF16(conv::<_, bf16>(&x)),
            DType::U32 => HostBuffer::U32(conv(&x)),
            DType::I64 => HostBuffer::I64(conv(&x)),
        }
    });
    Ok(boxed(out))
}
