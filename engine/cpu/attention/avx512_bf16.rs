//! AVX512_BF16 micro-kernels of the bf16 attention forward ([`super::bf16`]). Same register
//! blocking as the f32 kernels in `avx512.rs` (up to [`MR`] rows × 64 columns in 24 zmm
//! accumulators), but each `vdpbf16ps` multiplies a *pair* of bf16 operands per f32 lane, so one
//! instruction covers two steps of the reduction: two key dimensions in `S = Q·Kᵀ`, two keys in
//! `O += P·V`. Products are exact in f32 and sums stay f32; only the operands are rounded.

use super::{BK, MR};
use std::arch::x86_64::*;

/// Calls `$f::<M>(args)` for a row count `M` in `1..=MR` known only at run time.
macro_rules! by_rows {
    ($m:expr, $f:ident($($a:expr),*)) => {
        match $m {
            1 => $f::<1>($($a),*),
            2 => $f::<2>($($a),*),
            3 => $f::<3>($($a),*),
            4 => $f::<4>($($a),*),
            5 => $f::<5>($($a),*),
            6 => $f::<6>($($a),*),
            _ => unreachable!("row block larger than MR"),
        }
    };
}

/// A pair word broadcast to every lane, as the bf16 vector type.
#[inline]
#[target_feature(enable = "avx512f,avx512bf16")]
fn splat(word: u32) -> __m512bh {
    // SAFETY: a plain reinterpretation of 512 bits.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(word as i32)) }
}

/// 16 pair words at `p` as the bf16 vector type (lanes outside `mask` read as 0).
///
/// # Safety
/// The unmasked words at `p` are readable.
#[inline]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn load(mask: __mmask16, p: *const u32) -> __m512bh {
    // SAFETY: masked lanes are not accessed (the caller's contract covers the others).
    unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_maskz_loadu_epi32(mask, p as _)) }
}

/// `s[r·BK + j] = scale·Σ_q (Q pair q of row r)·(K pair q of key j)` for `r < rows`, `j < BK`:
/// `qp` holds `rows × d2` pair words (row-major), `kt` one packed key tile of `d2 × BK` words.
///
/// # Safety
/// AVX-512F and AVX512_BF16 are present; `qp` holds `rows·d2`, `kt` `d2·BK`, `s` `rows·BK`.
#[target_feature(enable = "avx512f,avx512bf16")]
pub unsafe fn scores(rows: usize, d2: usize, qp: &[u32], kt: &[u32], s: &mut [f32], scale: f32) {
    let (q, k, sp) = (qp.as_ptr(), kt.as_ptr(), s.as_mut_ptr());
    let mut r = 0;
    while r < rows {
        let m = (rows - r).min(MR);
        // SAFETY: rows r..r+m of qp and s exist (caller's lengths).
        unsafe { by_rows!(m, scores_m(d2, q.add(r * d2), k, sp.add(r * BK), scale)) };
        r += m;
    }
}

#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
unsafe fn scores_m<const M: usize>(
    d2: usize,
    q: *const u32,
    kt: *const u32,
    s: *mut f32,
    scale: f32,
) {
    let mut acc = [[_mm512_setzero_ps(); 4]; M];
    for e in 0..d2 {
        // SAFETY: e < d2: the BK words at kt + e·BK and word e of each of the M q rows exist.
        unsafe {
            let kp = kt.add(e * BK);
            let kv: [__m512bh; 4] = std::array::from_fn(|c| load(!0, kp.add(16 * c)));
            for (r, ar) in acc.iter_mut().enumerate() {
                let qv = splat(*q.add(r * d2 + e));
                for (a, &k) in ar.iter_mut().zip(&kv) {
                    *a = _mm512_dpbf16_ps(*a, qv, k);
                }
            }
        }
    }
    let sc = _mm512_set1_ps(scale);
    for (r, ar) in acc.iter().enumerate() {
        for (c, &a) in ar.iter().enumerate() {
            // SAFETY: row r < M of s has BK = 64 floats.
            unsafe { _mm512_storeu_ps(s.add(r * BK + c * 16), _mm512_mul_ps(a, sc)) };
        }
    }
}

