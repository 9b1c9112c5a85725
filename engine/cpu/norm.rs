//! Row-wise kernels over the last dimension: softmax, log-softmax, LayerNorm and RMSNorm.
//!
//! Each input is read once into a contiguous f32 copy (strided views are gathered by
//! `memory::f32_only`), then every row of length `D` is processed independently, so rows are
//! spread over rayon once the tensor is large enough to pay for the scheduling. Row statistics
//! (sums, means, variances) accumulate in f64 so long rows do not drift; the per-element work
//! stays in f32 over contiguous slices, through the vectorized primitives of `vector` (max,
//! exp-and-sum with the polynomial exp, scale) and `multiversion!` loops of this file.

use super::elementwise::PAR_THRESHOLD;
use super::memory::{boxed, f32_only, f32_values};
use super::vector::{self, multiversion};
use crate::engine::device::{Buffer, View};
use crate::engine::error::{Error, Result};
use crate::engine::storage::HostBuffer;
use rayon::prelude::*;

/// Length of the last dimension of a view (1 for a 0-d view, which is a single row).
pub fn last_dim(v: &View) -> usize {
    v.shape().last().copied().unwrap_or(1)
}

/// Calls `f(row_index, row)` on every length-`d` row of `out`, in parallel when `out` holds at
/// least [`PAR_THRESHOLD`] elements and more than one row. Does nothing when `d == 0` (there is
/// no row to process, and `chunks(0)` would be meaningless).
pub fn for_each_row(out: &mut [f32], d: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if d == 0 {
        return;
    }
    if out.len() >= PAR_THRESHOLD && out.len() > d {
        out.par_chunks_mut(d)
            .enumerate()
            .for_each(|(r, row)| f(r, row));
    } else {
        out.chunks_mut(d).enumerate().for_each(|(r, row)| f(r, row));
    }
}

/// Largest element of a row (−∞ for an empty row).
pub fn row_max(x: &[f32]) -> f32 {
    vector::max(x)
}

/// `ln Σ exp(x)` of a row, computed as `m + ln Σ exp(x − m)` with `m = max x` so no term
/// overflows (every exponent is ≤ 0) and at least one term is exactly 1. The exponentials go
/// through a stack buffer, so a vocabulary-sized row needs no allocation.
pub fn row_log_sum_exp(x: &[f32]) -> f32 {
    let m = row_max(x);
    if m == f32::INFINITY {
        return m;
    }
    let mut buf = [0f32; 1024];
    let s: f64 = x
        .chunks(buf.len())
        .map(|c| {
            let b = &mut buf[..c.len()];
            b.copy_from_slice(c);
            vector::exp_sub_sum(b, m)
        })
        .sum();
    m + s.ln() as f32
}

/// Softmax over the last dimension: `yᵢ = exp(xᵢ − m) / Σⱼ exp(xⱼ − m)`, `m = max x`.
/// Subtracting the row max makes ±1000-sized logits safe. A row that is entirely −∞ has no
/// distribution and comes out NaN (as in PyTorch).
pub fn softmax(src: View) -> Result<Buffer> {
    let x = f32_only("softmax", &src)?;
    let d = last_dim(&src);
    let mut out = vec![0f32; x.len()];
    // Each row is copied by its own worker, so the copy is parallel and leaves it in cache.
    for_each_row(&mut out, d, |r, y| {
        y.copy_from_slice(&x[r * d..(r + 1) * d]);
        softmax_in_place(y);
    });
    Ok(boxed(HostBuffer::F32(out)))
}

/// The softmax of one row, in place.
pub fn softmax_in_place(y: &mut [f32]) {
    let m = row_max(y);
    // An all −∞ row: exp(−∞ − (−∞)) is NaN, as the definition gives.
    let m = if m == f32::NEG_INFINITY { f32::NAN } else { m };
    let s = vector::exp_sub_sum(y, m);
    vector::scale(y, (1.0 / s) as f32);
}

/// Log-softmax over the last dimension: `yᵢ = xᵢ − (m + ln Σⱼ exp(xⱼ − m))`, never forming the
/// (possibly underflowing) probabilities themselves.
pub fn log_softmax(src: View) -> Result<Buffer> {
    let x = f32_only("log_softmax", &src)?;
    let d = last_dim(&src);
    let mut out = vec![0f32; x.len()];
    for_each_row(&mut out, d, |r, y| {
        let row = &x[r * d..(r + 1) * d];
        let lse = row_log_sum_exp(row);
        sub_slice(y, row, lse);
    });
    Ok(boxed(HostBuffer::F32(out)))
}

#[inline(always)]
fn sub_body(y: &mut [f32], x: &[f32], c: f32) {
    y.iter_mut().zip(x).for_each(|(o, &v)| *o = v - c);
}

multiversion! {
    /// yᵢ = xᵢ − c
    fn sub_slice(y: &mut [f32], x: &[f32], c: f32) = sub_body;
}

