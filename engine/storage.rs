//! Storage: a device buffer behind an `Arc`, shared by every view of it.
//!
//! The buffer is opaque to the engine (`dyn DeviceBuffer`); only its device can read it.
//! `HostBuffer` is the one host-side representation used to move data in and out of any device
//! and is also the CPU device's own buffer type.

use super::dtype::{DType, WithDType};
use half::{bf16, f16};
use std::any::Any;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

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
