//! Skinny products for decoding: `C[i, j] (+)= Σₚ x[i, p]·W[j, p]` for at most
//! [`GEMV_MAX_M`](super::GEMV_MAX_M) rows of x, with W stored `[N, K]` (each output's weights
//! dense) in f32, bf16 or f16: the `x·Wᵀ` of a linear layer.
//!
//! Such a product does ~1 multiply-add per weight read, so its speed is the memory bandwidth:
//! every weight row is streamed exactly once, front to back (one row at a time, reused from L1
//! for each group of ≤ 4 rows of x), and threads split the output columns into contiguous
//! bands, so each thread reads one sequential stream — measured faster here than interleaving
//! several rows, which splits the hardware prefetcher's attention. Half weights are widened
//! in registers — a bf16 is the top half of an f32 (zero-extend to 32 bits, shift left 16),
//! f16 goes through `vcvtph2ps` — and multiplied in f32 FMA, so results match an f32 product
//! of the widened weights exactly. `vdpbf16ps` would instead round x to bf16 (8 mantissa
//! bits) and lose f32 accuracy for no gain on a memory-bound loop.

use super::{Isa, SharedMut, Weights};
use rayon::prelude::*;

/// The lhs `x`: element `(i, p)` is `a[i·rs + p·cs]`.
#[derive(Clone, Copy)]
pub struct Lhs<'a> {
    /// The elements.
    pub a: &'a [f32],
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

/// Where the result goes: element `(i, j)` is `c[i·c_rs + j·c_cs]`.
#[derive(Clone, Copy)]
pub struct Out {
    /// Stride between rows of x.
    pub c_rs: usize,
    /// Stride between weight rows.
    pub c_cs: usize,
}

/// Element kinds of the weights (a const parameter of the kernels).
const F32: u8 = 0;
const BF16: u8 = 1;
const F16: u8 = 2;

/// Rows of x per kernel call (the kernels keep a few accumulators per row in registers).
const MC: usize = 4;
/// Weight bytes per parallel task, about: small enough that the two threads finish together
/// even when one is slowed by another process (the tail is at most one task), large enough that
/// scheduling (~1 µs) stays under 1% of a task's ~50 µs of streaming.
const TASK_BYTES: usize = 1 << 20;

/// The product `C (+)= x·Wᵀ`, x `[m, k]`, W `[n, k]` with row `j` at `w[j·w_rs..][..k]`.
/// Bounds were checked by the caller ([`super::gemm_with`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn gemv(
    isa: Isa,
    m: usize,
    k: usize,
    n: usize,
    x: Lhs,
    w: Weights,
    w_rs: usize,
    c: &mut [f32],
    out: Out,
    accumulate: bool,
    parallel: bool,
) {
    // Dense rows of x (tiny: at most 8 × k).
    let dense: Vec<f32>;
    let (xs, xr) = if x.cs == 1 {
        (&x.a[..(m - 1) * x.rs + k], x.rs)
    } else {
        dense = (0..m)
            .flat_map(|i| (0..k).map(move |p| x.a[i * x.rs + p * x.cs]))
            .collect();
        (&dense[..], k)
    };
    let (wp, esize, kind) = match w {
        Weights::F32(s) => (s.as_ptr() as usize, 4, F32),
        Weights::BF16(s) => (s.as_ptr() as usize, 2, BF16),
        Weights::F16(s) => (s.as_ptr() as usize, 2, F16),
    };
    let cp = SharedMut(c.as_mut_ptr());
    let run = |(j0, j1): (usize, usize)| {
        for j in j0..j1 {
            let wj = (wp + j * w_rs * esize) as *const u8;
            for i0 in (0..m).step_by(MC) {
                let mc = MC.min(m - i0);
                // SAFETY: rows i0..i0+mc of x hold k floats at stride xr (xs covers them);
                // weight row j holds k elements (checked by the caller).
                let sums = unsafe { dots(isa, kind, mc, k, xs[i0 * xr..].as_ptr(), xr, wj) };
                for (i, &s) in sums.iter().take(mc).enumerate() {
                    // SAFETY: (i0 + i, j) is inside C and in this task's columns.
                    unsafe {
                        let d = cp.ptr().add((i0 + i) * out.c_rs + j * out.c_cs);
                        *d = if accumulate { *d + s } else { s };
                    }
                }
            }
        }
    };
    let threads = rayon::current_num_threads();
    let chunk = (TASK_BYTES / (k * esize).max(1)).clamp(1, n.div_ceil(threads).max(1));
    if parallel && n > chunk {
        (0..n.div_ceil(chunk))
            .into_par_iter()
            .for_each(|t| run((t * chunk, (t * chunk + chunk).min(n))));
    } else {
        run((0, n));
    }
}

