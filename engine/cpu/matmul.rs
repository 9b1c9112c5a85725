//! Batched matmul on the CPU. A straightforward row-parallel kernel: each output row is an
//! accumulation of scaled rows of B (i-k-j order, so the inner loop is a contiguous axpy the
//! compiler vectorizes). Weights in f16/bf16 are widened once per batch.

use super::memory::{boxed, f32_only, f32_values, host};
use crate::engine::device::{Buffer, View};
use crate::engine::error::Result;
use crate::engine::layout::Layout;
use crate::engine::storage::HostBuffer;
use rayon::prelude::*;

/// `[…, M, K] × […, K, N]` with equal (possibly stride-0) batch dims.
pub fn matmul(lhs: View, rhs: View) -> Result<Buffer> {
    host(&lhs)?;
    let r = lhs.layout.rank();
    let (m, k) = (lhs.shape()[r - 2], lhs.shape()[r - 1]);
    let n = rhs.shape()[r - 1];
    let batch: usize = lhs.shape()[..r - 2].iter().product();
    let mut out = vec![0f32; batch * m * n];
    for (bi, (la, lb)) in batch_layouts(lhs.layout)
        .zip(batch_layouts(rhs.layout))
        .enumerate()
    {
        let a = f32_only("matmul", &View::new(lhs.buf, &la))?;
        let b = f32_values("matmul", &View::new(rhs.buf, &lb))?;
        let c = &mut out[bi * m * n..(bi + 1) * m * n];
        gemm(&a, &b, c, m, k, n);
    }
    Ok(boxed(HostBuffer::F32(out)))
}

/// The `[rows, cols]` layout of each batch entry, in row-major batch order.
fn batch_layouts(l: &Layout) -> impl Iterator<Item = Layout> {
    let r = l.rank();
    let outer = Layout::new(
        l.shape()[..r - 2].to_vec(),
        l.strides()[..r - 2].to_vec(),
        l.offset(),
    );
    let tail_shape = l.shape()[r - 2..].to_vec();
    let tail_strides = l.strides()[r - 2..].to_vec();
    let offsets: Vec<usize> = outer.offsets().collect();
    offsets
        .into_iter()
        .map(move |o| Layout::new(tail_shape.clone(), tail_strides.clone(), o))
}

/// C[m×n] = A[m×k]·B[k×n], all contiguous row-major.
pub fn gemm(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    let row = |(i, ci): (usize, &mut [f32])| {
        for (p, &aip) in a[i * k..(i + 1) * k].iter().enumerate() {
            let bp = &b[p * n..(p + 1) * n];
            for (cj, &bj) in ci.iter_mut().zip(bp) {
                *cj += aip * bj;
            }
        }
    };
    if n == 0 {
        return;
    }
    if m * k * n >= 1 << 16 {
        c.par_chunks_mut(n).enumerate().for_each(row);
    } else {
        c.chunks_mut(n).enumerate().for_each(row);
    }
}
