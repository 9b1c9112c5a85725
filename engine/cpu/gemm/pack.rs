//! Packing: copies a block of A or B into the contiguous, zero-padded panel order the
//! micro-kernels read, widening half-precision weights to f32 on the way. Each source layout is
//! read along its dense direction (rows of a row-major operand, columns of a transposed one),
//! so transposed operands cost no more than plain ones.

use super::transpose::gather_transpose;
use super::{Isa, Rhs, Weights};
use half::{bf16, f16, slice::HalfFloatSliceExt};

pub(super) const F32: u8 = 0;
pub(super) const BF16: u8 = 1;
pub(super) const F16: u8 = 2;

/// Values a packed panel can be filled from.
pub(super) trait Elem: Copy + Sync {
    /// Which type this is (F32, BF16 or F16), for SIMD loads.
    const KIND: u8;
    /// `dst[i] = src[i]` as f32.
    fn widen_run(src: &[Self], dst: &mut [f32]);
    /// One value as f32.
    fn widen(self) -> f32;
}

impl Elem for f32 {
    const KIND: u8 = F32;
    fn widen_run(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
    fn widen(self) -> f32 {
        self
    }
}

impl Elem for bf16 {
    const KIND: u8 = BF16;
    /// A bf16 is the top 16 bits of an f32: shifting the bits left by 16 widens it exactly.
    fn widen_run(src: &[bf16], dst: &mut [f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = f32::from_bits((s.to_bits() as u32) << 16);
        }
    }
    fn widen(self) -> f32 {
        f32::from_bits((self.to_bits() as u32) << 16)
    }
}

impl Elem for f16 {
    const KIND: u8 = F16;
    /// `half`'s slice conversion uses F16C's `vcvtph2ps` when the CPU has it.
    fn widen_run(src: &[f16], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

/// A reusable buffer handing out 64-byte-aligned slices (one cache line, one zmm register).
#[derive(Default)]
pub(super) struct AlignedBuf(Vec<f32>);

impl AlignedBuf {
    /// A 64-byte-aligned slice of `len` floats (contents unspecified).
    pub fn get(&mut self, len: usize) -> &mut [f32] {
        if self.0.len() < len + 16 {
            self.0 = vec![0.0; len + 16];
        }
        let skip = self.0.as_ptr().align_offset(64).min(16);
        &mut self.0[skip..skip + len]
    }
}

/// Packs rows `i0..i0+mc`, depths `p0..p0+kc` of A (`a[i·rs + p·cs]`) into `mr`-row panels
/// of `kp ≥ kc` depths: panel `q` holds, for each `p`, the `mr` values of rows `i0+q·mr…`
/// (zero past the last row, and at depths `kc..kp`).
#[allow(clippy::too_many_arguments)]
pub(super) fn pack_a(
    a: &[f32],
    (rs, cs): (usize, usize),
    (i0, mc): (usize, usize),
    (p0, kc, kp): (usize, usize, usize),
    mr: usize,
    dst: &mut [f32],
    isa: Isa,
) {
    for (q, panel) in dst.chunks_exact_mut(kp * mr).enumerate() {
        let r0 = q * mr;
        if r0 >= mc {
            break;
        }
        let (panel, pad) = panel.split_at_mut(kc * mr);
        pad.fill(0.0);
        let rows = mr.min(mc - r0);
        if rows < mr {
            panel.fill(0.0);
        }
        let base = (i0 + r0) * rs + p0 * cs;
        if cs == 1 {
            // Row-major A: rows become the panel's columns, 8 at a time.
            for i in (0..rows).step_by(8) {
                let starts: Vec<usize> = (i..rows.min(i + 8)).map(|i| base + i * rs).collect();
                gather_transpose(isa, a, &starts, kc, panel, mr, i);
            }
        } else if rs == 1 {
            // Transposed A: each depth's `rows` values are adjacent.
            for (p, d) in panel.chunks_exact_mut(mr).enumerate() {
                d[..rows].copy_from_slice(&a[base + p * cs..base + p * cs + rows]);
            }
        } else {
            for (p, d) in panel.chunks_exact_mut(mr).enumerate() {
                for (i, d) in d[..rows].iter_mut().enumerate() {
                    *d = a[base + i * rs + p * cs];
                }
            }
        }
    }
}

/// Packs depths `p0..p0+kc`, columns `j0..j0+nc` of B into `nr`-column panels of `kp ≥ kc`
/// depths: panel `q` holds, for each `p`, the `nr` values of columns `j0+q·nr…` (zero past the
/// last column, and at depths `kc..kp`).
pub(super) fn pack_b(
    b: Rhs,
    (p0, kc, kp): (usize, usize, usize),
    (j0, nc): (usize, usize),
    nr: usize,
    dst: &mut [f32],
    isa: Isa,
) {
    match b.elems {
        Weights::F32(x) => pack_b_typed(x, b, (p0, kc, kp), (j0, nc), nr, dst, isa),
        Weights::F16(x) => pack_b_typed(x, b, (p0, kc, kp), (j0, nc), nr, dst, isa),
        Weights::BF16(x) => pack_b_typed(x, b, (p0, kc, kp), (j0, nc), nr, dst, isa),
    }
}

fn pack_b_typed<T: Elem>(
    x: &[T],
    b: Rhs,
    (p0, kc, kp): (usize, usize, usize),
    (j0, nc): (usize, usize),
    nr: usize,
    dst: &mut [f32],
    isa: Isa,
) {
    for (q, panel) in dst.chunks_exact_mut(kp * nr).enumerate() {
        let c0 = q * nr;
        if c0 >= nc {
            break;
        }
        let (panel, pad) = panel.split_at_mut(kc * nr);
        pad.fill(0.0);
        let cols = nr.min(nc - c0);
        if cols < nr {
            panel.fill(0.0);
        }
        let base = p0 * b.rs + (j0 + c0) * b.cs;
        if b.cs == 1 {
            // Row-major B: each depth's `cols` values are adjacent.
            for (p, d) in panel.chunks_exact_mut(nr).enumerate() {
                let s = base + p * b.rs;
                T::widen_run(&x[s..s + cols], &mut d[..cols]);
            }
        } else if b.rs == 1 {
            // Transposed B (W stored [N, K]): columns become the panel's columns, 8 at a time.
            for j in (0..cols).step_by(8) {
                let starts: Vec<usize> = (j..cols.min(j + 8)).map(|j| base + j * b.cs).collect();
                gather_transpose(isa, x, &starts, kc, panel, nr, j);
            }
        } else {
            for (p, d) in panel.chunks_exact_mut(nr).enumerate() {
                for (j, d) in d[..cols].iter_mut().enumerate() {
                    *d = x[base + p * b.rs + j * b.cs].widen();
                }
            }
        }
    }
}

/// B as a dense f32 matrix: `[k, n]` row-major, or `[n, k]` (Bᵀ) when `transposed`. For products
/// whose B is small: a single column (matrix × vector) or the narrow ones of [`super::skinny`].
pub(super) fn dense(b: Rhs, k: usize, n: usize, transposed: bool) -> Vec<f32> {
    fn get<T: Elem>(x: &[T], (rs, cs): (usize, usize), k: usize, n: usize, t: bool) -> Vec<f32> {
        if t {
            (0..n)
                .flat_map(|j| (0..k).map(move |p| x[p * rs + j * cs].widen()))
                .collect()
        } else {
            (0..k)
                .flat_map(|p| (0..n).map(move |j| x[p * rs + j * cs].widen()))
                .collect()
        }
    }
    let strides = (b.rs, b.cs);
    match b.elems {
        Weights::F32(x) => get(x, strides, k, n, transposed),
        Weights::F16(x) => get(x, strides, k, n, transposed),
        Weights::BF16(x) => get(x, strides, k, n, transposed),
    }
}

/// Asks for columns `cols`, depths `p0..p0+kc` of a column-dense B (`rs == 1`, W stored
/// `[N, K]`) to be brought into L2 ahead of packing. Other layouts, and other CPUs: nothing.
pub(super) fn prefetch_b(b: Rhs, (p0, kc): (usize, usize), cols: std::ops::Range<usize>) {
    #[cfg(target_arch = "x86_64")]
    if b.rs == 1 {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        let (ptr, size) = match b.elems {
            Weights::F32(x) => (x.as_ptr() as *const i8, 4),
            Weights::F16(x) => (x.as_ptr() as *const i8, 2),
            Weights::BF16(x) => (x.as_ptr() as *const i8, 2),
        };
        for j in cols {
            let start = (j * b.cs + p0) * size;
            for off in (0..kc * size).step_by(64) {
                // SAFETY: a prefetch never faults, whatever the address; wrapping_add keeps
                // the pointer arithmetic itself defined.
                unsafe { _mm_prefetch::<_MM_HINT_T1>(ptr.wrapping_add(start + off)) };
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (b, p0, kc, cols);
}

/// bf16 bits of `x`, rounded to nearest even (NaN stays a quiet NaN). Branch-free, so loops over
/// it vectorize.
#[inline(always)]
fn bf16_bits(x: f32) -> u32 {
    let b = x.to_bits();
    let rounded = b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16;
    if x.is_nan() {
        0x7FC0
    } else {
        rounded
    }
}

/// Turns a packed f32 panel (`kc` depths of `w ≤ 64` values) into the bf16-pair panel the BF16
/// micro-kernel reads, in place: word `(q, i)` becomes `(bf16(P[2q][i]), bf16(P[2q+1][i]))`,
/// the even depth in the low half, a missing last depth (odd `kc`) as zero. Pair row `q` is
/// written at `q·w`, never past row `2q` which is still to be read, so in place is safe.
pub(super) fn to_pairs(panel: &mut [f32], kc: usize, w: usize) {
    debug_assert!(w <= 64 && panel.len() >= kc * w);
    let mut tmp = [0u32; 64];
    for q in 0..kc.div_ceil(2) {
        let r0 = &panel[2 * q * w..(2 * q + 1) * w];
        if 2 * q + 1 < kc {
            let r1 = &panel[(2 * q + 1) * w..(2 * q + 2) * w];
            for ((t, &x0), &x1) in tmp.iter_mut().zip(r0).zip(r1) {
                *t = bf16_bits(x0) | (bf16_bits(x1) << 16);
            }
        } else {
            for (t, &x0) in tmp.iter_mut().zip(r0) {
                *t = bf16_bits(x0);
            }
        }
        for (d, &t) in panel[q * w..(q + 1) * w].iter_mut().zip(&tmp) {
            *d = f32::from_bits(t);
        }
    }
}
