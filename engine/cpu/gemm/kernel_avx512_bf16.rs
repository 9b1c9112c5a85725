//! AVX-512 BF16 micro-kernel: a 6 × 64 tile of C in 24 zmm accumulators, fed bf16 pairs.
//!
//! `vdpbf16ps acc, a, b` adds `a₀·b₀ + a₁·b₁` per f32 lane, where each 32-bit lane of `a` and
//! `b` holds two bf16 values. So one instruction does two steps of k, and the packed panels
//! interleave consecutive depths: word `(q, i)` of an A panel is `(A[i][2q], A[i][2q+1])`, word
//! `(q, j)` of a B panel is `(B[2q][j], B[2q+1][j])` (see `pack::to_pairs`). Products are exact
//! in f32 and accumulate in f32; the only rounding beyond f32 GEMM is of the operands to bf16
//! (8 significant bits). On Zen 4 `vdpbf16ps` issues at the rate of `vfmadd231ps`, so this
//! kernel's arithmetic peak is twice the f32 kernel's; on Intel CPUs with AMX it issues at half
//! that rate, and the AMX kernel (`kernel_amx_bf16.rs`) runs the bf16 products instead.

pub use super::kernel_avx512::{MR, NR};
/// zmm vectors per tile row.
const NV: usize = NR / 16;

/// `C[0..6, 0..64] (+)= Ap·Bp` over `kc` depths (`kc.div_ceil(2)` pair steps).
///
/// # Safety
/// The CPU supports AVX-512F and AVX512_BF16; `ap` holds `⌈kc/2⌉·6` and `bp` `⌈kc/2⌉·64` readable
/// pair words (in f32-sized slots); `c` points to a 6 × 64 tile writable with row stride `ldc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
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
    super::kernel_avx512::prefetch_tile(c, ldc);
    let (mut a, mut b) = (ap as *const i32, bp);
    // One pair step: NV B vectors, MR broadcast A pairs, NV·MR dot-product-accumulates.
    macro_rules! step {
        () => {
            // SAFETY: `a` and `b` advance through the ⌈kc/2⌉·MR and ⌈kc/2⌉·NR pair panels the
            // caller guarantees.
            unsafe {
                let mut bv: [__m512bh; NV] = std::mem::transmute([_mm512_setzero_ps(); NV]);
                for (v, bv) in bv.iter_mut().enumerate() {
                    *bv = std::mem::transmute::<__m512, __m512bh>(_mm512_loadu_ps(b.add(16 * v)));
                }
                for (i, acc) in acc.iter_mut().enumerate() {
                    let ai = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(*a.add(i)));
                    for (acc, &bv) in acc.iter_mut().zip(&bv) {
                        *acc = _mm512_dpbf16_ps(*acc, ai, bv);
                    }
                }
                a = a.add(MR);
                b = b.add(NR);
            }
        };
    }
    let steps = kc.div_ceil(2);
    for _ in 0..steps / 4 {
        step!();
        step!();
        step!();
        step!();
    }
    for _ in 0..steps % 4 {
        step!();
    }
    // SAFETY: the caller's contract on `c` and `ldc`.
    unsafe { super::kernel_avx512::store_tile(&acc, c, ldc, load) };
}