/// `out[i] = Σₚ x[i·xr + p]·w[p]` for `i < mc`, on the given ISA.
///
/// # Safety
/// `x` holds `mc` rows of `k` floats at stride `xr`; `w` holds `k` elements of `kind`; the
/// ISA's features are present.
unsafe fn dots(
    isa: Isa,
    kind: u8,
    mc: usize,
    k: usize,
    x: *const f32,
    xr: usize,
    w: *const u8,
) -> [f32; MC] {
    macro_rules! rows {
        ($f:ident, $e:expr) => {
            // SAFETY: forwarded from this function's contract.
            unsafe {
                match mc {
                    1 => $f::<$e, 1>(k, x, xr, w),
                    2 => $f::<$e, 2>(k, x, xr, w),
                    3 => $f::<$e, 3>(k, x, xr, w),
                    _ => $f::<$e, 4>(k, x, xr, w),
                }
            }
        };
    }
    macro_rules! kinds {
        ($f:ident) => {
            match kind {
                F32 => rows!($f, F32),
                BF16 => rows!($f, BF16),
                _ => rows!($f, F16),
            }
        };
    }
    #[cfg(target_arch = "x86_64")]
    use x86::{dots256, dots512};
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => kinds!(dots512),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => kinds!(dots256),
        _ => kinds!(dots_portable),
    }
}

/// One weight element as f32 (exact).
///
/// # Safety
/// `w` points to an element of kind `E`.
#[inline(always)]
unsafe fn widen<const E: u8>(w: *const u8) -> f32 {
    // SAFETY: per the contract; unaligned reads since the buffer is only element-aligned.
    unsafe {
        match E {
            F32 => (w as *const f32).read_unaligned(),
            BF16 => f32::from_bits(((w as *const u16).read_unaligned() as u32) << 16),
            _ => half::f16::from_bits((w as *const u16).read_unaligned()).to_f32(),
        }
    }
}

