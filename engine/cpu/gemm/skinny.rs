//! Narrow products: `C (+)= A·B` with at most [`SKINNY`] columns, in f32 without packing. LoRA's
//! rank-r factors make several of its products such a shape: `x·Aᵀ` (n = r) and the gradient
//! `Gᵀ·h` of B (n = r, A transposed). The packed kernels pad n to their tile (a 32-wide AMX
//! tile holds 8 useful columns) and pack all of A for a handful of multiply-adds per element,
//! so these ran at 10–15 GFLOP/s; here A is streamed once, in order.
//!
//! The other rank-sized products were tried here and left to the packed kernels, which were as
//! fast or faster: depth k = r (`h·Bᵀ`: one pass of row-register accumulation measured the same
//! as AMX, both bound by writing C) and height m = r (the gradient of A: slower here).
//!
//! All arithmetic is f32 (half weights widened exactly), whatever the device's precision: the
//! products are memory-bound, so rounding to bf16 would lose accuracy and gain nothing.

use super::{pack, Rhs, Start};
use crate::engine::cpu::vector;
use rayon::prelude::*;

/// The most columns of C handled here.
pub const SKINNY: usize = 16;
/// Rows of C per parallel task.
const ROWS_PER_TASK: usize = 64;

/// `C = start + A·B` when n ≤ [`SKINNY`] and A's rows or columns are dense, returning false
/// (and leaving C untouched) for every other shape or layout. Operands as in
/// [`super::gemm_precision`]; bounds were checked by the caller.
pub(super) fn gemm(
    (m, k, n): (usize, usize, usize),
    (a, a_rs, a_cs): (&[f32], usize, usize),
    b: Rhs,
    (c, c_rs): (&mut [f32], usize),
    start: Start,
    parallel: bool,
) -> bool {
    let c_len = (m - 1) * c_rs + n;
    if n > SKINNY {
        return false;
    }
    if a_cs == 1 {
        // Rows of A dense: each C[i, j] is one dot product of A's row with Bᵀ's row j.
        let bt = pack::dense(b, k, n, true);
        for_rows(&mut c[..c_len], c_rs, parallel, |i, row| {
            let row = &mut row[..n];
            start.apply_row(row);
            let ai = &a[i * a_rs..i * a_rs + k];
            for (cj, btj) in row.iter_mut().zip(bt.chunks_exact(k)) {
                *cj += vector::dot(ai, btj);
            }
        });
        return true;
    }
    if a_rs == 1 {
        // A transposed (its columns dense, as in a weight gradient Xᵀ·G): accumulate Cᵀ's rows
        // for a band of C's rows as axpys of A's columns, then set the band's rows to their
        // start value and add it.
        let bd = pack::dense(b, k, n, false);
        let band = |i0: usize, rows: &mut [f32]| {
            let len = (m - i0).min(ROWS_PER_TASK);
            let mut ct = vec![0f32; n * len];
            for (p, bp) in bd.chunks_exact(n).enumerate() {
                let col = &a[p * a_cs + i0..p * a_cs + i0 + len];
                for (ctj, &bpj) in ct.chunks_exact_mut(len).zip(bp) {
                    vector::axpy(ctj, bpj, col);
                }
            }
            for (r, row) in rows.chunks_mut(c_rs).take(len).enumerate() {
                let row = &mut row[..n];
                start.apply_row(row);
                for (j, cj) in row.iter_mut().enumerate() {
                    *cj += ct[j * len + r];
                }
            }
        };
        let c = &mut c[..c_len];
        if parallel {
            c.par_chunks_mut(ROWS_PER_TASK * c_rs)
                .enumerate()
                .for_each(|(t, rows)| band(t * ROWS_PER_TASK, rows));
        } else {
            for (t, rows) in c.chunks_mut(ROWS_PER_TASK * c_rs).enumerate() {
                band(t * ROWS_PER_TASK, rows);
            }
        }
        return true;
    }
    false
}

/// Run `f(i, row)` on each row of C (`c_rs` apart; the last may be shorter), in parallel bands
/// of [`ROWS_PER_TASK`] rows when `parallel`.
fn for_rows(c: &mut [f32], c_rs: usize, parallel: bool, f: impl Fn(usize, &mut [f32]) + Sync) {
    if parallel {
        c.par_chunks_mut(c_rs)
            .enumerate()
            .with_min_len(ROWS_PER_TASK)
            .for_each(|(i, row)| f(i, row));
    } else {
        c.chunks_mut(c_rs)
            .enumerate()
            .for_each(|(i, row)| f(i, row));
    }
}
