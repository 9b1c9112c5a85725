//! The transposing copy at the heart of packing: `g ≤ 8` dense source runs (rows of a
//! row-major A, or rows of W for `x·Wᵀ`) become `g` adjacent columns of a packed panel.
//! On x86 it moves 8 × 8 blocks through registers (widen, transpose, store whole rows), which is
//! several times faster than scattering one element at a time.

use super::pack::Elem;
use super::Isa;

/// `dst[p·stride + col0 + t] = src[starts[t] + p]` (widened) for `t < starts.len() ≤ 8`,
/// `p < kc`.
///
/// # Panics
/// When a run or the destination is out of range (a packing bug).
pub(super) fn gather_transpose<T: Elem>(
    isa: Isa,
    src: &[T],
    starts: &[usize],
    kc: usize,
    dst: &mut [f32],
    stride: usize,
    col0: usize,
) {
    let g = starts.len();
    if g == 0 || kc == 0 {
        return;
    }
    assert!(g <= 8 && col0 + g <= stride && (kc - 1) * stride + col0 + g <= dst.len());
    assert!(starts.iter().all(|&s| s + kc <= src.len()));
    // Depths handled by the SIMD blocks; the rest (and everything on other CPUs) below.
    #[cfg(target_arch = "x86_64")]
    let done = if isa != Isa::Portable {
        // SAFETY: AVX2 and F16C are part of both x86 ISAs (checked at detection); the asserts
        // above bound every access.
        unsafe { x86::blocks(src, starts, kc, dst, stride, col0) }
    } else {
        0
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = {
        let _ = isa;
        0
    };
    for (t, &s) in starts.iter().enumerate() {
        for p in done..kc {
            dst[p * stride + col0 + t] = src[s + p].widen();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::pack::{Elem, BF16, F16};
    use std::arch::x86_64::*;

    /// 8 values at `p` as f32.
    ///
    /// # Safety
    /// 8 elements are readable at `p`; AVX2 and F16C are present.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn load8<T: Elem>(p: *const T) -> __m256 {
        // SAFETY: per the contract.
        unsafe {
            match T::KIND {
                BF16 => {
                    let h = _mm_loadu_si128(p as *const __m128i);
                    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
                }
                F16 => _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)),
                _ => _mm256_loadu_ps(p as *const f32),
            }
        }
    }

    /// Transposes the 8 × 8 block `r` in place (`r[q][t]` ← `r[t][q]`): the standard
    /// unpack / shuffle / 128-bit-permute network (24 shuffles per 64 values).
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    fn transpose8(r: &mut [__m256; 8]) {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        r[0] = _mm256_permute2f128_ps::<0x20>(u0, u4);
        r[1] = _mm256_permute2f128_ps::<0x20>(u1, u5);
        r[2] = _mm256_permute2f128_ps::<0x20>(u2, u6);
        r[3] = _mm256_permute2f128_ps::<0x20>(u3, u7);
        r[4] = _mm256_permute2f128_ps::<0x31>(u0, u4);
        r[5] = _mm256_permute2f128_ps::<0x31>(u1, u5);
        r[6] = _mm256_permute2f128_ps::<0x31>(u2, u6);
        r[7] = _mm256_permute2f128_ps::<0x31>(u3, u7);
    }

    /// The 8-deep blocks of [`super::gather_transpose`]; returns how many depths were done.
    ///
    /// # Safety
    /// AVX2 and F16C are present; the caller's asserts hold.
    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn blocks<T: Elem>(
        src: &[T],
        starts: &[usize],
        kc: usize,
        dst: &mut [f32],
        stride: usize,
        col0: usize,
    ) -> usize {
        let g = starts.len();
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        let mut p = 0;
        while p + 8 <= kc {
            let mut r = [_mm256_setzero_ps(); 8];
            for (r, &st) in r.iter_mut().zip(starts) {
                // SAFETY: st + p + 8 ≤ st + kc ≤ src.len().
                *r = unsafe { load8(s.add(st + p)) };
            }
            transpose8(&mut r);
            for (q, r) in r.iter().enumerate() {
                // SAFETY: (p + q)·stride + col0 + g ≤ dst.len() (asserted for p + q < kc).
                unsafe {
                    let o = d.add((p + q) * stride + col0);
                    if g == 8 {
                        _mm256_storeu_ps(o, *r);
                    } else {
                        let mut tmp = [0f32; 8];
                        _mm256_storeu_ps(tmp.as_mut_ptr(), *r);
                        std::ptr::copy_nonoverlapping(tmp.as_ptr(), o, g);
                    }
                }
            }
            p += 8;
        }
        p
    }
}