/// Portable [`dots`]: eight partial sums per row of x (vectorizable, shorter rounding chains).
///
/// # Safety
/// As for [`dots`].
unsafe fn dots_portable<const E: u8, const M: usize>(
    k: usize,
    x: *const f32,
    xr: usize,
    w: *const u8,
) -> [f32; MC] {
    const L: usize = 8;
    let size = if E == F32 { 4 } else { 2 };
    let mut acc = [[0f32; L]; M];
    let mut wv = [0f32; L];
    let mut p = 0;
    while p + L <= k {
        for (l, v) in wv.iter_mut().enumerate() {
            // SAFETY: p + l < k.
            *v = unsafe { widen::<E>(w.add((p + l) * size)) };
        }
        for (i, acc) in acc.iter_mut().enumerate() {
            for (l, a) in acc.iter_mut().enumerate() {
                // SAFETY: p + l < k inside row i of x.
                *a += unsafe { *x.add(i * xr + p + l) } * wv[l];
            }
        }
        p += L;
    }
    let mut out = [0f32; MC];
    for (i, acc) in acc.iter().enumerate() {
        let mut s: f32 = acc.iter().sum();
        for q in p..k {
            // SAFETY: q < k inside the weight row and row i of x.
            s += unsafe { *x.add(i * xr + q) * widen::<E>(w.add(q * size)) };
        }
        out[i] = s;
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{widen, BF16, F32, MC};
    use std::arch::x86_64::*;

    /// 16 weights as f32.
    ///
    /// # Safety
    /// 16 elements of kind `E` are readable at `w`; AVX-512F and F16C are present.
    #[inline]
    #[target_feature(enable = "avx512f,f16c")]
    unsafe fn load16<const E: u8>(w: *const u8) -> __m512 {
        // SAFETY: per the contract.
        unsafe {
            match E {
                F32 => _mm512_loadu_ps(w as *const f32),
                BF16 => {
                    let h = _mm256_loadu_si256(w as *const __m256i);
                    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
                }
                _ => _mm512_cvtph_ps(_mm256_loadu_si256(w as *const __m256i)),
            }
        }
    }

    /// Independent 16-lane steps of k per iteration in [`dots512`] (U·M zmm accumulators): two
    /// (one 64-byte line of bf16 weights) keep the FMA latency chain below the time the weights
    /// take to arrive; four measured no faster, nor did software prefetching (slower: the
    /// hardware prefetcher already follows the single stream).
    const U: usize = 2;

    /// AVX-512 [`super::dots`]: U 16-lane steps of k per iteration, each with its own
    /// accumulator per row of x, so FMA latency never limits the stream.
    ///
    /// # Safety
    /// As for [`super::dots`], with AVX-512F and F16C present.
    #[target_feature(enable = "avx512f,f16c")]
    pub(super) unsafe fn dots512<const E: u8, const M: usize>(
        k: usize,
        x: *const f32,
        xr: usize,
        w: *const u8,
    ) -> [f32; MC] {
        let size = if E == F32 { 4 } else { 2 };
        let mut acc = [[_mm512_setzero_ps(); U]; M];
        let mut p = 0;
        // SAFETY (whole body): p + 16·U ≤ k or p + 16 ≤ k in the loops, q < k in the tail,
        // rows per contract.
        unsafe {
            while p + 16 * U <= k {
                let mut wv = [_mm512_setzero_ps(); U];
                for (u, wv) in wv.iter_mut().enumerate() {
                    *wv = load16::<E>(w.add((p + 16 * u) * size));
                }
                for (i, a) in acc.iter_mut().enumerate() {
                    let xi = x.add(i * xr + p);
                    for (u, a) in a.iter_mut().enumerate() {
                        *a = _mm512_fmadd_ps(_mm512_loadu_ps(xi.add(16 * u)), wv[u], *a);
                    }
                }
                p += 16 * U;
            }
            while p + 16 <= k {
                let wv = load16::<E>(w.add(p * size));
                for (i, a) in acc.iter_mut().enumerate() {
                    a[0] = _mm512_fmadd_ps(_mm512_loadu_ps(x.add(i * xr + p)), wv, a[0]);
                }
                p += 16;
            }
            let mut out = [0f32; MC];
            for (i, a) in acc.iter().enumerate() {
                let sum = a[1..].iter().fold(a[0], |s, &v| _mm512_add_ps(s, v));
                let mut s = _mm512_reduce_add_ps(sum);
                for q in p..k {
                    s += *x.add(i * xr + q) * widen::<E>(w.add(q * size));
                }
                out[i] = s;
            }
            out
        }
    }

    /// 8 weights as f32.
    ///
    /// # Safety
    /// 8 elements of kind `E` are readable at `w`; AVX2 and F16C are present.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8<const E: u8>(w: *const u8) -> __m256 {
        // SAFETY: per the contract.
        unsafe {
            match E {
                F32 => _mm256_loadu_ps(w as *const f32),
                BF16 => {
                    let h = _mm_loadu_si128(w as *const __m128i);
                    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
                }
                _ => _mm256_cvtph_ps(_mm_loadu_si128(w as *const __m128i)),
            }
        }
    }

    /// Sum of the 8 lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn hsum256(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
        _mm_cvtss_f32(s)
    }

    /// AVX2 [`super::dots`]: two 8-lane steps of k per iteration (2·M ymm accumulators).
    ///
    /// # Safety
    /// As for [`super::dots`], with AVX2, FMA and F16C present.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dots256<const E: u8, const M: usize>(
        k: usize,
        x: *const f32,
        xr: usize,
        w: *const u8,
    ) -> [f32; MC] {
        let size = if E == F32 { 4 } else { 2 };
        let mut acc = [[_mm256_setzero_ps(); 2]; M];
        let mut p = 0;
        // SAFETY (whole body): p + 16 ≤ k in the loop, q < k in the tail, rows per contract.
        unsafe {
            while p + 16 <= k {
                let w0 = load8::<E>(w.add(p * size));
                let w1 = load8::<E>(w.add((p + 8) * size));
                for (i, a) in acc.iter_mut().enumerate() {
                    let xi = x.add(i * xr + p);
                    a[0] = _mm256_fmadd_ps(_mm256_loadu_ps(xi), w0, a[0]);
                    a[1] = _mm256_fmadd_ps(_mm256_loadu_ps(xi.add(8)), w1, a[1]);
                }
                p += 16;
            }
            let mut out = [0f32; MC];
            for (i, a) in acc.iter().enumerate() {
                let mut s = hsum256(_mm256_add_ps(a[0], a[1]));
                for q in p..k {
                    s += *x.add(i * xr + q) * widen::<E>(w.add(q * size));
                }
                out[i] = s;
            }
            out
        }
    }
}
