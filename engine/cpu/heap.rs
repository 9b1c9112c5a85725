//! Keeping freed tensor buffers in the process heap, so the next op of the same size reuses
//! their pages instead of faulting in fresh ones.
//!
//! Every CPU op writes a new output buffer, and one Whisper tiny forward allocates and frees
//! about a hundred 2–9 MB buffers. glibc serves such sizes with `mmap` and, once they are freed,
//! returns them to the kernel (`munmap`, or trimming the top of the heap), so each new output
//! starts with thousands of page faults, about 1 ms per 9 MB: more than the elementwise op that
//! writes it. Raising the mmap threshold to its maximum (32 MiB on 64-bit glibc) and disabling
//! trimming keeps those pages in the heap. Measured with `osum --device cpu-bf16 bench encoder
//! --quick --reps 9` (tiny-shaped, 2 threads), the binary before and after alternating three
//! times on a quiet machine: 226 / 188 / 188 ms → 178 / 160 / 158 ms per forward, and minor
//! page faults per run 199k → 19k. Cost:
//! freed memory up to those sizes stays with the process until it exits, which suits a
//! command that runs one model. Buffers above 32 MiB (weights) are unaffected.
//!
//! A process-wide allocator setting, so the library never changes it by itself: the `osum`
//! binary calls [`keep_freed_buffers`] at start-up, and an embedding program may too.

/// Apply the settings (glibc on Linux; elsewhere a no-op). Returns true when they took effect.
pub fn keep_freed_buffers() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::raw::c_int;
        extern "C" {
            fn mallopt(param: c_int, value: c_int) -> c_int;
        }
        // glibc's <malloc.h>: M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3.
        const M_TRIM_THRESHOLD: c_int = -1;
        const M_MMAP_THRESHOLD: c_int = -3;
        const MMAP_THRESHOLD_MAX: c_int = 32 << 20;
        // SAFETY: mallopt only changes allocator parameters; it is called before the buffers
        // it affects exist and takes plain integers.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) == 1
                && mallopt(M_TRIM_THRESHOLD, c_int::MAX) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_accepts_the_settings() {
        assert!(super::keep_freed_buffers());
    }
}
