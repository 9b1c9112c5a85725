//! Reductions over one dimension, viewed as `[outer, n, inner]`. Sums accumulate in f64 so long
//! rows do not drift; argmax returns u32 indices directly (no round trip through a float).
//!
//! Sums are the training loop's most frequent reduction (loss terms, bias gradients, the
//! gradient norm), so they stream memory in order instead of walking one line at a time:
//! over the last dimension each line is a contiguous slice summed in SIMD f64 lanes (a long
//! single line in fixed blocks, in parallel, folded in block order, so the result does not
//! depend on the thread count); over an earlier dimension whole rows of `inner` values are
//! added into f64 accumulators, each output still summed over `n` in order.

use super::elementwise::PAR_THRESHOLD;
use super::memory::{boxed, f32_values};
use super::vector;
use crate::engine::device::{Buffer, ReduceOp, View};
use crate::engine::error::Result;
use crate::engine::storage::HostBuffer;
use rayon::prelude::*;

/// Reduce `dim` of `src`, keeping it with size 1.
pub fn reduce(op: ReduceOp, src: View, dim: usize) -> Result<Buffer> {
    let x = f32_values(op.name(), &src)?;
    let shape = src.shape();
    let n = shape[dim];
    let outer: usize = shape[..dim].iter().product();
    let inner: usize = shape[dim + 1..].iter().product();
    // Element k of output j's reduction line.
    let line = |j: usize| {
        let (o, i) = (j / inner, j % inner);
        let x = &x;
        (0..n).map(move |k| x[(o * n + k) * inner + i])
    };
    let parallel = outer * inner > 1 && outer * inner * n >= PAR_THRESHOLD;
    fn collect<T: Send>(
        count: usize,
        parallel: bool,
        f: impl Fn(usize) -> T + Sync + Send,
    ) -> Vec<T> {
        if parallel {
            (0..count).into_par_iter().map(f).collect()
        } else {
            (0..count).map(f).collect()
        }
    }
    let count = outer * inner;
    Ok(boxed(match op {
        ReduceOp::Sum => HostBuffer::F32(sum(&x, outer, n, inner)),
        ReduceOp::Max => HostBuffer::F32(collect(count, parallel, |j| {
            line(j).fold(f32::NEG_INFINITY, f32::max)
        })),
        ReduceOp::Min => HostBuffer::F32(collect(count, parallel, |j| {
            line(j).fold(f32::INFINITY, f32::min)
        })),
        ReduceOp::Argmax => HostBuffer::U32(collect(count, parallel, |j| {
            // Strictly greater keeps the first maximum; NaN never wins.
            let mut best = (0u32, f32::NEG_INFINITY);
            for (k, v) in line(j).enumerate() {
                if k == 0 || v > best.1 {
                    best = (k as u32, v);
                }
            }
            best.0
        })),
    }))
}

/// Elements per block of a long line summed in parallel, and columns per task of a sum over an
/// earlier dimension: fixed, so the blocks (and the result) do not depend on the thread count.
const BLOCK: usize = 1 << 15;

/// Sum `x` viewed as `[outer, n, inner]` over `n`, in f64, into `[outer, inner]`.
fn sum(x: &[f32], outer: usize, n: usize, inner: usize) -> Vec<f32> {
    let parallel = outer * n * inner >= PAR_THRESHOLD;
    let mut out = vec![0f32; outer * inner];
    if inner == 1 {
        let line = |j: usize| &x[j * n..(j + 1) * n];
        if outer == 1 && n > BLOCK {
            let parts: Vec<f64> = line(0).par_chunks(BLOCK).map(vector::sum_f64).collect();
            out[0] = parts.iter().sum::<f64>() as f32;
        } else if parallel {
            out.par_iter_mut()
                .enumerate()
                .for_each(|(j, o)| *o = vector::sum_f64(line(j)) as f32);
        } else {
            for (j, o) in out.iter_mut().enumerate() {
                *o = vector::sum_f64(line(j)) as f32;
            }
        }
        return out;
    }
    // Columns [c0, c0 + width) of output row `o`: rows k = 0..n added in order into `acc`, a
    // scratch line reused across calls (a tiny `inner` under a huge `outer` would otherwise
    // allocate once per output row).
    let columns = |o: usize, c0: usize, dst: &mut [f32], acc: &mut Vec<f64>| {
        acc.clear();
        acc.resize(dst.len(), 0.0);
        for k in 0..n {
            let row = (o * n + k) * inner + c0;
            vector::add_widened(acc, &x[row..row + dst.len()]);
        }
        for (d, a) in dst.iter_mut().zip(acc.iter()) {
            *d = *a as f32;
        }
    };
    if parallel {
        out.par_chunks_mut(inner)
            .enumerate()
            .flat_map(|(o, orow)| {
                orow.par_chunks_mut(BLOCK)
                    .enumerate()
                    .map(move |(c, dst)| (o, c, dst))
            })
            .for_each_init(Vec::new, |acc, (o, c, dst)| columns(o, c * BLOCK, dst, acc));
    } else {
        let mut acc = Vec::new();
        for (o, orow) in out.chunks_mut(inner).enumerate() {
            for (c, dst) in orow.chunks_mut(BLOCK).enumerate() {
                columns(o, c * BLOCK, dst, &mut acc);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{sum, BLOCK};

    /// Deterministic values of mixed sign and magnitude.
    fn values(len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-3 * (1 + i % 3) as f32)
            .collect()
    }

    /// `x` `[outer, n, inner]` summed over `n` left to right in f64.
    fn reference(x: &[f32], outer: usize, n: usize, inner: usize) -> Vec<f32> {
        (0..outer * inner)
            .map(|j| {
                let (o, i) = (j / inner, j % inner);
                (0..n)
                    .map(|k| x[(o * n + k) * inner + i] as f64)
                    .sum::<f64>() as f32
            })
            .collect()
    }

    #[test]
    fn sums_on_the_parallel_paths_match_a_left_to_right_f64_sum_on_any_thread_count() {
        // One long line (blocks in parallel), many lines, an earlier dimension wider than a
        // column block, many short output rows sharing scratch lines, and a small one that runs
        // serially.
        let shapes = [
            (1, 3 * BLOCK + 17, 1),
            (300, 257, 1),
            (2, 9, BLOCK + 5),
            (20_000, 3, 2),
            (3, 4, 5),
        ];
        for (outer, n, inner) in shapes {
            let x = values(outer * n * inner);
            let want = reference(&x, outer, n, inner);
            let run = |threads: usize| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| sum(&x, outer, n, inner))
            };
            let (one, two) = (run(1), run(2));
            assert_eq!(
                one, two,
                "{outer}x{n}x{inner}: thread count changed the sum"
            );
            for (g, w) in one.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                    "{outer}x{n}x{inner}: {g} vs {w}"
                );
            }
        }
    }
}