/// `o[r·d + e] = corr[r]·o[r·d + e] + Σ_{q < kn2} (P pair q of row r)·(V pair q, column e)`:
/// `pp` holds `rows` rows of `BK/2` pair words (keys 2q, 2q+1), `vt` one packed value tile of
/// `kn2 × d` words. Columns go in chunks of 64, the last one masked.
///
/// # Safety
/// AVX-512F and AVX512_BF16 are present; `pp` holds `rows·BK/2`, `vt` `kn2·d`, `corr` `rows`
/// and `o` `rows·d` values, `kn2 ≤ BK/2`.
#[target_feature(enable = "avx512f,avx512bf16")]
pub unsafe fn pv(
    rows: usize,
    kn2: usize,
    d: usize,
    pp: &[u32],
    vt: &[u32],
    corr: &[f32],
    o: &mut [f32],
) {
    let (p, v, op) = (pp.as_ptr(), vt.as_ptr(), o.as_mut_ptr());
    for c0 in (0..d).step_by(64) {
        let masks: [__mmask16; 4] = std::array::from_fn(|c| {
            let left = d.saturating_sub(c0 + 16 * c).min(16);
            ((1u32 << left) - 1) as __mmask16
        });
        let mut r = 0;
        while r < rows {
            let m = (rows - r).min(MR);
            let args = (kn2, d, masks);
            // SAFETY: rows r..r+m of pp, corr and o exist; columns past d are masked off.
            unsafe {
                by_rows!(
                    m,
                    pv_m(
                        args,
                        p.add(r * BK / 2),
                        v.add(c0),
                        corr.as_ptr().add(r),
                        op.add(r * d + c0)
                    )
                )
            };
            r += m;
        }
    }
}

#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
unsafe fn pv_m<const M: usize>(
    (kn2, d, masks): (usize, usize, [__mmask16; 4]),
    p: *const u32,
    v: *const u32,
    corr: *const f32,
    o: *mut f32,
) {
    let mut acc = [[_mm512_setzero_ps(); 4]; M];
    for (r, ar) in acc.iter_mut().enumerate() {
        // SAFETY: corr has a factor per row; masked lanes of o are not read.
        unsafe {
            let c_r = _mm512_set1_ps(*corr.add(r));
            for (c, a) in ar.iter_mut().enumerate() {
                *a = _mm512_mul_ps(_mm512_maskz_loadu_ps(masks[c], o.add(r * d + c * 16)), c_r);
            }
        }
    }
    for q in 0..kn2 {
        // SAFETY: pair row q < kn2 of the tile has d words (lanes past d masked); word q of
        // each of the M P rows exists (BK/2 per row).
        unsafe {
            let vq = v.add(q * d);
            let vv: [__m512bh; 4] = std::array::from_fn(|c| load(masks[c], vq.add(c * 16)));
            for (r, ar) in acc.iter_mut().enumerate() {
                let pv = splat(*p.add(r * BK / 2 + q));
                for (a, &x) in ar.iter_mut().zip(&vv) {
                    *a = _mm512_dpbf16_ps(*a, pv, x);
                }
            }
        }
    }
    for (r, ar) in acc.iter().enumerate() {
        for (c, &a) in ar.iter().enumerate() {
            // SAFETY: as for the loads.
            unsafe { _mm512_mask_storeu_ps(o.add(r * d + c * 16), masks[c], a) };
        }
    }
}

/// `dst[i] = (bf16(src[2i]), bf16(src[2i+1]))` (round to nearest even), the last pair padded
/// with 0 when `src.len()` is odd: a row of f32 as pair words. 32 values per `vcvtne2ps2bf16`.
///
/// # Safety
/// AVX-512F and AVX512_BF16 are present; `dst.len() ≥ src.len().div_ceil(2)`.
#[target_feature(enable = "avx512f,avx512bf16")]
pub unsafe fn to_pairs(src: &[f32], dst: &mut [u32]) {
    let n = src.len();
    let mut i = 0;
    while i < n {
        let left = (n - i).min(32);
        let lo_mask = ((1u64 << left.min(16)) - 1) as __mmask16;
        let hi_mask = ((1u64 << left.saturating_sub(16)) - 1) as __mmask16;
        let words = left.div_ceil(2);
        // SAFETY: lanes outside the masks are not accessed; i + left ≤ n, i/2 + words ≤ dst.len().
        unsafe {
            let lo = _mm512_maskz_loadu_ps(lo_mask, src.as_ptr().add(i));
            let hi = _mm512_maskz_loadu_ps(hi_mask, src.as_ptr().add(i + 16));
            // Low half of the result from `lo`, high half from `hi`: 32 bf16 in source order.
            let b = std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo));
            let wmask = ((1u32 << words) - 1) as __mmask16;
            _mm512_mask_storeu_epi32(dst.as_mut_ptr().add(i / 2) as _, wmask, b);
        }
        i += 32;
    }
}
