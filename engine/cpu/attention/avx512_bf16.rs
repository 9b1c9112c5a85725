//! AVX512_BF16 micro-kernels of the bf16 attention forward ([`super::bf16`]). Same register
//! blocking as the f32 kernels in `avx512.rs` (up to [`MR`] rows × 64 columns in 24 zmm
//! accumulators), but each `vdpbf16ps` multiplies a *pair* of bf16 operands per f32 lane, so one
//! instruction covers two steps of the reduction: two key dimensions in `S = Q·Kᵀ`, two keys in
//! `O += P·V`. Products are exact in f32 and sums stay f32; only the operands are rounded.

use super::{BK, MR};
use std::arch::x86_64::*;

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

/// `2^t` per lane of `keep`; 0 in the other lanes and wherever `t < −126` (as the f32 `exp`
/// flushes below its range, so a −∞ mask entry gives exactly 0). `t = n + f` with `n` the nearest integer and `f ∈ [−½, ½]`; `2^f` by a degree-4 polynomial
/// fitted here for relative error (2.6e-6 at most over the interval, 2⁻¹⁸·⁵: far below the
/// 2⁻⁹ of the bf16 rounding the probabilities go through next), and `vscalefps` applies `2ⁿ`.
/// Half the instructions of the f32 path's full-accuracy `exp`, which matters because with
/// bf16 products the softmax step is most of a tile's instructions.
#[inline]
#[target_feature(enable = "avx512f")]
fn exp2_fast(t: __m512, keep: __mmask16) -> __m512 {
    let floor = _mm512_set1_ps(-126.0);
    let keep = _mm512_mask_cmp_ps_mask::<_CMP_GE_OQ>(keep, t, floor);
    let t = _mm512_max_ps(t, floor);
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(t);
    let f = _mm512_sub_ps(t, n);
    let mut p = _mm512_set1_ps(0.009_570_101);
    for c in [0.055_917_86, 0.240_247_44, 0.693_121_8, 0.999_999_3] {
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c));
    }
    _mm512_maskz_scalef_ps(keep, p, n)
}

/// The online-softmax step of one tile for the bf16 path, with the same contract as
/// `kernels::online_softmax` (running max `m`, sum `l`, rescale factors `corr`; the first
/// `vis[r]` of row `r`'s [`BK`] scores in `s` are visible), except that the probabilities go
/// straight to `pp` as bf16 pair words (`BK/2` per row; hidden entries exactly 0) instead of
/// back into `s`: no f32 store, reload and separate conversion pass. `l` sums the f32 values.
///
/// # Safety
/// AVX-512F and AVX512_BF16 are present; `s` holds `vis.len()·BK` values, `pp`
/// `vis.len()·BK/2` words, `m`, `l`, `corr` at least `vis.len()`, and every `vis[r] ≤ BK`.
#[target_feature(enable = "avx512f,avx512bf16")]
pub unsafe fn softmax_pairs(
    vis: &[usize],
    s: &[f32],
    m: &mut [f32],
    l: &mut [f32],
    corr: &mut [f32],
    pp: &mut [u32],
) {
    let log2e = _mm512_set1_ps(std::f32::consts::LOG2_E);
    for (r, &vis) in vis.iter().enumerate() {
        // SAFETY: row r of s has BK = 64 floats and row r of pp BK/2 words (caller's lengths).
        let (sp, pw) = unsafe { (s.as_ptr().add(r * BK), pp.as_mut_ptr().add(r * BK / 2)) };
        let keep: [__mmask16; 4] = std::array::from_fn(|c| {
            let left = vis.saturating_sub(16 * c).min(16);
            ((1u32 << left) - 1) as __mmask16
        });
        let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
        // SAFETY: 16 floats at sp + 16c are inside the row; hidden lanes are not read.
        let x: [__m512; 4] =
            std::array::from_fn(|c| unsafe { _mm512_mask_loadu_ps(ninf, keep[c], sp.add(16 * c)) });
        let tmax = _mm512_reduce_max_ps(_mm512_max_ps(
            _mm512_max_ps(x[0], x[1]),
            _mm512_max_ps(x[2], x[3]),
        ));
        let m_new = m[r].max(tmax);
        if m_new == f32::NEG_INFINITY {
            // SAFETY: as above.
            unsafe {
                _mm512_storeu_si512(pw as _, _mm512_setzero_si512());
                _mm512_storeu_si512(pw.add(16) as _, _mm512_setzero_si512());
            }
            corr[r] = 1.0;
            continue;
        }
        // exp(−∞) = 0 before the first contribution, where the accumulator and l are 0.
        corr[r] = if m_new == m[r] {
            1.0
        } else {
            crate::engine::cpu::vector::exp(m[r] - m_new)
        };
        // e = 2^(x·log2 e − m'·log2 e) = exp(x − m').
        let shift = _mm512_set1_ps(m_new * std::f32::consts::LOG2_E);
        let e: [__m512; 4] =
            std::array::from_fn(|c| exp2_fast(_mm512_fmsub_ps(x[c], log2e, shift), keep[c]));
        let sum = _mm512_add_ps(_mm512_add_ps(e[0], e[1]), _mm512_add_ps(e[2], e[3]));
        l[r] = l[r] * corr[r] + _mm512_reduce_add_ps(sum);
        m[r] = m_new;
        // SAFETY: as above; each conversion gives 32 bf16 in key order = 16 pair words.
        unsafe {
            let lo = std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(e[1], e[0]));
            let hi = std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(e[3], e[2]));
            _mm512_storeu_si512(pw as _, lo);
            _mm512_storeu_si512(pw.add(16) as _, hi);
        }
    }
}
