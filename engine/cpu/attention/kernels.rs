//! The tile kernels shared by forward and backward: the score block (packed or direct), the
//! online-softmax step, the strided-lhs product `C = diag(corr)·C + A·B` and the softmax
//! gradient. AVX-512: register-blocked micro-kernels ([`MR`] rows × 64 columns, 24
//! accumulators); otherwise loops the compiler vectorizes (compiled for AVX2+FMA when present).

use super::{BK, MR};
use crate::engine::cpu::vector::{self, multiversion, Isa};

/// `s[r·BK + j] = scale·Σₑ q[r·d + e]·kt[e·BK + j]` for `r < rows`, `j < BK`.
pub fn scores(rows: usize, d: usize, q: &[f32], kt: &[f32], s: &mut [f32], scale: f32) {
    assert!(q.len() >= rows * d && kt.len() >= d * BK && s.len() >= rows * BK);
    #[cfg(target_arch = "x86_64")]
    if Isa::detected() == Isa::Avx512 {
        // SAFETY: AVX-512F is present (isa), and the slice lengths were checked above.
        unsafe { super::avx512::scores(rows, d, q, kt, s, scale) };
        return;
    }
    scores_portable(rows, d, q, kt, s, scale);
}

/// `s[r·BK + j] = scale·Σₑ q[r·d + e]·k[j·d + e]` for `r < rows`, `j < kn`, reading the key
/// rows in place (for a few query rows, where packing the keys would cost more).
pub fn scores_direct(
    rows: usize,
    kn: usize,
    d: usize,
    q: &[f32],
    k: &[f32],
    s: &mut [f32],
    scale: f32,
) {
    assert!(kn <= BK && q.len() >= rows * d && k.len() >= kn * d && s.len() >= rows * BK);
    #[cfg(target_arch = "x86_64")]
    if Isa::detected() == Isa::Avx512 {
        // SAFETY: AVX-512F is present (isa), and the slice lengths were checked above.
        unsafe { super::avx512::scores_direct(rows, kn, d, q, k, s, scale) };
        return;
    }
    for (qr, sr) in q.chunks_exact(d).take(rows).zip(s.chunks_exact_mut(BK)) {
        for (x, kj) in sr.iter_mut().zip(k.chunks_exact(d).take(kn)) {
            *x = scale * vector::dot(qr, kj);
        }
    }
}

/// A left operand read through strides: element `(r, k)` is `data[r·rs + k·ks]`, so the
/// same tile serves as `P` (`rs = BK, ks = 1`) or as `Pᵀ` (`rs = 1, ks = BK`).
#[derive(Clone, Copy)]
pub struct Lhs<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub ks: usize,
}

/// `c[r·d + e] = corr[r]·c[r·d + e] + Σ_{k<kdim} a(r, k)·b[k·d + e]` for `r < rows`,
/// `e < d` (`corr` = 1 when `None`): `O = diag(corr)·O + P·V` and the gradient products.
pub fn gemm_acc(
    rows: usize,
    kdim: usize,
    d: usize,
    a: Lhs,
    b: &[f32],
    corr: Option<&[f32]>,
    c: &mut [f32],
) {
    if rows == 0 || d == 0 {
        return;
    }
    let a_need = if kdim == 0 {
        0
    } else {
        (rows - 1) * a.rs + (kdim - 1) * a.ks + 1
    };
    assert!(a.data.len() >= a_need && b.len() >= kdim * d && c.len() >= rows * d);
    assert!(corr.is_none_or(|x| x.len() >= rows));
    #[cfg(target_arch = "x86_64")]
    if Isa::detected() == Isa::Avx512 {
        // SAFETY: AVX-512F is present (isa), and the slice lengths were checked above.
        unsafe { super::avx512::gemm_acc(rows, kdim, d, a, b, corr, c) };
        return;
    }
    let ones = [1f32; 0];
    let (corr, has) = match corr {
        Some(x) => (x, true),
        None => (&ones[..], false),
    };
    gemm_portable(rows, kdim, d, a.data, a.rs, a.ks, b, corr, has, c);
}

