//! AVX-512 micro-kernel: a 6 × 64 tile of C in 24 zmm accumulators.
//!
//! Per step of k: four 16-lane loads of the B panel, six broadcasts of A and 24 FMAs. 24
//! independent accumulators cover the FMA latency (4 cycles on Zen 4) several times over.
//! Measured against 12 × 32 (the same 24 accumulators, but 14 loads per step instead of 10) on
//! Zen 4, 6 × 64 ran a few percent faster on the large products; 64 also divides the usual
//! layer widths, so N rarely leaves a ragged panel.

/// Tile rows.
pub const MR: usize = 6;
/// Tile columns.
pub const NR: usize = 64;
/// zmm vectors per tile row.
const NV: usize = NR / 16;

/// `C[0..6, 0..64] (+)= Ap·Bp` over `kc` steps.
///
/// # Safety
/// The CPU supports AVX-512F; `ap` holds `kc·6` and `bp` `kc·64` readable f32; `c` points to a
/// 6 × 64 tile writable with row stride `ldc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn kernel(
    kc: usize,
    ap: *const f32,
    bp: *const f32,
    c: *mut f32,
    ldc: usize,
    load: bool,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    prefetch_tile(c, ldc);
    let (mut a, mut b) = (ap, bp);
    // One k step: NV B vectors, MR broadcasts of A, NV·MR FMAs.
    macro_rules! step {
        () => {
            // SAFETY: `a` and `b` advance through the kc·MR and kc·NR panels the caller
            // guarantees.
            unsafe {
                let mut bv = [_mm512_setzero_ps(); NV];
                for (v, bv) in bv.iter_mut().enumerate() {
                    *bv = _mm512_loadu_ps(b.add(16 * v));
                }
                for (i, acc) in acc.iter_mut().enumerate() {
                    let ai = _mm512_set1_ps(*a.add(i));
                    for (acc, &bv) in acc.iter_mut().zip(&bv) {
                        *acc = _mm512_fmadd_ps(ai, bv, *acc);
                    }
                }
                a = a.add(MR);
                b = b.add(NR);
            }
        };
    }
    // Four steps per trip: less loop overhead in the front end.
    for _ in 0..kc / 4 {
        step!();
        step!();
        step!();
        step!();
    }
    for _ in 0..kc % 4 {
        step!();
    }
    // SAFETY: the caller's contract on `c` and `ldc`.
    unsafe { store_tile(&acc, c, ldc, load) };
}

/// Fetch a 6 × 64 tile of C into L1 while the arithmetic runs: its rows are a whole row of C
/// apart, often a multiple of 4 KiB, so they would otherwise miss one after another at the end.
/// Shared with the BF16 kernel, which has the same tile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub fn prefetch_tile(c: *const f32, ldc: usize) {
    use std::arch::x86_64::*;
    for i in 0..MR {
        for v in 0..NV {
            // A prefetch never faults; wrapping_add keeps the address arithmetic defined.
            _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(i * ldc + 16 * v) as *const i8);
        }
    }
}

/// `C (+)= acc` for a 6 × 64 tile (added to C's values when `load`).
///
/// # Safety
/// `c` points to a 6 × 64 tile writable with row stride `ldc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub unsafe fn store_tile(
    acc: &[[std::arch::x86_64::__m512; NV]; MR],
    c: *mut f32,
    ldc: usize,
    load: bool,
) {
    use std::arch::x86_64::*;
    for (i, acc) in acc.iter().enumerate() {
        // SAFETY: row i of the tile is NR writable f32 at c + i·ldc (caller's contract).
        unsafe {
            let ci = c.add(i * ldc);
            for (v, &r) in acc.iter().enumerate() {
                let cv = ci.add(16 * v);
                let r = if load {
                    _mm512_add_ps(r, _mm512_loadu_ps(cv))
                } else {
                    r
                };
                _mm512_storeu_ps(cv, r);
            }
        }
    }
}
