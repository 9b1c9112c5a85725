//! Cross-entropy over rows of logits `[N, V]` with integer targets `[N]`.
//!
//! Per row, `nll = lse(x) − x[target]` with the stable log-sum-exp `lse(x) = m + ln Σ exp(x − m)`
//! (`m = max x`); its gradient with respect to the logits is `softmax(x) − onehot(target)`.
//! Rows whose target equals `ignore_index` contribute 0 and get a zero gradient.
//! The exponentials and sums run through the vectorized `vector` primitives (polynomial exp,
//! f64 row sums); rows go over rayon only when the logits are large.

use super::elementwise::PAR_THRESHOLD;
use super::memory::{boxed, f32_only, id_values};
use super::norm::{for_each_row, row_log_sum_exp, row_max};
use super::vector;
use crate::engine::device::{Buffer, View};
use crate::engine::error::{Error, Result};
use crate::engine::storage::HostBuffer;
use rayon::prelude::*;

/// Per-row targets resolved against the vocabulary: `Some(class)` or `None` for an ignored row.
/// A target outside `0..V` (that is not `ignore_index`) is an error, never an out-of-bounds read.
fn resolve_targets(
    op: &'static str,
    targets: &View,
    rows: usize,
    vocab: usize,
    ignore_index: i64,
) -> Result<Vec<Option<usize>>> {
    let ids = id_values(op, targets)?;
    if ids.len() != rows {
        return Err(Error::ShapeMismatch {
            op,
            lhs: vec![rows, vocab],
            rhs: targets.shape().to_vec(),
        });
    }
    ids.into_iter()
        .map(|t| {
            if t == ignore_index {
                Ok(None)
            } else if t < 0 || t as u64 >= vocab as u64 {
                Err(Error::IndexOutOfRange {
                    op,
                    index: t,
                    size: vocab,
                })
            } else {
                Ok(Some(t as usize))
            }
        })
        .collect()
}

/// `(rows, vocab)` of a `[N, V]` logits view.
fn rows_vocab(op: &'static str, logits: &View) -> Result<(usize, usize)> {
    match logits.shape() {
        [n, v] => Ok((*n, *v)),
        s => Err(Error::BadShape {
            op,
            shape: s.to_vec(),
            msg: "expected logits [N, V]".into(),
        }),
    }
}

/// Per-row negative log-likelihood `[N]`; 0 for ignored rows.
pub fn cross_entropy(logits: View, targets: View, ignore_index: i64) -> Result<Buffer> {
    const OP: &str = "cross_entropy";
    let (n, v) = rows_vocab(OP, &logits)?;
    let tgt = resolve_targets(OP, &targets, n, v, ignore_index)?;
    let x = f32_only(OP, &logits)?;
    let nll = |r: usize| match tgt[r] {
        Some(t) => {
            let row = &x[r * v..(r + 1) * v];
            row_log_sum_exp(row) - row[t]
        }
        None => 0.0,
    };
    // One value per row; rows are independent, so spread them when the logits are large.
    let out: Vec<f32> = if n * v >= PAR_THRESHOLD && n > 1 {
        (0..n).into_par_iter().map(nll).collect()
    } else {
        (0..n).map(nll).collect()
    };
    Ok(boxed(HostBuffer::F32(out)))
}

/// `dlogits[i] = grad[i]·(softmax(logits[i]) − onehot(target[i]))`, zero rows where ignored.
/// `grad` is `[N]` (a stride-0 broadcast of one scalar is fine).
pub fn cross_entropy_backward(
    logits: View,
    targets: View,
    grad: View,
    ignore_index: i64,
) -> Result<Buffer> {
    const OP: &str = "cross_entropy_backward";
    let (n, v) = rows_vocab(OP, &logits)?;
    let tgt = resolve_targets(OP, &targets, n, v, ignore_index)?;
    let x = f32_only(OP, &logits)?;
    let g = f32_only(OP, &grad)?;
    if g.len() != n {
        return Err(Error::ShapeMismatch {
            op: OP,
            lhs: vec![n, v],
            rhs: grad.shape().to_vec(),
        });
    }
    let mut out = vec![0f32; n * v];
    for_each_row(&mut out, v, |r, dx| {
        let Some(t) = tgt[r] else {
            return; // ignored row: zero gradient (already zero)
        };
        dx.copy_from_slice(&x[r * v..(r + 1) * v]);
        let m = row_max(dx);
        let s = vector::exp_sub_sum(dx, m);
        vector::scale(dx, (g[r] as f64 / s) as f32);
        dx[t] -= g[r];
    });
    Ok(boxed(HostBuffer::F32(out)))
}
