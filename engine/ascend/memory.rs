//! Device memory for the Ascend device: a caching allocator over `aclrtMalloc` and the buffer
//! type tensors hold.
//!
//! Why cache: `aclrtMalloc`/`aclrtFree` are slow and fragment device memory under the churn of a
//! forward pass (ASCEND.md, "What users … complain about"). Freed blocks go back to a per-size-class
//! free list and are handed out again. The cache is *stream-ordered*: the device has one stream,
//! so a block released after the last op that used it was queued can be reused by any later op
//! on that stream without waiting — the stream itself orders the reuse after the earlier work.
//! (A second stream would need an event per block; not needed yet.)

use crate::engine::dtype::DType;
use crate::engine::storage::{DeviceBuffer, HostBuffer};
use crate::ffi::{AclResult, DeviceContext, DeviceMemory};
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Smallest block handed out (one L0 fractal; also keeps every block 512-byte aligned in size).
const MIN_BLOCK: usize = 512;
/// Above this, sizes round to multiples of it instead of powers of two (bounded waste).
const LARGE_STEP: usize = 1 << 20;

/// The size class a request of `bytes` is served from.
pub fn size_class(bytes: usize) -> usize {
    let b = bytes.max(MIN_BLOCK);
    if b <= LARGE_STEP {
        b.next_power_of_two()
    } else {
        b.div_ceil(LARGE_STEP) * LARGE_STEP
    }
}

/// Counters of the caching allocator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// `aclrtMalloc` calls made.
    pub device_allocs: u64,
    /// Requests served from the cache.
    pub cache_hits: u64,
    /// Bytes currently held in free lists.
    pub cached_bytes: usize,
}

/// The caching allocator of one device.
#[derive(Debug)]
pub struct Pool {
    device: Arc<DeviceContext>,
    state: Mutex<PoolState>,
}

#[derive(Debug, Default)]
struct PoolState {
    free: HashMap<usize, Vec<DeviceMemory>>,
    stats: PoolStats,
}

impl Pool {
    /// An empty pool on `device`.
    pub fn new(device: Arc<DeviceContext>) -> Arc<Self> {
        Arc::new(Pool {
            device,
            state: Mutex::new(PoolState::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PoolState> {
        // A poisoned lock only means a panic elsewhere; the free lists are still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A block of at least `bytes`, from the cache or `aclrtMalloc`. On allocation failure the
    /// cache is released to the device and the allocation retried once.
    pub fn alloc(&self, bytes: usize) -> AclResult<DeviceMemory> {
        let class = size_class(bytes);
        {
            let mut st = self.state();
            if let Some(mem) = st.free.get_mut(&class).and_then(Vec::pop) {
                st.stats.cache_hits += 1;
                st.stats.cached_bytes -= class;
                return Ok(mem);
            }
            st.stats.device_allocs += 1;
        }
        match DeviceMemory::new(self.device.clone(), class) {
            Ok(m) => Ok(m),
            Err(_) => {
                self.trim();
                DeviceMemory::new(self.device.clone(), class)
            }
        }
    }

    /// Return a block to the cache.
    pub fn release(&self, mem: DeviceMemory) {
        let mut st = self.state();
        st.stats.cached_bytes += mem.bytes();
        st.free.entry(mem.bytes()).or_default().push(mem);
    }

    /// Free every cached block (`aclrtFree`).
    pub fn trim(&self) {
        let mut st = self.state();
        st.free.clear();
        st.stats.cached_bytes = 0;
    }

    /// Current counters.
    pub fn stats(&self) -> PoolStats {
        self.state().stats
    }
}

/// A tensor's device memory: `len` elements of `dtype` in a pooled block, returned to the pool
/// when dropped.
#[derive(Debug)]
pub struct AscendBuffer {
    mem: Option<DeviceMemory>,
    dtype: DType,
    len: usize,
    pool: Arc<Pool>,
}

impl AscendBuffer {
    /// A buffer for `len` elements of `dtype` (contents undefined).
    pub fn alloc(pool: &Arc<Pool>, dtype: DType, len: usize) -> AclResult<Self> {
        let bytes = len.saturating_mul(dtype.size_in_bytes());
        Ok(AscendBuffer {
            mem: Some(pool.alloc(bytes)?),
            dtype,
            len,
            pool: pool.clone(),
        })
    }
    /// The device block.
    pub fn mem(&self) -> &DeviceMemory {
        // Invariant: `mem` is Some until drop.
        self.mem.as_ref().expect("AscendBuffer used after drop")
    }
    /// Bytes of the elements (not of the block).
    pub fn bytes(&self) -> usize {
        self.len * self.dtype.size_in_bytes()
    }
}

impl Drop for AscendBuffer {
    fn drop(&mut self) {
        if let Some(m) = self.mem.take() {
            self.pool.release(m);
        }
    }
}

impl DeviceBuffer for AscendBuffer {
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn len(&self) -> usize {
        self.len
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// The bytes of a host buffer (all element types are plain little-endian numbers).
pub fn host_bytes(h: &HostBuffer) -> &[u8] {
    crate::with_host_buffer!(h, v => {
        // SAFETY: f32/f16/bf16/u32/i64 have no padding and no invalid bit patterns when read as
        // bytes; the slice borrows `v` for the returned lifetime.
        unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v.as_slice())) }
    })
}

/// The bytes of a host buffer, mutably (to download into).
pub fn host_bytes_mut(h: &mut HostBuffer) -> &mut [u8] {
    crate::with_host_buffer!(h, v => {
        let n = std::mem::size_of_val(v.as_slice());
        // SAFETY: as in `host_bytes`; every byte pattern is a valid value of these types.
        unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), n) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_round_up_and_bound_the_waste() {
        assert_eq!(size_class(0), 512);
        assert_eq!(size_class(513), 1024);
        assert_eq!(size_class(1 << 20), 1 << 20);
        assert_eq!(size_class((1 << 20) + 1), 2 << 20);
        assert_eq!(size_class((5 << 20) + 7), 6 << 20);
        for b in [1usize, 100, 4097, 3 << 20] {
            assert!(size_class(b) >= b);
        }
    }
}
