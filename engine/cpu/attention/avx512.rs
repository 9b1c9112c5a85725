//! AVX-512 micro-kernels of the tile kernels. The two products each keep an `M × 64` block of results in 24
//! zmm accumulators (M ≤ [`MR`] = 6): per step it loads 4 vectors of the right operand and
//! broadcasts one value per row, so 24 FMAs cost 4 vector loads and M scalar broadcasts.

use super::{BK, MR};
use crate::engine::cpu::vector;
use std::arch::x86_64::*;

/// See [`super::kernels::scores`].
/// SAFETY (caller): AVX-512F present; `q` holds `rows·d`, `kt` `d·BK`, `s` `rows·BK` values.
#[target_feature(enable = "avx512f")]
pub unsafe fn scores(rows: usize, d: usize, q: &[f32], kt: &[f32], s: &mut [f32], scale: f32) {
    let (qp, kp, sp) = (q.as_ptr(), kt.as_ptr(), s.as_mut_ptr());
    let mut r = 0;
    while r < rows {
        let m = (rows - r).min(MR);
        // SAFETY: rows r..r+m are inside q and s (caller's lengths).
        unsafe { by_rows!(m, scores_m(d, qp.add(r * d), kp, sp.add(r * BK), scale)) };
        r += m;
    }
}