/// Per-lane partial sums of `x` and of `(x − c)²` over one block: 16 f32 lanes, at most 16
/// terms each for a 256-element block, so the f32 partial sums lose nothing measurable.
#[inline(always)]
fn lane_sums_body(x: &[f32], c: f32) -> ([f32; 16], [f32; 16]) {
    let (mut s, mut q) = ([0f32; 16], [0f32; 16]);
    let ch = x.chunks_exact(16);
    for (i, &v) in ch.remainder().iter().enumerate() {
        s[i] += v;
        q[i] += (v - c) * (v - c);
    }
    // Zipped iterators (not indices) so the lanes vectorize into whole registers.
    for v in ch {
        for ((s, q), &v) in s.iter_mut().zip(q.iter_mut()).zip(v) {
            *s += v;
            *q += (v - c) * (v - c);
        }
    }
    (s, q)
}

multiversion! {
    fn lane_sums(x: &[f32], c: f32) -> ([f32; 16], [f32; 16]) = lane_sums_body;
}

/// Σ xᵢ and Σ (xᵢ − c)² in f64: vectorized f32 lanes per 256-element block, folded into f64
/// per block so long rows do not drift. (A separate, non-inlined block function is what lets
/// the compiler keep the lanes in vector registers.)
fn sums(x: &[f32], c: f32) -> (f64, f64) {
    let (mut ts, mut tq) = (0f64, 0f64);
    for block in x.chunks(256) {
        let (s, q) = lane_sums(block, c);
        ts += s.iter().map(|&a| a as f64).sum::<f64>();
        tq += q.iter().map(|&a| a as f64).sum::<f64>();
    }
    (ts, tq)
}

/// `yᵢ = (xᵢ − μ)·rstd·wᵢ (+ bᵢ)`; RMSNorm passes μ = 0.
#[inline(always)]
fn normalize_body(y: &mut [f32], x: &[f32], mean: f32, rstd: f32, w: &[f32], b: Option<&[f32]>) {
    y.iter_mut()
        .zip(x.iter().zip(w))
        .for_each(|(o, (&v, &wi))| *o = (v - mean) * rstd * wi);
    if let Some(b) = b {
        y.iter_mut().zip(b).for_each(|(o, &bi)| *o += bi);
    }
}

multiversion! {
    fn normalize(y: &mut [f32], x: &[f32], mean: f32, rstd: f32, w: &[f32], b: Option<&[f32]>) = normalize_body;
}

/// Error unless a per-feature parameter (weight or bias) has exactly `d` elements, so a bad
/// call reaching the kernel directly is an error rather than an out-of-bounds panic.
fn check_param(op: &'static str, p: &[f32], d: usize, shape: &[usize]) -> Result<()> {
    if p.len() != d {
        return Err(Error::BadShape {
            op,
            shape: shape.to_vec(),
            msg: format!("expected {d} elements, one per feature of the last dimension"),
        });
    }
    Ok(())
}

/// LayerNorm over the last dimension: `yᵢ = (xᵢ − μ)·rstd·wᵢ + bᵢ` with `μ = mean x`,
/// `rstd = 1/√(σ² + eps)` and the biased variance `σ² = mean (x − μ)²` (two passes, in f64, so
/// a large mean does not cancel the variance away). `w`/`b` may be f32, f16 or bf16.
pub fn layer_norm(x: View, w: View, b: Option<View>, eps: f32) -> Result<Buffer> {
    const OP: &str = "layer_norm";
    let xs = f32_only(OP, &x)?;
    let d = last_dim(&x);
    let ws = f32_values(OP, &w)?;
    check_param(OP, &ws, d, w.shape())?;
    let bs = match &b {
        Some(b) => {
            let bs = f32_values(OP, b)?;
            check_param(OP, &bs, d, b.shape())?;
            Some(bs)
        }
        None => None,
    };
    let mut out = vec![0f32; xs.len()];
    for_each_row(&mut out, d, |r, y| {
        let row = &xs[r * d..(r + 1) * d];
        let mean = sums(row, 0.0).0 / d as f64;
        let var = sums(row, mean as f32).1 / d as f64;
        let rstd = (1.0 / (var + eps as f64).sqrt()) as f32;
        normalize(y, row, mean as f32, rstd, &ws, bs.as_deref());
    });
    Ok(boxed(HostBuffer::F32(out)))
}

/// RMSNorm over the last dimension: `yᵢ = xᵢ·rstd·wᵢ`, `rstd = 1/√(mean x² + eps)` (mean of
/// squares in f64). `w` may be f32, f16 or bf16.
pub fn rms_norm(x: View, w: View, eps: f32) -> Result<Buffer> {
    const OP: &str = "rms_norm";
    let xs = f32_only(OP, &x)?;
    let d = last_dim(&x);
    let ws = f32_values(OP, &w)?;
    check_param(OP, &ws, d, w.shape())?;
    let mut out = vec![0f32; xs.len()];
    for_each_row(&mut out, d, |r, y| {
        let row = &xs[r * d..(r + 1) * d];
        let ms = sums(row, 0.0).1 / d as f64;
        let rstd = (1.0 / (ms + eps as f64).sqrt()) as f32;
        normalize(y, row, 0.0, rstd, &ws, None);
    });
    Ok(boxed(HostBuffer::F32(out)))
}
