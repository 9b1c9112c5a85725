//! AVX2+FMA micro-kernel: a 6 × 16 tile of C in 12 ymm accumulators (of 16 registers: two
//! hold the B row, one the broadcast of A). The classic Haswell tile (BLIS `bli_sgemm_haswell_asm_6x16`).

/// Tile rows.
pub const MR: usize = 6;
/// Tile columns.
pub const NR: usize = 16;

/// `C[0..6, 0..16] (+)= Ap·Bp` over `kc` steps.
///
/// # Safety
/// The CPU supports AVX2 and FMA; `ap` holds `kc·6` and `bp` `kc·16` readable f32; `c` points
/// to a 6 × 16 tile writable with row stride `ldc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn kernel(
    kc: usize,
    ap: *const f32,
    bp: *const f32,
    c: *mut f32,
    ldc: usize,
    load: bool,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    let (mut a, mut b) = (ap, bp);
    for _ in 0..kc {
        // SAFETY: `a` and `b` advance through the kc·MR and kc·NR panels the caller guarantees.
        unsafe {
            let b0 = _mm256_loadu_ps(b);
            let b1 = _mm256_loadu_ps(b.add(8));
            for (i, acc) in acc.iter_mut().enumerate() {
                let ai = _mm256_broadcast_ss(&*a.add(i));
                acc[0] = _mm256_fmadd_ps(ai, b0, acc[0]);
                acc[1] = _mm256_fmadd_ps(ai, b1, acc[1]);
            }
            a = a.add(MR);
            b = b.add(NR);
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        // SAFETY: row i of the tile is 16 writable f32 at c + i·ldc (caller's contract).
        unsafe {
            let ci = c.add(i * ldc);
            let (mut r0, mut r1) = (acc[0], acc[1]);
            if load {
                r0 = _mm256_add_ps(r0, _mm256_loadu_ps(ci));
                r1 = _mm256_add_ps(r1, _mm256_loadu_ps(ci.add(8)));
            }
            _mm256_storeu_ps(ci, r0);
            _mm256_storeu_ps(ci.add(8), r1);
        }
    }
}