#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn scores_m<const M: usize>(
    d: usize,
    q: *const f32,
    kt: *const f32,
    s: *mut f32,
    scale: f32,
) {
    let mut acc = [[_mm512_setzero_ps(); 4]; M];
    for e in 0..d {
        // SAFETY: e < d, so the BK floats at kt + e·BK and q[r·d + e] (r < M) are in bounds.
        unsafe {
            let kp = kt.add(e * BK);
            let kv = [
                _mm512_loadu_ps(kp),
                _mm512_loadu_ps(kp.add(16)),
                _mm512_loadu_ps(kp.add(32)),
                _mm512_loadu_ps(kp.add(48)),
            ];
            for (r, ar) in acc.iter_mut().enumerate() {
                let qv = _mm512_set1_ps(*q.add(r * d + e));
                for (a, &k) in ar.iter_mut().zip(&kv) {
                    *a = _mm512_fmadd_ps(qv, k, *a);
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

/// See [`super::kernels::scores_direct`]: per key, its row is loaded once (16 lanes at a
/// time, the tail masked) and multiplied into one accumulator per query row.
/// SAFETY (caller): AVX-512F present; `q` holds `rows·d`, `k` `kn·d`, `s` `rows·BK` values.
#[target_feature(enable = "avx512f")]
pub unsafe fn scores_direct(
    rows: usize,
    kn: usize,
    d: usize,
    q: &[f32],
    k: &[f32],
    s: &mut [f32],
    scale: f32,
) {
    let (qp, kp, sp) = (q.as_ptr(), k.as_ptr(), s.as_mut_ptr());
    let mut r = 0;
    while r < rows {
        let m = (rows - r).min(MR);
        // SAFETY: rows r..r+m of q and s exist (caller's lengths).
        unsafe { by_rows!(m, direct_m(kn, d, qp.add(r * d), kp, sp.add(r * BK), scale)) };
        r += m;
    }
}

#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn direct_m<const M: usize>(
    kn: usize,
    d: usize,
    q: *const f32,
    k: *const f32,
    s: *mut f32,
    scale: f32,
) {
    for j in 0..kn {
        let mut acc = [_mm512_setzero_ps(); M];
        for c0 in (0..d).step_by(16) {
            let mask = ((1u32 << (d - c0).min(16)) - 1) as __mmask16;
            // SAFETY: lanes past d are masked (no access); j < kn rows of k, r < M of q.
            unsafe {
                let kv = _mm512_maskz_loadu_ps(mask, k.add(j * d + c0));
                for (r, a) in acc.iter_mut().enumerate() {
                    let qv = _mm512_maskz_loadu_ps(mask, q.add(r * d + c0));
                    *a = _mm512_fmadd_ps(qv, kv, *a);
                }
            }
        }
        for (r, &a) in acc.iter().enumerate() {
            // SAFETY: row r < M of s has BK ≥ kn entries.
            unsafe { *s.add(r * BK + j) = scale * _mm512_reduce_add_ps(a) };
        }
    }
}

/// See [`super::kernels::gemm_acc`]; columns go in chunks of 64, the last one masked.
/// SAFETY (caller): AVX-512F present; the operands hold what `gemm_acc` checks.
#[target_feature(enable = "avx512f")]
pub unsafe fn gemm_acc(
    rows: usize,
    kdim: usize,
    d: usize,
    a: super::kernels::Lhs,
    b: &[f32],
    corr: Option<&[f32]>,
    c: &mut [f32],
) {
    let (ap, bp, cp) = (a.data.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    let ones = [1f32; MR];
    for c0 in (0..d).step_by(64) {
        let masks: [__mmask16; 4] = std::array::from_fn(|c| {
            let left = d.saturating_sub(c0 + 16 * c).min(16);
            ((1u32 << left) - 1) as __mmask16
        });
        let mut r = 0;
        while r < rows {
            let m = (rows - r).min(MR);
            let f = corr.map_or(ones.as_ptr(), |x| x[r..].as_ptr());
            let strides = (a.rs, a.ks, d);
            // SAFETY: rows r..r+m of a and c exist; columns past d are masked off.
            unsafe {
                by_rows!(
                    m,
                    gemm_m(
                        kdim,
                        strides,
                        ap.add(r * a.rs),
                        bp.add(c0),
                        f,
                        cp.add(r * d + c0),
                        masks
                    )
                )
            };
            r += m;
        }
    }
}

/// See [`super::kernels::online_softmax`]: one row of 64 scores is 4 vectors; hidden keys
/// are masked lanes set to −∞, so their `exp` is 0 without touching memory twice.
/// SAFETY (caller): AVX-512F present; `s` holds `vis.len()·BK` values, `m`, `l`, `corr` at
/// least `vis.len()`, and every `vis[r] ≤ BK`.
#[target_feature(enable = "avx512f")]
pub unsafe fn online_softmax(
    vis: &[usize],
    s: &mut [f32],
    m: &mut [f32],
    l: &mut [f32],
    corr: &mut [f32],
) {
    let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
    for (r, &vis) in vis.iter().enumerate() {
        // SAFETY: row r of s has BK = 64 floats.
        let sp = unsafe { s.as_mut_ptr().add(r * BK) };
        let x: [__m512; 4] = std::array::from_fn(|c| {
            let left = vis.saturating_sub(16 * c).min(16);
            let keep = ((1u32 << left) - 1) as __mmask16;
            // SAFETY: 16 floats at sp + 16c are inside the row.
            _mm512_mask_loadu_ps(ninf, keep, unsafe { sp.add(16 * c) })
        });
        let tmax = _mm512_reduce_max_ps(_mm512_max_ps(
            _mm512_max_ps(x[0], x[1]),
            _mm512_max_ps(x[2], x[3]),
        ));
        let m_new = m[r].max(tmax);
        if m_new == f32::NEG_INFINITY {
            for c in 0..4 {
                // SAFETY: as above.
                unsafe { _mm512_storeu_ps(sp.add(16 * c), _mm512_setzero_ps()) };
            }
            corr[r] = 1.0;
            continue;
        }
        // exp(−∞) = 0 before the first contribution, where the accumulator and l are 0.
        corr[r] = if m_new == m[r] {
            1.0
        } else {
            vector::exp(m[r] - m_new)
        };
        let mv = _mm512_set1_ps(m_new);
        let mut sum = _mm512_setzero_ps();
        for (c, &xc) in x.iter().enumerate() {
            let e = vector::avx512::exp(_mm512_sub_ps(xc, mv));
            sum = _mm512_add_ps(sum, e);
            // SAFETY: as above.
            unsafe { _mm512_storeu_ps(sp.add(16 * c), e) };
        }
        l[r] = l[r] * corr[r] + _mm512_reduce_add_ps(sum);
        m[r] = m_new;
    }
}

/// `M` rows × 64 columns of [`gemm_acc`]: `(rs, ks, d)` are the strides of `a` and the row
/// length of `b` and `c`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn gemm_m<const M: usize>(
    kn: usize,
    (rs, ks, d): (usize, usize, usize),
    p: *const f32,
    v: *const f32,
    corr: *const f32,
    o: *mut f32,
    masks: [__mmask16; 4],
) {
    let mut acc = [[_mm512_setzero_ps(); 4]; M];
    for (r, ar) in acc.iter_mut().enumerate() {
        // SAFETY: corr has a factor per row (r < M rows from this block's first).
        let c_r = _mm512_set1_ps(unsafe { *corr.add(r) });
        for (c, a) in ar.iter_mut().enumerate() {
            // SAFETY: masked lanes are not read (AVX-512 masked loads suppress faults).
            let o_rc = unsafe { _mm512_maskz_loadu_ps(masks[c], o.add(r * d + c * 16)) };
            *a = _mm512_mul_ps(o_rc, c_r);
        }
    }
    for j in 0..kn {
        // SAFETY: k-step j < kn rows of b (v); lanes past d are masked; a(r, j) is in bounds (checked by gemm_acc).
        unsafe {
            let vj = v.add(j * d);
            let vv: [__m512; 4] =
                std::array::from_fn(|c| _mm512_maskz_loadu_ps(masks[c], vj.add(c * 16)));
            for (r, ar) in acc.iter_mut().enumerate() {
                let pv = _mm512_set1_ps(*p.add(r * rs + j * ks));
                for (a, &x) in ar.iter_mut().zip(&vv) {
                    *a = _mm512_fmadd_ps(pv, x, *a);
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
