//! Convolution on the CPU: im2col / col2im, and conv2d as im2col + one GEMM over all images.
//!
//! Column layout (row-major): for one image the columns matrix is `[C·KH·KW, OH·OW]`; row
//! `r = (c·KH + i)·KW + j`, column `oh·OW + ow` holds
//! `x[c, oh·sh + i·dh − ph, ow·sw + j·dw − pw]`, or 0 where that lands in the zero padding.
//! With this layout the convolution of one image is the plain matrix product
//! `Y[O, OH·OW] = W[O, C·KH·KW] · cols[C·KH·KW, OH·OW]` (W `[O, C, KH, KW]` read row-major),
//! which goes through the shared [`gemm`]. Only `groups = 1` is supported.

use super::elementwise::PAR_THRESHOLD;
use super::gemm::{gemm_precision, Finish, Precision, Rhs, Start, Weights};
use super::memory::{boxed, f32_only, f32_values};
use crate::engine::device::{Buffer, Conv2dParams, View};
use crate::engine::error::{Error, Result};
use crate::engine::storage::HostBuffer;
use rayon::prelude::*;
use std::borrow::Cow;

/// Sizes of one convolution, validated once so the loops below can index freely.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    /// Input channels.
    c: usize,
    /// Input height and width.
    h: usize,
    w: usize,
    /// Kernel height and width.
    kh: usize,
    kw: usize,
    /// Output height and width.
    oh: usize,
    ow: usize,
    p: Conv2dParams,
}

impl Geometry {
    fn new(
        op: &'static str,
        c: usize,
        input_hw: (usize, usize),
        kernel: (usize, usize),
        p: &Conv2dParams,
    ) -> Result<Self> {
        let (oh, ow) = p.output_hw(input_hw, kernel).ok_or_else(|| {
            Error::invalid(
                op,
                format!("kernel {kernel:?} does not fit input {input_hw:?} with {p:?}"),
            )
        })?;
        Ok(Geometry {
            c,
            h: input_hw.0,
            w: input_hw.1,
            kh: kernel.0,
            kw: kernel.1,
            oh,
            ow,
            p: *p,
        })
    }
    /// Rows of the columns matrix: C·KH·KW.
    fn rows(&self) -> usize {
        self.c * self.kh * self.kw
    }
    /// Columns of the columns matrix: OH·OW.
    fn cols(&self) -> usize {
        self.oh * self.ow
    }
    /// Elements of one input image: C·H·W.
    fn image(&self) -> usize {
        self.c * self.h * self.w
    }
    /// A 1×1 kernel with unit stride and no padding reads the image itself as its columns.
    fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.p.stride == (1, 1) && self.p.padding == (0, 0)
    }
    /// For kernel tap `(i, j)`: the signed input offsets `i·dh − ph`, `j·dw − pw` and the
    /// output ranges `[lo, hi)` of rows and columns whose input position is inside the image.
    fn tap(&self, i: usize, j: usize) -> Tap {
        let off_h = (i * self.p.dilation.0) as isize - self.p.padding.0 as isize;
        let off_w = (j * self.p.dilation.1) as isize - self.p.padding.1 as isize;
        Tap {
            off_h,
            off_w,
            rows: valid_range(off_h, self.p.stride.0, self.h, self.oh),
            cols: valid_range(off_w, self.p.stride.1, self.w, self.ow),
        }
    }
}

/// Where one kernel tap reads the input (see [`Geometry::tap`]).
struct Tap {
    off_h: isize,
    off_w: isize,
    rows: (usize, usize),
    cols: (usize, usize),
}

impl Tap {
    /// Input index of output position `o` along one axis: `o·stride + offset` (only called
    /// inside the valid range, where it is non-negative).
    fn input(o: usize, stride: usize, offset: isize) -> usize {
        (o as isize * stride as isize + offset) as usize
    }
}

/// The output positions `o ∈ [0, out_len)` whose input coordinate `o·stride + offset` falls in
/// `[0, in_len)`: `o ≥ ⌈−offset/stride⌉` and `o < ⌈(in_len − offset)/stride⌉`.
fn valid_range(offset: isize, stride: usize, in_len: usize, out_len: usize) -> (usize, usize) {
    let s = stride as isize;
    let lo = if offset >= 0 {
        0
    } else {
        (-offset + s - 1) / s
    };
    let lim = in_len as isize - offset;
    let hi = if lim <= 0 { 0 } else { (lim + s - 1) / s };
    let lo = (lo as usize).min(out_len);
    let hi = (hi as usize).min(out_len).max(lo);
    (lo, hi)
}

/// Unfold one image `x [C, H, W]` into `out [C·KH·KW, OH·OW]` (every element written).
fn im2col_image(x: &[f32], g: &Geometry, out: &mut [f32]) {
    for (r, row) in out.chunks_mut(g.cols()).enumerate() {
        unfold_row(x, g, r, row);
    }
}

