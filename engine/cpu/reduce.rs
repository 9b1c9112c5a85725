//! Reductions over one dimension, viewed as `[outer, n, inner]`, accumulating in f32
//! (f64 for sums, so long rows do not drift).

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
    let one = |o: usize, i: usize| -> f32 {
        let at = |k: usize| x[(o * n + k) * inner + i];
        match op {
            ReduceOp::Sum => (0..n).map(|k| at(k) as f64).sum::<f64>() as f32,
            ReduceOp::Max => (0..n).map(at).fold(f32::NEG_INFINITY, f32::max),
            ReduceOp::Min => (0..n).map(at).fold(f32::INFINITY, f32::min),
            ReduceOp::Argmax => {
                let mut best = 0;
                for k in 1..n {
                    // NaN never wins, matching "first maximum" on ordinary data.
                    if at(k) > at(best) {
                        best = k;
                    }
                }
                best as f32
            }
        }
    };
    let count = outer * inner;
    let out: Vec<f32> = if count * n >= super::elementwise::PAR_THRESHOLD && count > 1 {
        (0..count)
            .into_par_iter()
            .map(|j| one(j / inner, j % inner))
            .collect()
    } else {
        (0..count).map(|j| one(j / inner, j % inner)).collect()
    };
    Ok(boxed(match op {
        ReduceOp::Argmax => HostBuffer::U32(out.into_iter().map(|v| v as u32).collect()),
        _ => HostBuffer::F32(out),
    }))
}
