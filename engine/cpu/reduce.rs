//! Reductions over one dimension, viewed as `[outer, n, inner]`. Sums accumulate in f64 so long
//! rows do not drift; argmax returns u32 indices directly (no round trip through a float).

use super::elementwise::PAR_THRESHOLD;
use super::memory::{boxed, f32_values};
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
        ReduceOp::Sum => HostBuffer::F32(collect(count, parallel, |j| {
            line(j).map(|v| v as f64).sum::<f64>() as f32
        })),
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