/// Row `r` of one image's columns matrix (see [`im2col_image`]) into `row` (`OH·OW` long).
fn unfold_row(x: &[f32], g: &Geometry, r: usize, row: &mut [f32]) {
    let (sh, sw) = g.p.stride;
    let (c, i, j) = (r / (g.kh * g.kw), (r / g.kw) % g.kh, r % g.kw);
    let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
    let tap = g.tap(i, j);
    let (w_lo, w_hi) = tap.cols;
    for (oy, orow) in row.chunks_mut(g.ow).enumerate() {
        if oy < tap.rows.0 || oy >= tap.rows.1 || w_lo == w_hi {
            orow.fill(0.0);
            continue;
        }
        let ih = Tap::input(oy, sh, tap.off_h);
        let xrow = &plane[ih * g.w..(ih + 1) * g.w];
        orow[..w_lo].fill(0.0);
        orow[w_hi..].fill(0.0);
        let iw0 = Tap::input(w_lo, sw, tap.off_w);
        let dst = &mut orow[w_lo..w_hi];
        if sw == 1 {
            dst.copy_from_slice(&xrow[iw0..iw0 + dst.len()]);
        } else {
            for (k, d) in dst.iter_mut().enumerate() {
                *d = xrow[iw0 + k * sw];
            }
        }
    }
}

/// Fold the rows of channel `c` of one image's columns `[C·KH·KW, OH·OW]` into that channel's
/// plane `[H, W]`, adding where kernel taps overlap (the adjoint of [`im2col_image`]).
fn col2im_plane(cols: &[f32], g: &Geometry, c: usize, plane: &mut [f32]) {
    let (sh, sw) = g.p.stride;
    for i in 0..g.kh {
        for j in 0..g.kw {
            let r = (c * g.kh + i) * g.kw + j;
            let row = &cols[r * g.cols()..(r + 1) * g.cols()];
            let tap = g.tap(i, j);
            let (w_lo, w_hi) = tap.cols;
            if w_lo == w_hi {
                continue;
            }
            for oy in tap.rows.0..tap.rows.1 {
                let ih = Tap::input(oy, sh, tap.off_h);
                let prow = &mut plane[ih * g.w..(ih + 1) * g.w];
                let src = &row[oy * g.ow + w_lo..oy * g.ow + w_hi];
                let iw0 = Tap::input(w_lo, sw, tap.off_w);
                if sw == 1 {
                    for (d, &s) in prow[iw0..iw0 + src.len()].iter_mut().zip(src) {
                        *d += s;
                    }
                } else {
                    for (k, &s) in src.iter().enumerate() {
                        prow[iw0 + k * sw] += s;
                    }
                }
            }
        }
    }
}

/// Shape `[N, C, H, W]` of a rank-4 view, or an error naming `op`.
fn dims4(op: &'static str, v: &View) -> Result<[usize; 4]> {
    v.shape().try_into().map_err(|_| Error::BadShape {
        op,
        shape: v.shape().to_vec(),
        msg: "expected rank 4".into(),
    })
}

/// Run `f` on each `chunk`-sized piece of `out` with its index, over rayon when `work` is large.
fn for_chunks(out: &mut [f32], chunk: usize, work: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if out.is_empty() || chunk == 0 {
        return;
    }
    if work >= PAR_THRESHOLD && out.len() > chunk {
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        out.chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
    }
}

