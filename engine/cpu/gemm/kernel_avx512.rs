//! AVX-512 micro-kernel: a 12 × 32 tile of C in 24 zmm accumulators.
//!
//! Per step of k: two 16-lane loads of the B panel, twelve broadcasts of A (folded into the FMA
//! as `{1to16}` memory operands) and 24 FMAs. 24 independent accumulators cover the FMA
//! latency (4 cycles on Zen 4) several times over, and 24 FMAs per 14 loads keep the load ports
//! below the FMA rate. 12 × 32 is the tile BLIS uses for Skylake-X/Zen 4 (`bli_sgemm_skx_asm_32x12`,
//! there column-major; C is row-major here so vectors run along N).

/// Tile rows.
pub const MR: usize = 12;
/// Tile columns.
pub const NR: usize = 32;

/// `C[0..12, 0..32] (+)= Ap·Bp` over `kc` steps.
///
/// # Safety
/// The CPU supports AVX-512F; `ap` holds `kc·12` and `bp` `kc·32` readable f32; `c` points to a
/// 12 × 32 tile writable with row stride `ldc`.
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
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    // Fetch the C tile into L1 while the FMAs run: its rows are a whole row of C apart, often a
    // multiple of 4 KiB, so they would otherwise miss one after another at the end.
    for i in 0..MR {
        // SAFETY: prefetches never fault; the addresses lie inside the tile anyway.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc + 16) as *const i8);
        }
    }
    let (mut a, mut b) = (ap, bp);
    // One k step: two B vectors, MR broadcasts of A, 2·MR FMAs.
    macro_rules! step {
        () => {
            // SAFETY: `a` and `b` advance through the kc·MR and kc·NR panels the caller
            // guarantees.
            unsafe {
                let b0 = _mm512_loadu_ps(b);
                let b1 = _mm512_loadu_ps(b.add(16));
                for (i, acc) in acc.iter_mut().enumerate() {
                    let ai = _mm512_set1_ps(*a.add(i));
                    acc[0] = _mm512_fmadd_ps(ai, b0, acc[0]);
                    acc[1] = _mm512_fmadd_ps(ai, b1, acc[1]);
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
    for (i, acc) in acc.iter().enumerate() {
        // SAFETY: row i of the tile is 32 writable f32 at c + i·ldc (caller's contract).
        unsafe {
            let ci = c.add(i * ldc);
            let (mut r0, mut r1) = (acc[0], acc[1]);
            if load {
                r0 = _mm512_add_ps(r0, _mm512_loadu_ps(ci));
                r1 = _mm512_add_ps(r1, _mm512_loadu_ps(ci.add(16)));
            }
            _mm512_storeu_ps(ci, r0);
            _mm512_storeu_ps(ci.add(16), r1);
        }
    }
}
