//! What `osum bench` measures ours against: the `gemm` crate (0.19, `Parallelism::Rayon`)
//! and a plain im2col feeding it for convolutions. Compiled only with the default feature
//! `bench-reference`; the engine never uses any of this.

use rayon::prelude::*;

/// A row-major-or-strided f32 matrix operand: element (i, j) is `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "bench-reference"), allow(dead_code))] // read by the reference only
pub struct Mat<'a> {
    /// Backing elements.
    pub data: &'a [f32],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row stride, elements.
    pub rs: usize,
    /// Column stride, elements.
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// Row-major `rows × cols`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of a row-major `cols × rows` matrix, without copying (x·Wᵀ's Wᵀ).
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            rs: 1,
            cs: rows,
        }
    }

    /// True when every element index lies inside `data`.
    #[cfg_attr(not(feature = "bench-reference"), allow(dead_code))]
    fn in_bounds(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let last = (self.rows - 1)
            .checked_mul(self.rs)
            .zip((self.cols - 1).checked_mul(self.cs))
            .and_then(|(a, b)| a.checked_add(b));
        matches!(last, Some(i) if i < self.data.len())
    }
}

/// Whether the reference was compiled in.
pub fn available() -> bool {
    cfg!(feature = "bench-reference")
}

/// What the reference is, for the logs.
pub fn describe(threads: usize) -> String {
    format!("gemm crate 0.19, Parallelism::Rayon({threads})")
}

/// `dst = a·b` (row-major `dst`, `a.rows × b.cols`) with the `gemm` crate on `threads`
/// rayon threads.
#[cfg(feature = "bench-reference")]
pub fn gemm(a: Mat, b: Mat, dst: &mut [f32], threads: usize) -> Result<(), String> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k || dst.len() != m * n || !a.in_bounds() || !b.in_bounds() {
        return Err(format!(
            "reference gemm: operands do not fit ({m}×{k} · {}×{n} → {} elements)",
            b.rows,
            dst.len()
        ));
    }
    let s = |x: usize| x as isize;
    // SAFETY: every index the kernel forms, (i·rs + j·cs) for i < rows and j < cols, was
    // checked above to lie inside its slice; `dst` is an exclusive borrow of exactly m·n
    // elements with row stride n, so it aliases neither input. read_dst = false means dst is
    // only written (alpha is ignored): dst = 1·a·b.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            s(n),
            false,
            a.data.as_ptr(),
            s(a.cs),
            s(a.rs),
            b.data.as_ptr(),
            s(b.cs),
            s(b.rs),
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(threads.max(1)),
        );
    }
    Ok(())
}

/// Without the reference compiled in, every call says so.
#[cfg(not(feature = "bench-reference"))]
pub fn gemm(_: Mat, _: Mat, _: &mut [f32], _: usize) -> Result<(), String> {
    Err(NOT_COMPILED.into())
}

/// The message when the reference is missing.
pub const NOT_COMPILED: &str = "the reference GEMM is not compiled in: build with the default \
     feature `bench-reference` (cargo build --release) to compare against the gemm crate";

/// Geometry of a 1-D convolution `x [C, L] ⋆ w [O, C, K] → [O, OL]` (batch 1).
#[derive(Clone, Copy, Debug)]
pub struct Conv1d {
    /// Input channels.
    pub c: usize,
    /// Input length.
    pub l: usize,
    /// Output channels.
    pub o: usize,
    /// Kernel width.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on both sides.
    pub pad: usize,
}

impl Conv1d {
    /// Output length `(L + 2·pad − K)/stride + 1`.
    pub fn out_len(&self) -> usize {
        (self.l + 2 * self.pad).saturating_sub(self.k) / self.stride.max(1) + 1
    }
}

/// Columns `[C·K, OL]`: row `c·K + j`, column `t` holds `x[c, t·stride + j − pad]` (0 in the
/// padding) — the standard im2col, one row per rayon task.
pub fn im2col_1d(x: &[f32], g: Conv1d, cols: &mut [f32]) {
    let ol = g.out_len();
    cols.par_chunks_mut(ol).enumerate().for_each(|(row, out)| {
        let (c, j) = (row / g.k, row % g.k);
        let src = &x[c * g.l..(c + 1) * g.l];
        for (t, o) in out.iter_mut().enumerate() {
            let pos = (t * g.stride + j).wrapping_sub(g.pad);
            *o = src.get(pos).copied().unwrap_or(0.0);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn im2col_matches_the_definition() {
        let g = Conv1d {
            c: 2,
            l: 5,
            o: 1,
            k: 3,
            stride: 2,
            pad: 1,
        };
        assert_eq!(g.out_len(), 3);
        let x: Vec<f32> = (1..=10).map(|v| v as f32).collect();
        let mut cols = vec![f32::NAN; 2 * 3 * 3];
        im2col_1d(&x, g, &mut cols);
        // Channel 0 = 1..5; taps j = 0, 1, 2 at positions 2t − 1 + j.
        assert_eq!(&cols[0..3], &[0.0, 2.0, 4.0]);
        assert_eq!(&cols[3..6], &[1.0, 3.0, 5.0]);
        assert_eq!(&cols[6..9], &[2.0, 4.0, 0.0]);
        assert_eq!(&cols[9..12], &[0.0, 7.0, 9.0]);
    }

    #[cfg(feature = "bench-reference")]
    #[test]
    fn reference_gemm_handles_both_layouts() {
        // a = [[1, 2], [3, 4]]; w = [[5, 6], [7, 8]] (as W [N, K]); a·wᵀ = [[17, 23], [39, 53]].
        let a = [1.0, 2.0, 3.0, 4.0];
        let w = [5.0, 6.0, 7.0, 8.0];
        let mut d = [0.0; 4];
        gemm(
            Mat::row_major(&a, 2, 2),
            Mat::transposed(&w, 2, 2),
            &mut d,
            1,
        )
        .unwrap();
        assert_eq!(d, [17.0, 23.0, 39.0, 53.0]);
        gemm(
            Mat::row_major(&a, 2, 2),
            Mat::row_major(&w, 2, 2),
            &mut d,
            2,
        )
        .unwrap();
        assert_eq!(d, [19.0, 22.0, 43.0, 50.0]);
        assert!(gemm(
            Mat::row_major(&a, 2, 3),
            Mat::row_major(&w, 3, 1),
            &mut d,
            1
        )
        .is_err());
    }
}