/// The online-softmax step of one tile. Row `r` of `s` (stride [`BK`]) holds scores whose
/// first `vis[r]` entries are visible; with the running max `m[r]` and sum `l[r]`:
/// `m' = max(m, max_j s_j)`, `corr[r] = exp(m − m')`, `l ← corr·l + Σ_j exp(s_j − m')`,
/// and `s_j ← exp(s_j − m')` (0 for hidden entries, up to [`BK`]). A row with no finite
/// score so far gets `P = 0` and `corr = 1`.
pub fn online_softmax(
    vis: &[usize],
    s: &mut [f32],
    m: &mut [f32],
    l: &mut [f32],
    corr: &mut [f32],
) {
    let rows = vis.len();
    assert!(s.len() >= rows * BK && m.len() >= rows && l.len() >= rows && corr.len() >= rows);
    assert!(vis.iter().all(|&v| v <= BK));
    #[cfg(target_arch = "x86_64")]
    if Isa::detected() == Isa::Avx512 {
        // SAFETY: AVX-512F is present (isa), and the slice lengths were checked above.
        unsafe { super::avx512::online_softmax(vis, s, m, l, corr) };
        return;
    }
    for (r, &vis) in vis.iter().enumerate() {
        let row = &mut s[r * BK..(r + 1) * BK];
        row[vis..].fill(f32::NEG_INFINITY);
        let m_new = m[r].max(vector::max(&row[..vis]));
        if m_new == f32::NEG_INFINITY {
            row.fill(0.0);
            corr[r] = 1.0;
            continue;
        }
        // exp(−∞) = 0 before the first contribution, where the accumulator and l are 0.
        corr[r] = if m_new == m[r] {
            1.0
        } else {
            vector::exp(m[r] - m_new)
        };
        l[r] = l[r] * corr[r] + vector::exp_sub_sum(row, m_new) as f32;
        m[r] = m_new;
    }
}

#[inline(always)]
fn scores_body(rows: usize, d: usize, q: &[f32], kt: &[f32], s: &mut [f32], scale: f32) {
    for (r, sr) in s.chunks_exact_mut(BK).take(rows).enumerate() {
        sr.fill(0.0);
        for (e, ke) in kt.chunks_exact(BK).take(d).enumerate() {
            let a = q[r * d + e];
            sr.iter_mut().zip(ke).for_each(|(x, &k)| *x += a * k);
        }
        sr.iter_mut().for_each(|x| *x *= scale);
    }
}

multiversion! {
    fn scores_portable(rows: usize, d: usize, q: &[f32], kt: &[f32], s: &mut [f32], scale: f32) = scores_body;
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gemm_body(
    rows: usize,
    kdim: usize,
    d: usize,
    a: &[f32],
    rs: usize,
    ks: usize,
    b: &[f32],
    corr: &[f32],
    has_corr: bool,
    c: &mut [f32],
) {
    for (r, cr) in c.chunks_exact_mut(d).take(rows).enumerate() {
        if has_corr && corr[r] != 1.0 {
            let f = corr[r];
            cr.iter_mut().for_each(|x| *x *= f);
        }
        for (k, bk) in b.chunks_exact(d).take(kdim).enumerate() {
            let x = a[r * rs + k * ks];
            cr.iter_mut().zip(bk).for_each(|(y, &z)| *y += x * z);
        }
    }
}

multiversion! {
    #[allow(clippy::too_many_arguments)]
    fn gemm_portable(rows: usize, kdim: usize, d: usize, a: &[f32], rs: usize, ks: usize, b: &[f32], corr: &[f32], has_corr: bool, c: &mut [f32]) = gemm_body;
}

#[inline(always)]
fn softmax_grad_body(dp: &mut [f32], p: &[f32], delta: f32, scale: f32) {
    dp.iter_mut()
        .zip(p)
        .for_each(|(g, &pj)| *g = scale * pj * (*g - delta));
}

multiversion! {
    /// `dp_j ← scale·p_j·(dp_j − δ)`: the gradient of the scores through the softmax.
    pub fn softmax_grad(dp: &mut [f32], p: &[f32], delta: f32, scale: f32) = softmax_grad_body;
}

// Keep MR in use on targets without the AVX-512 kernels.
const _: () = assert!(MR >= 1);
