//! Storage: a device buffer behind an `Arc`, shared by every view of it.
//!
//! The buffer is opaque to the engine (`dyn DeviceBuffer`); only its device can read it.
//! `HostBuffer` is the one host-side representation used to move data in and out of any device
//! and is also the CPU device's own buffer type. [`MappedHost`] is host data borrowed from a
//! read-only memory map (a weight file): the CPU device keeps it as it is (zero-copy), other
//! devices upload it like a `HostBuffer`. [`HostSlice`] borrows either kind as a typed slice.

use super::dtype::{DType, WithDType};
use half::{bf16, f16};
use std::any::Any;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A buffer owned by some device. Devices downcast it to their concrete type.
pub trait DeviceBuffer: Send + Sync + std::fmt::Debug {
    /// Element type.
    fn dtype(&self) -> DType;
    /// Number of elements.
    fn len(&self) -> usize;
    /// True when the buffer holds no elements.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// For downcasting by the owning device.
    fn as_any(&self) -> &dyn Any;
    /// For in-place updates by the owning device.
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// The memory-mapped file region the buffer borrows, if it does (zero-copy weights).
    fn mapped(&self) -> Option<MappedRegion> {
        None
    }
}

/// Typed host memory: the data format for host round-trips and the CPU device's buffer.
#[derive(Debug, Clone, PartialEq)]
pub enum HostBuffer {
    /// f32 values.
    F32(Vec<f32>),
    /// f16 values.
    F16(Vec<f16>),
    /// bf16 values.
    BF16(Vec<bf16>),
    /// u32 ids.
    U32(Vec<u32>),
    /// i64 ids.
    I64(Vec<i64>),
}

/// Applies `$body` with `$v` bound to the inner `Vec` of whichever variant `$buf` is.
#[macro_export]
#[doc(hidden)]
macro_rules! with_host_buffer {
    ($buf:expr, $v:ident => $body:expr) => {
        match $buf {
            $crate::engine::HostBuffer::F32($v) => $body,
            $crate::engine::HostBuffer::F16($v) => $body,
            $crate::engine::HostBuffer::BF16($v) => $body,
            $crate::engine::HostBuffer::U32($v) => $body,
            $crate::engine::HostBuffer::I64($v) => $body,
        }
    };
}