/// Conv2d: x `[N, C, H, W]` (f32), w `[O, C, KH, KW]` (f32/f16/bf16), b `[O]` →
/// `[N, O, OH, OW]`, as one product with the shared GEMM in the device's `precision`:
/// `Y_wide[O, N·OH·OW] = W[O, C·KH·KW] · cols_wide`, where `cols_wide` holds the images'
/// columns matrices side by side. One wide product instead of one per image: an image of the
/// adapter's convolutions has 50–250 output positions, a narrow product that runs far below
/// the GEMM's rate and packs W again for every image. Y_wide is then dealt out per image.
pub fn conv2d(
    x: View,
    w: View,
    b: Option<View>,
    p: &Conv2dParams,
    precision: Precision,
) -> Result<Buffer> {
    const OP: &str = "conv2d";
    let [n, c, h, wd] = dims4(OP, &x)?;
    let [o, wc, kh, kw] = dims4(OP, &w)?;
    if wc != c {
        return Err(Error::ShapeMismatch {
            op: OP,
            lhs: x.shape().to_vec(),
            rhs: w.shape().to_vec(),
        });
    }
    let g = Geometry::new(OP, c, (h, wd), (kh, kw), p)?;
    let bias = b.map(|b| f32_values(OP, &b)).transpose()?;
    if bias.as_ref().is_some_and(|b| b.len() != o) {
        return Err(Error::invalid(
            OP,
            format!("bias length differs from {o} outputs"),
        ));
    }
    let xs = f32_only(OP, &x)?;
    let ws = f32_values(OP, &w)?;
    let (rows, cols) = (g.rows(), g.cols());
    let wide = n * cols;
    // A single image of a 1×1 kernel is its own columns matrix; otherwise unfold every image
    // into its block of columns of each row.
    let unfolded: Cow<[f32]> = if n == 1 && g.is_pointwise() {
        Cow::Borrowed(&xs[..rows * cols])
    } else {
        let mut m = vec![0f32; rows * wide];
        for_chunks(&mut m, wide, rows * wide, |r, row| {
            for (ni, dst) in row.chunks_mut(cols).enumerate() {
                unfold_row(&xs[ni * g.image()..(ni + 1) * g.image()], &g, r, dst);
            }
        });
        Cow::Owned(m)
    };
    // The bias is per output channel, i.e. per row of Y_wide: it starts as it, then accumulates.
    let mut y = vec![0f32; o * wide];
    let start = match &bias {
        Some(b) => {
            for (yrow, &bv) in y.chunks_mut(wide).zip(b.iter()) {
                yrow.fill(bv);
            }
            Start::Keep
        }
        None => Start::Zero,
    };
    let rhs = Rhs {
        elems: Weights::F32(&unfolded),
        rs: wide,
        cs: 1,
    };
    gemm_precision(
        precision,
        o,
        rows,
        wide,
        &ws,
        rows,
        1,
        rhs,
        &mut y,
        wide,
        (start, Finish::None),
        true,
    );
    if n == 1 {
        return Ok(boxed(HostBuffer::F32(y)));
    }
    // Y_wide[o, ni·L + l] → out[ni, o, l].
    let mut out = vec![0f32; n * o * cols];
    for_chunks(&mut out, o * cols, n * o * cols, |ni, dst| {
        for (oc, drow) in dst.chunks_mut(cols).enumerate() {
            drow.copy_from_slice(&y[oc * wide + ni * cols..oc * wide + (ni + 1) * cols]);
        }
    });
    Ok(boxed(HostBuffer::F32(out)))
}

/// Unfold x `[N, C, H, W]` (f32) into columns `[N, C·KH·KW, OH·OW]`, zero-padded.
pub fn im2col(x: View, kernel: (usize, usize), p: &Conv2dParams) -> Result<Buffer> {
    const OP: &str = "im2col";
    let [n, c, h, w] = dims4(OP, &x)?;
    let g = Geometry::new(OP, c, (h, w), kernel, p)?;
    let xs = f32_only(OP, &x)?;
    let per_image = g.rows() * g.cols();
    let mut out = vec![0f32; n * per_image];
    for_chunks(&mut out, per_image, n * per_image, |ni, dst| {
        im2col_image(&xs[ni * g.image()..(ni + 1) * g.image()], &g, dst)
    });
    Ok(boxed(HostBuffer::F32(out)))
}

/// Fold columns `[N, C·KH·KW, OH·OW]` (f32) back into `[N, C, H, W]`, summing overlaps: the
/// adjoint of [`im2col`]. Parallel over (image, channel) planes, which never share outputs.
pub fn col2im(
    cols: View,
    channels: usize,
    input_hw: (usize, usize),
    kernel: (usize, usize),
    p: &Conv2dParams,
) -> Result<Buffer> {
    const OP: &str = "col2im";
    let g = Geometry::new(OP, channels, input_hw, kernel, p)?;
    let shape = cols.shape();
    if shape.len() != 3 || shape[1] != g.rows() || shape[2] != g.cols() {
        return Err(Error::BadShape {
            op: OP,
            shape: shape.to_vec(),
            msg: format!("expected [N, {}, {}]", g.rows(), g.cols()),
        });
    }
    let n = shape[0];
    let cs = f32_only(OP, &cols)?;
    let per_image = g.rows() * g.cols();
    let plane = g.h * g.w;
    let mut out = vec![0f32; n * g.image()];
    for_chunks(&mut out, plane, n * per_image, |nc, dst| {
        let (ni, c) = (nc / channels, nc % channels);
        col2im_plane(&cs[ni * per_image..(ni + 1) * per_image], &g, c, dst)
    });
    Ok(boxed(HostBuffer::F32(out)))
}

#[cfg(test)]
mod tests {
    use super::valid_range;

    #[test]
    fn valid_range_clips_to_the_padded_border() {
        // in 5, stride 2, offset −1 (padding 1): o=0 reads −1 (pad), o=1..=2 read 1, 3.
        assert_eq!(valid_range(-1, 2, 5, 3), (1, 3));
        // offset +2, stride 1, in 4, out 4: o reads o+2 < 4 ⇒ o < 2.
        assert_eq!(valid_range(2, 1, 4, 4), (0, 2));
        // an empty input gives an empty range.
        let (lo, hi) = valid_range(-1, 1, 0, 2);
        assert_eq!(lo, hi, "empty range");
    }
}