impl HostBuffer {
    /// `len` zeros of `dtype`.
    pub fn zeros(dtype: DType, len: usize) -> Self {
        match dtype {
            DType::F32 => HostBuffer::F32(vec![0.0; len]),
            DType::F16 => HostBuffer::F16(vec![f16::ZERO; len]),
            DType::BF16 => HostBuffer::BF16(vec![bf16::ZERO; len]),
            DType::U32 => HostBuffer::U32(vec![0; len]),
            DType::I64 => HostBuffer::I64(vec![0; len]),
        }
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        match self {
            HostBuffer::F32(_) => DType::F32,
            HostBuffer::F16(_) => DType::F16,
            HostBuffer::BF16(_) => DType::BF16,
            HostBuffer::U32(_) => DType::U32,
            HostBuffer::I64(_) => DType::I64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        with_host_buffer!(self, v => v.len())
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every element widened to f64 (for tests and reference loops).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        with_host_buffer!(self, v => v.iter().map(|x| x.to_f64()).collect())
    }

    /// Build from a typed vector.
    pub fn from_vec<T: HostElem>(v: Vec<T>) -> Self {
        T::wrap(v)
    }

    /// Borrow as a typed slice if the dtype matches.
    pub fn as_slice<T: HostElem>(&self) -> Option<&[T]> {
        T::peek(self)
    }

    /// Borrow mutably as a typed slice if the dtype matches.
    pub fn as_mut_slice<T: HostElem>(&mut self) -> Option<&mut [T]> {
        T::peek_mut(self)
    }

    /// Take the typed vector if the dtype matches.
    pub fn into_vec<T: HostElem>(self) -> Option<Vec<T>> {
        T::unwrap(self)
    }
}

/// Element types that have a [`HostBuffer`] variant.
pub trait HostElem: WithDType {
    /// Wrap a vector.
    fn wrap(v: Vec<Self>) -> HostBuffer;
    /// Unwrap a vector of this type.
    fn unwrap(b: HostBuffer) -> Option<Vec<Self>>;
    /// Borrow a slice of this type.
    fn peek(b: &HostBuffer) -> Option<&[Self]>;
    /// Borrow a mutable slice of this type.
    fn peek_mut(b: &mut HostBuffer) -> Option<&mut [Self]>;
    /// The slice of a [`HostSlice`] of this type.
    fn peek_slice(s: HostSlice<'_>) -> Option<&[Self]>;
}

macro_rules! host_elem {
    ($t:ty, $variant:ident) => {
        impl HostElem for $t {
            fn wrap(v: Vec<Self>) -> HostBuffer {
                HostBuffer::$variant(v)
            }
            fn unwrap(b: HostBuffer) -> Option<Vec<Self>> {
                match b {
                    HostBuffer::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn peek(b: &HostBuffer) -> Option<&[Self]> {
                match b {
                    HostBuffer::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn peek_mut(b: &mut HostBuffer) -> Option<&mut [Self]> {
                match b {
                    HostBuffer::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn peek_slice(s: HostSlice<'_>) -> Option<&[Self]> {
                match s {
                    HostSlice::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}
host_elem!(f32, F32);
host_elem!(f16, F16);
host_elem!(bf16, BF16);
host_elem!(u32, U32);
host_elem!(i64, I64);

impl DeviceBuffer for HostBuffer {
    fn dtype(&self) -> DType {
        HostBuffer::dtype(self)
    }
    fn len(&self) -> usize {
        HostBuffer::len(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Read-only bytes shared by every tensor that borrows from them: a memory-mapped weight file.
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// `len` elements of `dtype` borrowed from [`SharedBytes`] at byte `offset`: a tensor's data
/// inside a memory-mapped weight file. Built only when the bytes can be read in place as the
/// element type (in range, aligned, little-endian host); see [`MappedHost::new`].
#[derive(Clone)]
pub struct MappedHost {
    bytes: SharedBytes,
    offset: usize,
    len: usize,
    dtype: DType,
}

impl std::fmt::Debug for MappedHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedHost")
            .field("offset", &self.offset)
            .field("len", &self.len)
            .field("dtype", &self.dtype)
            .finish_non_exhaustive()
    }
}

impl MappedHost {
    /// Borrow `len` elements of `dtype` at byte `offset` of `bytes`, or `None` when that is not
    /// possible in place: the range is outside the bytes, the address is not aligned to the
    /// element size (e.g. a safetensors header whose length is not a multiple of 8), or the
    /// host is big-endian (every weight format stores little-endian values).
    pub fn new(bytes: SharedBytes, offset: usize, len: usize, dtype: DType) -> Option<MappedHost> {
        let size = dtype.size_in_bytes();
        let end = len.checked_mul(size)?.checked_add(offset)?;
        let all = (*bytes).as_ref();
        if cfg!(target_endian = "big") || end > all.len() {
            return None;
        }
        let addr = all.as_ptr() as usize + offset;
        if !addr.is_multiple_of(size) {
            return None;
        }
        Some(MappedHost {
            bytes,
            offset,
            len,
            dtype,
        })
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The borrowed bytes.
    pub fn bytes(&self) -> &[u8] {
        let n = self.len * self.dtype.size_in_bytes();
        &(*self.bytes).as_ref()[self.offset..self.offset + n]
    }

    /// The elements as a typed slice, without copying.
    pub fn slice(&self) -> HostSlice<'_> {
        let b = self.bytes();
        // SAFETY: `new` checked that the range lies inside the shared bytes (kept alive by
        // `self.bytes`, read-only) and that its address is aligned to the element size; every
        // bit pattern is a valid f32 / f16 / bf16 / u32 / i64, and the host is little-endian
        // like the stored values.
        unsafe fn cast<T>(b: &[u8], len: usize) -> &[T] {
            unsafe { std::slice::from_raw_parts(b.as_ptr().cast::<T>(), len) }
        }
        unsafe {
            match self.dtype {
                DType::F32 => HostSlice::F32(cast(b, self.len)),
                DType::F16 => HostSlice::F16(cast(b, self.len)),
                DType::BF16 => HostSlice::BF16(cast(b, self.len)),
                DType::U32 => HostSlice::U32(cast(b, self.len)),
                DType::I64 => HostSlice::I64(cast(b, self.len)),
            }
        }
    }

    /// An owned copy (for devices whose memory is not the host's).
    pub fn to_host(&self) -> HostBuffer {
        self.slice().to_host()
    }
}

/// Typed host elements borrowed from a [`HostBuffer`] or a [`MappedHost`].
#[derive(Debug, Clone, Copy)]
pub enum HostSlice<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// f16 values.
    F16(&'a [f16]),
    /// bf16 values.
    BF16(&'a [bf16]),
    /// u32 ids.
    U32(&'a [u32]),
    /// i64 ids.
    I64(&'a [i64]),
}

/// Applies `$body` with `$v` bound to the inner slice of whichever variant `$s` is.
#[macro_export]
#[doc(hidden)]
macro_rules! with_host_slice {
    ($s:expr, $v:ident => $body:expr) => {
        match $s {
            $crate::engine::HostSlice::F32($v) => $body,
            $crate::engine::HostSlice::F16($v) => $body,
            $crate::engine::HostSlice::BF16($v) => $body,
            $crate::engine::HostSlice::U32($v) => $body,
            $crate::engine::HostSlice::I64($v) => $body,
        }
    };
}

impl<'a> HostSlice<'a> {
    /// Element type.
    pub fn dtype(&self) -> DType {
        match self {
            HostSlice::F32(_) => DType::F32,
            HostSlice::F16(_) => DType::F16,
            HostSlice::BF16(_) => DType::BF16,
            HostSlice::U32(_) => DType::U32,
            HostSlice::I64(_) => DType::I64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        with_host_slice!(self, v => v.len())
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The typed slice if the dtype matches.
    pub fn as_slice<T: HostElem>(self) -> Option<&'a [T]> {
        T::peek_slice(self)
    }

    /// An owned copy.
    pub fn to_host(&self) -> HostBuffer {
        with_host_slice!(*self, v => HostBuffer::from_vec(v.to_vec()))
    }

    /// Address of the first element.
    pub fn as_ptr_addr(&self) -> usize {
        with_host_slice!(*self, v => v.as_ptr() as usize)
    }
}

impl HostBuffer {
    /// Borrow as a [`HostSlice`].
    pub fn slice(&self) -> HostSlice<'_> {
        match self {
            HostBuffer::F32(v) => HostSlice::F32(v),
            HostBuffer::F16(v) => HostSlice::F16(v),
            HostBuffer::BF16(v) => HostSlice::BF16(v),
            HostBuffer::U32(v) => HostSlice::U32(v),
            HostBuffer::I64(v) => HostSlice::I64(v),
        }
    }
}

/// Where a buffer's memory is, for checks that weights stay in their file's map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappedRegion {
    /// Address of the first element.
    pub addr: usize,
    /// Length in bytes.
    pub bytes: usize,
    /// True once a kernel that reads owned vectors made a private copy of the data.
    pub copied: bool,
}

/// A device buffer shared by every tensor view of it. The lock exists for the few in-place ops
/// (the optimizer step); ordinary ops only take read guards.
#[derive(Debug)]
pub struct Storage {
    buffer: RwLock<Box<dyn DeviceBuffer>>,
}

impl Storage {
    /// Wrap a freshly produced device buffer.
    pub fn new(buffer: Box<dyn DeviceBuffer>) -> Self {
        Storage {
            buffer: RwLock::new(buffer),
        }
    }

    /// Shared access for reading.
    pub fn read(&self) -> RwLockReadGuard<'_, Box<dyn DeviceBuffer>> {
        // A poisoned lock only means another thread panicked mid-write; the data is still a
        // well-formed buffer, so keep going rather than propagate the panic.
        self.buffer.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Exclusive access for in-place updates.
    pub fn write(&self) -> RwLockWriteGuard<'_, Box<dyn DeviceBuffer>> {
        self.buffer.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In range and aligned: borrowed in place; misaligned or out of range: refused (the
    /// readers then copy).
    #[test]
    fn mapped_host_borrows_only_aligned_in_range_bytes() {
        let mut raw = vec![0u8; 64];
        let base = raw.as_ptr() as usize;
        let at = (4 - base % 4) % 4;
        raw[at..at + 8].copy_from_slice(&[1.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat());
        let bytes: SharedBytes = Arc::new(raw);
        let m = MappedHost::new(bytes.clone(), at, 2, DType::F32).unwrap();
        assert_eq!(m.slice().as_slice::<f32>().unwrap(), [1.5, -2.0]);
        assert_eq!(m.slice().as_ptr_addr(), base + at);
        assert_eq!(m.to_host(), HostBuffer::F32(vec![1.5, -2.0]));
        assert!(MappedHost::new(bytes.clone(), at + 1, 2, DType::F32).is_none());
        assert!(MappedHost::new(bytes.clone(), 60, 2, DType::F32).is_none());
        assert!(MappedHost::new(bytes, usize::MAX, 2, DType::F32).is_none());
    }
}
