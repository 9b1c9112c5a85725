//! Scaled dot-product attention on the CPU.
//!
//! Forward: one pass over the keys in tiles with an online softmax (Milakov & Gimelshein 2018;
//! FlashAttention, Dao et al. 2022): per query row keep the running max `m`, the running sum
//! `l = Σ exp(s_j − m)` and the unnormalized output `acc = Σ exp(s_j − m)·v_j`; when a tile
//! raises the max to `m'`, rescale `l` and `acc` by `exp(m − m')`. The output is `acc / l`.
//! No `Tq × Tk` score matrix is ever formed. Rows whose every score is −∞ (fully masked) give 0.
//!
//! Blocking: the G query heads that share a kv head (GQA) are contiguous in q, so the `G·Tq`
//! rows of a kv head form one matrix; a work unit is (batch, kv head, block of [`BQ`] rows), and
//! rayon spreads the units. The keys of each kv head are packed once per call, transposed into
//! `[D][BK]` tiles, and shared by all units of the group. Per tile of [`BK`] keys a unit computes
//! the score block `S = scale·Q·Kᵀ` with a register-blocked micro-kernel, adds the mask, hides
//! keys past the causal limit, runs the online-softmax update (vectorized polynomial exp), and
//! accumulates `O = diag(corr)·O + P·V` with a second micro-kernel reading V in place. Tiles
//! that no row of the unit can see (causal) are skipped. AVX-512 kernels are chosen at run
//! time; otherwise the same steps run as loops the compiler vectorizes (AVX2 or baseline).
//!
//! Backward (FlashAttention-2 order, Dao 2023): the forward is recomputed for `O` and each row's
//! log-sum-exp `L`, `δ = dO·O` per row; then per unit (batch, kv head), per row block and key
//! tile: `P = exp(S − L)`, `dP = dO·Vᵀ`, `dS = scale·P∘(dP − δ)`, `dV += Pᵀ·dO`, `dK += dSᵀ·Q`,
//! `dQ += dS·K`, with the forward's kernels. A unit owns the dk/dv of its kv head and the dq of
//! the query heads that read it, so no two threads write the same gradient.
//!
//! Shapes: q `[B, Hq, Tq, D]`, k/v `[B, Hkv, Tk, D]`, query head `h` reads kv head
//! `h / (Hq/Hkv)`; the optional additive mask is read through its strides as `[B, Hq, Tq, Tk]`
//! (stride-0 broadcast dims are never expanded). Causal: query `i` sees keys
//! `j ≤ i + Tk − Tq`.

use super::elementwise::PAR_THRESHOLD;
use super::memory::{boxed, f32_only, host};
use super::vector::{self, dot};
use crate::engine::device::{AttentionParams, Buffer, View};
use crate::engine::error::{Error, Result};
use crate::engine::storage::HostBuffer;
use rayon::prelude::*;
use std::borrow::Cow;

const OP: &str = "attention";
const OP_BACK: &str = "attention_backward";
/// Query rows of one forward work unit: each packed key tile and value tile is reused from
/// cache by all of them (a multiple of [`MR`]).
const BQ: usize = 48;
/// Keys per tile of the online softmax: the width of the score block (four AVX-512 vectors).
const BK: usize = 64;
/// Below this many query rows per kv head (G·Tq), the forward reads keys in place with dot
/// products instead of packing them (decoding one token per head group).
const PACK_MIN_ROWS: usize = 8;
/// Query rows of one micro-kernel call (6 rows × 4 vectors = 24 accumulator registers).
const MR: usize = 6;

/// The sizes of one attention call.
#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    hq: usize,
    hkv: usize,
    tq: usize,
    tk: usize,
    d: usize,
}

impl Dims {
    /// Read and cross-check the shapes of q, k, v.
    fn new(op: &'static str, q: &View, k: &View, v: &View) -> Result<Dims> {
        let four = |t: &View| -> Result<[usize; 4]> {
            t.shape().try_into().map_err(|_| Error::BadShape {
                op,
                shape: t.shape().to_vec(),
                msg: "expected rank 4".into(),
            })
        };
        let ([b, hq, tq, d], ks) = (four(q)?, four(k)?);
        let [kb, hkv, tk, kd] = ks;
        let mismatch = |rhs: &View| Error::ShapeMismatch {
            op,
            lhs: q.shape().to_vec(),
            rhs: rhs.shape().to_vec(),
        };
        if four(v)? != ks || kb != b || kd != d {
            return Err(mismatch(if kb != b || kd != d { k } else { v }));
        }
        if hkv == 0 || !hq.is_multiple_of(hkv) {
            return Err(mismatch(k));
        }
        Ok(Dims {
            b,
            hq,
            hkv,
            tq,
            tk,
            d,
        })
    }
    /// Query heads per kv head.
    fn group(&self) -> usize {
        self.hq / self.hkv
    }
    /// Keys visible to query row `i`: all of them, or `i + Tk − Tq + 1` clamped to `[0, Tk]`
    /// when causal (the last query row lines up with the last key).
    fn visible(&self, causal: bool, i: usize) -> usize {
        if !causal {
            return self.tk;
        }
        let lim = i as isize + self.tk as isize - self.tq as isize + 1;
        lim.clamp(0, self.tk as isize) as usize
    }
    /// Element offset of row `(bi, h, t)` in a contiguous `[B, H, T, D]` tensor.
    #[cfg(test)]
    fn row(&self, bi: usize, h: usize, heads: usize, t: usize, len: usize) -> usize {
        ((bi * heads + h) * len + t) * self.d
    }
}

/// An additive mask read through its (possibly stride-0) layout as `[B, Hq, Tq, Tk]`.
struct Mask<'a> {
    data: &'a [f32],
    strides: [usize; 4],
    offset: usize,
}

impl<'a> Mask<'a> {
    fn new(op: &'static str, m: &View<'a>, dims: &Dims) -> Result<Mask<'a>> {
        let want = [dims.b, dims.hq, dims.tq, dims.tk];
        if m.shape() != want {
            return Err(Error::ShapeMismatch {
                op,
                lhs: m.shape().to_vec(),
                rhs: want.to_vec(),
            });
        }
        let data = match host(m)? {
            HostBuffer::F32(x) => x.as_slice(),
            other => {
                return Err(Error::UnsupportedDType {
                    op,
                    dtype: other.dtype(),
                    device: "cpu".into(),
                })
            }
        };
        if m.layout.max_index_exclusive() > data.len() {
            return Err(Error::invalid(op, "mask layout reaches past its buffer"));
        }
        let s = m.layout.strides();
        Ok(Mask {
            data,
            strides: [s[0], s[1], s[2], s[3]],
            offset: m.layout.offset(),
        })
    }
    /// The mask row of query `(bi, h, i)`: entry `j` is `data[base + j·stride]`.
    fn row(&self, bi: usize, h: usize, i: usize) -> MaskRow<'a> {
        let s = self.strides;
        MaskRow {
            data: self.data,
            base: self.offset + bi * s[0] + h * s[1] + i * s[2],
            stride: s[3],
        }
    }
}

/// One strided mask row.
#[derive(Clone, Copy)]
struct MaskRow<'a> {
    data: &'a [f32],
    base: usize,
    stride: usize,
}

impl MaskRow<'_> {
    fn at(&self, j: usize) -> f32 {
        self.data[self.base + j * self.stride]
    }
}

/// A `[B, H, T, D]` f32 operand read head by head: the `T·D` values of head `(b, h)` are
/// contiguous at `base + b·sb + h·sh`. Borrowed in place whenever the view's rows are dense
/// (a KV cache's narrowed buffers are: only their head stride differs from `T·D`), so a decode
/// step does not copy the cache; copied to row-major otherwise.
struct Heads<'a> {
    data: Cow<'a, [f32]>,
    base: usize,
    sb: usize,
    sh: usize,
    heads: usize,
    len: usize,
}

impl<'a> Heads<'a> {
    /// The heads of a rank-4 view (shape already checked by [`Dims::new`]).
    fn new(op: &'static str, v: &View<'a>) -> Result<Heads<'a>> {
        let [_, h, t, d]: [usize; 4] = v.shape().try_into().map_err(|_| Error::BadShape {
            op,
            shape: v.shape().to_vec(),
            msg: "expected rank 4".into(),
        })?;
        let st = v.layout.strides();
        if let HostBuffer::F32(x) = host(v)? {
            let dense_rows = (st[3] == 1 || d <= 1) && (st[2] == d || t <= 1);
            if dense_rows && t * d > 0 && v.layout.max_index_exclusive() <= x.len() {
                return Ok(Heads {
                    data: Cow::Borrowed(x.as_slice()),
                    base: v.layout.offset(),
                    sb: st[0],
                    sh: st[1],
                    heads: h,
                    len: t * d,
                });
            }
        }
        Ok(Heads::dense(f32_only(op, v)?, h, t * d))
    }

    /// Row-major heads of `len` values, `heads` per batch entry.
    fn dense(data: Cow<'a, [f32]>, heads: usize, len: usize) -> Heads<'a> {
        Heads {
            data,
            base: 0,
            sb: heads * len,
            sh: len,
            heads,
            len,
        }
    }

    /// Head `bh` = b·H + h.
    fn head(&self, bh: usize) -> &[f32] {
        let (b, h) = (bh / self.heads, bh % self.heads);
        &self.data[self.base + b * self.sb + h * self.sh..][..self.len]
    }
}

/// Everything a forward or backward worker reads.
struct Inputs<'a> {
    q: &'a [f32],
    k: Heads<'a>,
    v: Heads<'a>,
    mask: Option<Mask<'a>>,
    dims: Dims,
    p: AttentionParams,
}

#[cfg(test)]
impl Inputs<'_> {
    /// Scores `s_j = scale·q·k_j + mask_j` of query `(bi, h, i)` for keys `t0..t1` of kv head
    /// `kv`, written to `s`; returns their max (−∞ if all are masked out).
    #[allow(clippy::too_many_arguments)]
    fn scores(
        &self,
        qi: &[f32],
        bi: usize,
        h: usize,
        i: usize,
        kv: usize,
        (t0, t1): (usize, usize),
        s: &mut [f32],
    ) -> f32 {
        let dm = &self.dims;
        let kh = self.k.head(bi * dm.hkv + kv);
        let mrow = self.mask.as_ref().map(|m| m.row(bi, h, i));
        let mut max = f32::NEG_INFINITY;
        for (j, sj) in (t0..t1).zip(s.iter_mut()) {
            let kj = &kh[j * dm.d..(j + 1) * dm.d];
            let mut x = self.p.scale * dot(qi, kj);
            if let Some(m) = &mrow {
                x += m.at(j);
            }
            *sj = x;
            max = max.max(x);
        }
        max
    }

    /// Per-row backward (the reference the blocked one is tested against): every query row of
    /// the query heads reading kv head `(bi, kv)`; `dq` is those
    /// heads' `[G, Tq, D]` block, `dk`/`dv` the kv head's `[Tk, D]` block (all zero on entry).
    fn backward_unit(
        &self,
        dout: &[f32],
        bi: usize,
        kv: usize,
        dq: &mut [f32],
        dk: &mut [f32],
        dv: &mut [f32],
    ) {
        let dm = &self.dims;
        let (d, g) = (dm.d, dm.group());
        let (kh, vh) = (self.k.head(bi * dm.hkv + kv), self.v.head(bi * dm.hkv + kv));
        let mut p = vec![0f32; dm.tk];
        let mut dp = vec![0f32; dm.tk];
        for r in 0..g {
            let h = kv * g + r;
            for i in 0..dm.tq {
                let lim = dm.visible(self.p.causal, i);
                let qo = dm.row(bi, h, dm.hq, i, dm.tq);
                let (qi, doi) = (&self.q[qo..qo + d], &dout[qo..qo + d]);
                let max = self.scores(qi, bi, h, i, kv, (0, lim), &mut p);
                if max == f32::NEG_INFINITY {
                    continue; // fully masked row: output was 0, no gradient flows
                }
                let p = &mut p[..lim];
                let mut sum = 0f32;
                for pj in p.iter_mut() {
                    *pj = (*pj - max).exp();
                    sum += *pj;
                }
                let inv = 1.0 / sum;
                p.iter_mut().for_each(|pj| *pj *= inv);
                // δ = Σ_j P_j·(dO·v_j) = dO·O
                let mut delta = 0f32;
                for ((dpj, &pj), vj) in dp.iter_mut().zip(p.iter()).zip(vh.chunks(d)) {
                    *dpj = dot(doi, vj);
                    delta += pj * *dpj;
                }
                let dqi = &mut dq[(r * dm.tq + i) * d..(r * dm.tq + i + 1) * d];
                for (j, (&pj, &dpj)) in p.iter().zip(dp.iter()).enumerate() {
                    if pj == 0.0 {
                        continue;
                    }
                    let ds = self.p.scale * pj * (dpj - delta);
                    let span = j * d..(j + 1) * d;
                    vector::axpy(dqi, ds, &kh[span.clone()]);
                    vector::axpy(&mut dk[span.clone()], ds, qi);
                    vector::axpy(&mut dv[span], pj, doi);
                }
            }
        }
    }
}

/// Attention forward (see the module docs). All inputs f32; the result is `[B, Hq, Tq, D]`.
pub fn attention(
    q: View,
    k: View,
    v: View,
    mask: Option<View>,
    p: &AttentionParams,
) -> Result<Buffer> {
    let dims = Dims::new(OP, &q, &k, &v)?;
    let qs = f32_only(OP, &q)?;
    let inputs = Inputs {
        q: &qs,
        k: Heads::new(OP, &k)?,
        v: Heads::new(OP, &v)?,
        mask: mask.map(|m| Mask::new(OP, &m, &dims)).transpose()?,
        dims,
        p: *p,
    };
    // Few rows per kv head (decoding): reading each key row once with dot products beats
    // packing every key for a handful of queries.
    let kt = (dims.group() * dims.tq >= PACK_MIN_ROWS).then(|| pack_keys(&inputs.k, &dims));
    Ok(boxed(HostBuffer::F32(inputs.forward_all(kt.as_deref()).0)))
}

/// Keys of every kv head packed for the score kernel: per head, tiles of [`BK`] keys, each
/// stored transposed as `[D][BK]` (key index fastest, zero past `Tk`), so the kernel loads the
/// keys of one tile as contiguous vectors. Packed once per call and shared by every query
/// block and every query head of the group (GQA).
fn pack_keys(k: &Heads, dm: &Dims) -> Vec<f32> {
    let per_head = dm.tk.div_ceil(BK) * dm.d * BK;
    let mut kt = vec![0f32; dm.b * dm.hkv * per_head];
    if kt.is_empty() {
        return kt;
    }
    let pack = |(bkv, dst): (usize, &mut [f32])| {
        let src = k.head(bkv);
        for (j, kj) in src.chunks_exact(dm.d).enumerate() {
            let base = (j / BK) * dm.d * BK + j % BK;
            for (e, &x) in kj.iter().enumerate() {
                dst[base + e * BK] = x;
            }
        }
    };
    if kt.len() >= PAR_THRESHOLD && dm.b * dm.hkv > 1 {
        kt.par_chunks_mut(per_head).enumerate().for_each(pack);
    } else {
        kt.chunks_mut(per_head).enumerate().for_each(pack);
    }
    kt
}

impl Inputs<'_> {
    /// The whole forward: the output `[B, Hq, Tq, D]` and each query row's log-sum-exp
    /// `ln Σ_j exp(s_j)` (+∞ for a row that sees no key), given the packed keys.
    fn forward_all(&self, kt: Option<&[f32]>) -> (Vec<f32>, Vec<f32>) {
        let dims = &self.dims;
        let d = dims.d;
        let mut out = vec![0f32; dims.b * dims.hq * dims.tq * d];
        let mut lse = vec![0f32; dims.b * dims.hq * dims.tq];
        if out.is_empty() {
            return (out, lse);
        }
        // The query rows of one kv head's group are contiguous: heads kv·G .. kv·G+G, Tq rows
        // each. Work units: (batch, kv head, block of BQ of those rows).
        let rows = dims.group() * dims.tq;
        let head = |(bkv, (po, pl)): (usize, (&mut [f32], &mut [f32]))| {
            let unit = |(blk, (o, l)): (usize, (&mut [f32], &mut [f32]))| {
                self.forward_unit(kt, bkv, blk * BQ, o, l)
            };
            if parallel(dims, rows.div_ceil(BQ)) {
                po.par_chunks_mut(BQ * d)
                    .zip(pl.par_chunks_mut(BQ))
                    .enumerate()
                    .for_each(unit);
            } else {
                po.chunks_mut(BQ * d)
                    .zip(pl.chunks_mut(BQ))
                    .enumerate()
                    .for_each(unit);
            }
        };
        if parallel(dims, dims.b * dims.hkv) {
            out.par_chunks_mut(rows * d)
                .zip(lse.par_chunks_mut(rows))
                .enumerate()
                .for_each(head);
        } else {
            out.chunks_mut(rows * d)
                .zip(lse.chunks_mut(rows))
                .enumerate()
                .for_each(head);
        }
        (out, lse)
    }

    /// Per row of a score tile (row stride [`BK`], scores of keys `t0..t0+kn`): add the mask
    /// to the visible entries and return how many entries are visible (causal limit `lim`).
    fn visible_in_tile(
        &self,
        bi: usize,
        who: &[(usize, usize)],
        lim: &[usize],
        t0: usize,
        kn: usize,
        s: &mut [f32],
    ) -> [usize; BQ] {
        let mut vis = [0usize; BQ];
        for (r, (&(h, i), &lim)) in who.iter().zip(lim).enumerate() {
            vis[r] = lim.saturating_sub(t0).min(kn);
            if let Some(mask) = &self.mask {
                let mr = mask.row(bi, h, i);
                for (j, x) in s[r * BK..r * BK + vis[r]].iter_mut().enumerate() {
                    *x += mr.at(t0 + j);
                }
            }
        }
        vis
    }

    /// Head, query index and visible key count of rows `row0..row0+rows` of kv head `kv`.
    fn row_info(&self, kv: usize, row0: usize, rows: usize) -> ([(usize, usize); BQ], [usize; BQ]) {
        let dm = &self.dims;
        let mut lim = [0usize; BQ];
        let mut who = [(0usize, 0usize); BQ];
        for r in 0..rows {
            let rho = row0 + r;
            let i = rho % dm.tq;
            who[r] = (kv * dm.group() + rho / dm.tq, i);
            lim[r] = dm.visible(self.p.causal, i);
        }
        (who, lim)
    }

    /// Online-softmax forward of query rows `row0..row0+R` of kv head `bkv` (= b·Hkv + kv; row
    /// `ρ` is query `ρ mod Tq` of head `kv·G + ρ div Tq`) into `out` (`R × D`, R ≤ [`BQ`], zero on
    /// entry; it doubles as the running accumulator). Per key tile: scores `S = scale·Q·Kᵀ`
    /// (micro-kernel), mask and causal limit, the running max/sum update with the rescale
    /// `exp(m − m')`, `P = exp(S − m')`, then `O += P·V` (micro-kernel).
    fn forward_unit(
        &self,
        kt: Option<&[f32]>,
        bkv: usize,
        row0: usize,
        out: &mut [f32],
        lse: &mut [f32],
    ) {
        let dm = &self.dims;
        let (d, g) = (dm.d, dm.group());
        let rows = out.len() / d;
        let (bi, kv) = (bkv / dm.hkv, bkv % dm.hkv);
        let q = &self.q[(bkv * g * dm.tq + row0) * d..][..rows * d];
        let tiles = dm.tk.div_ceil(BK);
        let kth = kt.map(|kt| &kt[bkv * tiles * d * BK..][..tiles * d * BK]);
        let (kh, vh) = (self.k.head(bkv), self.v.head(bkv));
        let (who, lim) = self.row_info(kv, row0, rows);
        // Tiles past every row's last visible key are skipped entirely (causal).
        let kmax = lim[..rows].iter().copied().max().unwrap_or(0);
        let mut m = [f32::NEG_INFINITY; BQ];
        let mut l = [0f32; BQ];
        let mut s = vec![0f32; BQ * BK];
        for t0 in (0..kmax).step_by(BK) {
            let kn = (kmax - t0).min(BK);
            match kth {
                Some(kth) => {
                    let tile = &kth[(t0 / BK) * d * BK..][..d * BK];
                    kernels::scores(rows, d, q, tile, &mut s, self.p.scale);
                }
                None => {
                    let keys = &kh[t0 * d..(t0 + kn) * d];
                    kernels::scores_direct(rows, kn, d, q, keys, &mut s, self.p.scale);
                }
            }
            let vis = self.visible_in_tile(bi, &who[..rows], &lim[..rows], t0, kn, &mut s);
            let mut corr = [1f32; BQ];
            kernels::online_softmax(
                &vis[..rows],
                &mut s,
                &mut m[..rows],
                &mut l[..rows],
                &mut corr[..rows],
            );
            let v_tile = &vh[t0 * d..(t0 + kn) * d];
            let p_tile = kernels::Lhs {
                data: &s,
                rs: BK,
                ks: 1,
            };
            kernels::gemm_acc(rows, kn, d, p_tile, v_tile, Some(&corr[..rows]), out);
        }
        for (r, acc) in out.chunks_mut(d).enumerate() {
            // l = 0 only when no key was visible or all were −∞: such a row outputs 0.
            let inv = if l[r] > 0.0 { 1.0 / l[r] } else { 0.0 };
            vector::scale(acc, inv);
            lse[r] = if l[r] > 0.0 {
                m[r] + l[r].ln()
            } else {
                f32::INFINITY
            };
        }
    }
}

impl Inputs<'_> {
    /// Blocked backward of kv head `bkv` (= b·Hkv + kv) over the rows of its query-head group
    /// (FlashAttention-2 order, Dao 2023): per block of [`BQ`] rows and tile of [`BK`] keys,
    /// `P = exp(scale·Q·Kᵀ + mask − lse)` (no renormalization: lse is final), `dP = dO·Vᵀ`,
    /// `dS = scale·P∘(dP − δ)`, then `dV += Pᵀ·dO`, `dK += dSᵀ·Q`, `dQ += dS·K`, all with the
    /// forward's micro-kernels. `dq` is the group's `[G·Tq, D]` block, `dk`/`dv` the kv head's
    /// `[Tk, D]` blocks (zero on entry).
    fn backward_blocked(
        &self,
        t: &Saved,
        bkv: usize,
        dq: &mut [f32],
        dk: &mut [f32],
        dv: &mut [f32],
    ) {
        let dm = &self.dims;
        let d = dm.d;
        let rows_all = dm.group() * dm.tq;
        let (bi, kv) = (bkv / dm.hkv, bkv % dm.hkv);
        let tile_len = d * BK;
        let tiles = dm.tk.div_ceil(BK);
        let kth = &t.kt[bkv * tiles * tile_len..][..tiles * tile_len];
        let vth = &t.vt[bkv * tiles * tile_len..][..tiles * tile_len];
        let kh = self.k.head(bkv);
        let base = bkv * rows_all;
        let mut s = vec![0f32; BQ * BK];
        let mut dp = vec![0f32; BQ * BK];
        for row0 in (0..rows_all).step_by(BQ) {
            let rows = BQ.min(rows_all - row0);
            let span = (base + row0) * d..(base + row0 + rows) * d;
            let (qb, dob) = (&self.q[span.clone()], &t.dout[span]);
            let lse = &t.lse[base + row0..base + row0 + rows];
            let delta = &t.delta[base + row0..base + row0 + rows];
            let dqb = &mut dq[row0 * d..(row0 + rows) * d];
            let (who, lim) = self.row_info(kv, row0, rows);
            let kmax = lim[..rows].iter().copied().max().unwrap_or(0);
            for t0 in (0..kmax).step_by(BK) {
                let kn = (kmax - t0).min(BK);
                let tile = (t0 / BK) * tile_len..(t0 / BK + 1) * tile_len;
                kernels::scores(rows, d, qb, &kth[tile.clone()], &mut s, self.p.scale);
                let vis = self.visible_in_tile(bi, &who[..rows], &lim[..rows], t0, kn, &mut s);
                for r in 0..rows {
                    let row = &mut s[r * BK..r * BK + kn];
                    row[vis[r]..].fill(f32::NEG_INFINITY);
                    // lse = +∞ for a row that sees nothing: every P is then 0.
                    vector::exp_sub_sum(row, lse[r]);
                }
                kernels::scores(rows, d, dob, &vth[tile], &mut dp, 1.0);
                for r in 0..rows {
                    let (ds, p) = (&mut dp[r * BK..r * BK + kn], &s[r * BK..r * BK + kn]);
                    kernels::softmax_grad(ds, p, delta[r], self.p.scale);
                }
                let keys = t0 * d..(t0 + kn) * d;
                let transposed = |data| kernels::Lhs {
                    data,
                    rs: 1,
                    ks: BK,
                };
                kernels::gemm_acc(
                    kn,
                    rows,
                    d,
                    transposed(&s),
                    dob,
                    None,
                    &mut dv[keys.clone()],
                );
                kernels::gemm_acc(
                    kn,
                    rows,
                    d,
                    transposed(&dp),
                    qb,
                    None,
                    &mut dk[keys.clone()],
                );
                let ds = kernels::Lhs {
                    data: &dp,
                    rs: BK,
                    ks: 1,
                };
                kernels::gemm_acc(rows, kn, d, ds, &kh[keys], None, dqb);
            }
        }
    }
}

/// The tile kernels shared by forward and backward: the score block (packed or direct), the
/// online-softmax step, the strided-lhs product `C = diag(corr)·C + A·B` and the softmax
/// gradient. AVX-512: register-blocked micro-kernels ([`MR`] rows × 64 columns, 24
/// accumulators); otherwise loops the compiler vectorizes (compiled for AVX2+FMA when present).
mod kernels {
    use super::{BK, MR};
    use crate::engine::cpu::vector::{self, multiversion, Isa};

    /// `s[r·BK + j] = scale·Σₑ q[r·d + e]·kt[e·BK + j]` for `r < rows`, `j < BK`.
    pub fn scores(rows: usize, d: usize, q: &[f32], kt: &[f32], s: &mut [f32], scale: f32) {
        assert!(q.len() >= rows * d && kt.len() >= d * BK && s.len() >= rows * BK);
        #[cfg(target_arch = "x86_64")]
        if Isa::detected() == Isa::Avx512 {
            // SAFETY: AVX-512F is present (isa), and the slice lengths were checked above.
            unsafe { super::avx512::scores(rows, d, q, kt, s, scale) };
            return;
        }
        scores_portable(rows, d, q, kt, s, scale);
    }

    /// `s[r·BK + j] = scale·Σₑ q[r·d + e]·k[j·d + e]` for `r < rows`, `j < kn`, reading the key
    /// rows in place (for a few query rows, where packing the keys would cost more).
    pub fn scores_direct(
        rows: usize,
        kn: usize,
        d: usize,
        q: &[f32],
        k: &[f32],
        s: &mut [f32],
        scale: f32,
    ) {
        assert!(kn <= BK && q.len() >= rows * d && k.len() >= kn * d && s.len() >= rows * BK);
        #[cfg(target_arch = "x86_64")]
        if Isa::detected() == Isa::Avx512 {
            // SAFETY: AVX-512F is present (isa), and the slice lengths were checked above.
            unsafe { super::avx512::scores_direct(rows, kn, d, q, k, s, scale) };
            return;
        }
        for (qr, sr) in q.chunks_exact(d).take(rows).zip(s.chunks_exact_mut(BK)) {
            for (x, kj) in sr.iter_mut().zip(k.chunks_exact(d).take(kn)) {
                *x = scale * vector::dot(qr, kj);
            }
        }
    }

    /// A left operand read through strides: element `(r, k)` is `data[r·rs + k·ks]`, so the
    /// same tile serves as `P` (`rs = BK, ks = 1`) or as `Pᵀ` (`rs = 1, ks = BK`).
    #[derive(Clone, Copy)]
    pub struct Lhs<'a> {
        pub data: &'a [f32],
        pub rs: usize,
        pub ks: usize,
    }

    /// `c[r·d + e] = corr[r]·c[r·d + e] + Σ_{k<kdim} a(r, k)·b[k·d + e]` for `r < rows`,
    /// `e < d` (`corr` = 1 when `None`): `O = diag(corr)·O + P·V` and the gradient products.
    pub fn gemm_acc(
        rows: usize,
        kdim: usize,
        d: usize,
        a: Lhs,
        b: &[f32],
        corr: Option<&[f32]>,
        c: &mut [f32],
    ) {
        if rows == 0 || d == 0 {
            return;
        }
        let a_need = if kdim == 0 {
            0
        } else {
            (rows - 1) * a.rs + (kdim - 1) * a.ks + 1
        };
        assert!(a.data.len() >= a_need && b.len() >= kdim * d && c.len() >= rows * d);
        assert!(corr.is_none_or(|x| x.len() >= rows));
        #[cfg(target_arch = "x86_64")]
        if Isa::detected() == Isa::Avx512 {
            // SAFETY: AVX-512F is present (isa), and the slice lengths were checked above.
            unsafe { super::avx512::gemm_acc(rows, kdim, d, a, b, corr, c) };
            return;
        }
        let ones = [1f32; 0];
        let (corr, has) = match corr {
            Some(x) => (x, true),
            None => (&ones[..], false),
        };
        gemm_portable(rows, kdim, d, a.data, a.rs, a.ks, b, corr, has, c);
    }

    /// The online-softmax step of one tile. Row `r` of `s` (stride [`BK`]) holds scores whose
    /// first `vis[r]` entries are visible; with the running max `m[r]` and sum `l[r]`:
    /// `m' = max(m, max_j s_j)`, `corr[r] = exp(m − m')`, `l ← corr·l + Σ_j exp(s_j − m')`,
    /// and `s_j ← exp(s_j − m')` (0 for hidden entries, up to [`BK`]). A row with no finite
    /// score so far gets `P = 0` and `corr = 1`.
    pub fn online_softmax(
        vis: &[usize],
        s: &mut [f32],
        m: &mut [f32],
        l: &mut [f32],
        corr: &mut [f32],
    ) {
        let rows = vis.len();
        assert!(s.len() >= rows * BK && m.len() >= rows && l.len() >= rows && corr.len() >= rows);
        assert!(vis.iter().all(|&v| v <= BK));
        #[cfg(target_arch = "x86_64")]
        if Isa::detected() == Isa::Avx512 {
            // SAFETY: AVX-512F is present (isa), and the slice lengths were checked above.
            unsafe { super::avx512::online_softmax(vis, s, m, l, corr) };
            return;
        }
        for (r, &vis) in vis.iter().enumerate() {
            let row = &mut s[r * BK..(r + 1) * BK];
            row[vis..].fill(f32::NEG_INFINITY);
            let m_new = m[r].max(vector::max(&row[..vis]));
            if m_new == f32::NEG_INFINITY {
                row.fill(0.0);
                corr[r] = 1.0;
                continue;
            }
            // exp(−∞) = 0 before the first contribution, where the accumulator and l are 0.
            corr[r] = if m_new == m[r] {
                1.0
            } else {
                vector::exp(m[r] - m_new)
            };
            l[r] = l[r] * corr[r] + vector::exp_sub_sum(row, m_new) as f32;
            m[r] = m_new;
        }
    }

    #[inline(always)]
    fn scores_body(rows: usize, d: usize, q: &[f32], kt: &[f32], s: &mut [f32], scale: f32) {
        for (r, sr) in s.chunks_exact_mut(BK).take(rows).enumerate() {
            sr.fill(0.0);
            for (e, ke) in kt.chunks_exact(BK).take(d).enumerate() {
                let a = q[r * d + e];
                sr.iter_mut().zip(ke).for_each(|(x, &k)| *x += a * k);
            }
            sr.iter_mut().for_each(|x| *x *= scale);
        }
    }

    multiversion! {
        fn scores_portable(rows: usize, d: usize, q: &[f32], kt: &[f32], s: &mut [f32], scale: f32) = scores_body;
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn gemm_body(
        rows: usize,
        kdim: usize,
        d: usize,
        a: &[f32],
        rs: usize,
        ks: usize,
        b: &[f32],
        corr: &[f32],
        has_corr: bool,
        c: &mut [f32],
    ) {
        for (r, cr) in c.chunks_exact_mut(d).take(rows).enumerate() {
            if has_corr && corr[r] != 1.0 {
                let f = corr[r];
                cr.iter_mut().for_each(|x| *x *= f);
            }
            for (k, bk) in b.chunks_exact(d).take(kdim).enumerate() {
                let x = a[r * rs + k * ks];
                cr.iter_mut().zip(bk).for_each(|(y, &z)| *y += x * z);
            }
        }
    }

    multiversion! {
        #[allow(clippy::too_many_arguments)]
        fn gemm_portable(rows: usize, kdim: usize, d: usize, a: &[f32], rs: usize, ks: usize, b: &[f32], corr: &[f32], has_corr: bool, c: &mut [f32]) = gemm_body;
    }

    #[inline(always)]
    fn softmax_grad_body(dp: &mut [f32], p: &[f32], delta: f32, scale: f32) {
        dp.iter_mut()
            .zip(p)
            .for_each(|(g, &pj)| *g = scale * pj * (*g - delta));
    }

    multiversion! {
        /// `dp_j ← scale·p_j·(dp_j − δ)`: the gradient of the scores through the softmax.
        pub fn softmax_grad(dp: &mut [f32], p: &[f32], delta: f32, scale: f32) = softmax_grad_body;
    }

    // Keep MR in use on targets without the AVX-512 kernels.
    const _: () = assert!(MR >= 1);
}

/// AVX-512 micro-kernels of the tile kernels. The two products each keep an `M × 64` block of results in 24
/// zmm accumulators (M ≤ [`MR`] = 6): per step it loads 4 vectors of the right operand and
/// broadcasts one value per row, so 24 FMAs cost 4 vector loads and M scalar broadcasts.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{BK, MR};
    use crate::engine::cpu::vector;
    use std::arch::x86_64::*;

    /// Calls `$f::<M>(args)` for a row count `M` in `1..=MR` known only at run time.
    macro_rules! by_rows {
        ($m:expr, $f:ident($($a:expr),*)) => {
            match $m {
                1 => $f::<1>($($a),*),
                2 => $f::<2>($($a),*),
                3 => $f::<3>($($a),*),
                4 => $f::<4>($($a),*),
                5 => $f::<5>($($a),*),
                6 => $f::<6>($($a),*),
                _ => unreachable!("row block larger than MR"),
            }
        };
    }

    /// See [`super::kernels::scores`].
    /// SAFETY (caller): AVX-512F present; `q` holds `rows·d`, `kt` `d·BK`, `s` `rows·BK` values.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn scores(rows: usize, d: usize, q: &[f32], kt: &[f32], s: &mut [f32], scale: f32) {
        let (qp, kp, sp) = (q.as_ptr(), kt.as_ptr(), s.as_mut_ptr());
        let mut r = 0;
        while r < rows {
            let m = (rows - r).min(MR);
            // SAFETY: rows r..r+m are inside q and s (caller's lengths).
            unsafe { by_rows!(m, scores_m(d, qp.add(r * d), kp, sp.add(r * BK), scale)) };
            r += m;
        }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn scores_m<const M: usize>(
        d: usize,
        q: *const f32,
        kt: *const f32,
        s: *mut f32,
        scale: f32,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 4]; M];
        for e in 0..d {
            // SAFETY: e < d, so the BK floats at kt + e·BK and q[r·d + e] (r < M) are in bounds.
            unsafe {
                let kp = kt.add(e * BK);
                let kv = [
                    _mm512_loadu_ps(kp),
                    _mm512_loadu_ps(kp.add(16)),
                    _mm512_loadu_ps(kp.add(32)),
                    _mm512_loadu_ps(kp.add(48)),
                ];
                for (r, ar) in acc.iter_mut().enumerate() {
                    let qv = _mm512_set1_ps(*q.add(r * d + e));
                    for (a, &k) in ar.iter_mut().zip(&kv) {
                        *a = _mm512_fmadd_ps(qv, k, *a);
                    }
                }
            }
        }
        let sc = _mm512_set1_ps(scale);
        for (r, ar) in acc.iter().enumerate() {
            for (c, &a) in ar.iter().enumerate() {
                // SAFETY: row r < M of s has BK = 64 floats.
                unsafe { _mm512_storeu_ps(s.add(r * BK + c * 16), _mm512_mul_ps(a, sc)) };
            }
        }
    }

    /// See [`super::kernels::scores_direct`]: per key, its row is loaded once (16 lanes at a
    /// time, the tail masked) and multiplied into one accumulator per query row.
    /// SAFETY (caller): AVX-512F present; `q` holds `rows·d`, `k` `kn·d`, `s` `rows·BK` values.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn scores_direct(
        rows: usize,
        kn: usize,
        d: usize,
        q: &[f32],
        k: &[f32],
        s: &mut [f32],
        scale: f32,
    ) {
        let (qp, kp, sp) = (q.as_ptr(), k.as_ptr(), s.as_mut_ptr());
        let mut r = 0;
        while r < rows {
            let m = (rows - r).min(MR);
            // SAFETY: rows r..r+m of q and s exist (caller's lengths).
            unsafe { by_rows!(m, direct_m(kn, d, qp.add(r * d), kp, sp.add(r * BK), scale)) };
            r += m;
        }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn direct_m<const M: usize>(
        kn: usize,
        d: usize,
        q: *const f32,
        k: *const f32,
        s: *mut f32,
        scale: f32,
    ) {
        for j in 0..kn {
            let mut acc = [_mm512_setzero_ps(); M];
            for c0 in (0..d).step_by(16) {
                let mask = ((1u32 << (d - c0).min(16)) - 1) as __mmask16;
                // SAFETY: lanes past d are masked (no access); j < kn rows of k, r < M of q.
                unsafe {
                    let kv = _mm512_maskz_loadu_ps(mask, k.add(j * d + c0));
                    for (r, a) in acc.iter_mut().enumerate() {
                        let qv = _mm512_maskz_loadu_ps(mask, q.add(r * d + c0));
                        *a = _mm512_fmadd_ps(qv, kv, *a);
                    }
                }
            }
            for (r, &a) in acc.iter().enumerate() {
                // SAFETY: row r < M of s has BK ≥ kn entries.
                unsafe { *s.add(r * BK + j) = scale * _mm512_reduce_add_ps(a) };
            }
        }
    }

    /// See [`super::kernels::gemm_acc`]; columns go in chunks of 64, the last one masked.
    /// SAFETY (caller): AVX-512F present; the operands hold what `gemm_acc` checks.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn gemm_acc(
        rows: usize,
        kdim: usize,
        d: usize,
        a: super::kernels::Lhs,
        b: &[f32],
        corr: Option<&[f32]>,
        c: &mut [f32],
    ) {
        let (ap, bp, cp) = (a.data.as_ptr(), b.as_ptr(), c.as_mut_ptr());
        let ones = [1f32; MR];
        for c0 in (0..d).step_by(64) {
            let masks: [__mmask16; 4] = std::array::from_fn(|c| {
                let left = d.saturating_sub(c0 + 16 * c).min(16);
                ((1u32 << left) - 1) as __mmask16
            });
            let mut r = 0;
            while r < rows {
                let m = (rows - r).min(MR);
                let f = corr.map_or(ones.as_ptr(), |x| x[r..].as_ptr());
                let strides = (a.rs, a.ks, d);
                // SAFETY: rows r..r+m of a and c exist; columns past d are masked off.
                unsafe {
                    by_rows!(
                        m,
                        gemm_m(
                            kdim,
                            strides,
                            ap.add(r * a.rs),
                            bp.add(c0),
                            f,
                            cp.add(r * d + c0),
                            masks
                        )
                    )
                };
                r += m;
            }
        }
    }

    /// See [`super::kernels::online_softmax`]: one row of 64 scores is 4 vectors; hidden keys
    /// are masked lanes set to −∞, so their `exp` is 0 without touching memory twice.
    /// SAFETY (caller): AVX-512F present; `s` holds `vis.len()·BK` values, `m`, `l`, `corr` at
    /// least `vis.len()`, and every `vis[r] ≤ BK`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn online_softmax(
        vis: &[usize],
        s: &mut [f32],
        m: &mut [f32],
        l: &mut [f32],
        corr: &mut [f32],
    ) {
        let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
        for (r, &vis) in vis.iter().enumerate() {
            // SAFETY: row r of s has BK = 64 floats.
            let sp = unsafe { s.as_mut_ptr().add(r * BK) };
            let x: [__m512; 4] = std::array::from_fn(|c| {
                let left = vis.saturating_sub(16 * c).min(16);
                let keep = ((1u32 << left) - 1) as __mmask16;
                // SAFETY: 16 floats at sp + 16c are inside the row.
                _mm512_mask_loadu_ps(ninf, keep, unsafe { sp.add(16 * c) })
            });
            let tmax = _mm512_reduce_max_ps(_mm512_max_ps(
                _mm512_max_ps(x[0], x[1]),
                _mm512_max_ps(x[2], x[3]),
            ));
            let m_new = m[r].max(tmax);
            if m_new == f32::NEG_INFINITY {
                for c in 0..4 {
                    // SAFETY: as above.
                    unsafe { _mm512_storeu_ps(sp.add(16 * c), _mm512_setzero_ps()) };
                }
                corr[r] = 1.0;
                continue;
            }
            // exp(−∞) = 0 before the first contribution, where the accumulator and l are 0.
            corr[r] = if m_new == m[r] {
                1.0
            } else {
                vector::exp(m[r] - m_new)
            };
            let mv = _mm512_set1_ps(m_new);
            let mut sum = _mm512_setzero_ps();
            for (c, &xc) in x.iter().enumerate() {
                let e = vector::avx512::exp(_mm512_sub_ps(xc, mv));
                sum = _mm512_add_ps(sum, e);
                // SAFETY: as above.
                unsafe { _mm512_storeu_ps(sp.add(16 * c), e) };
            }
            l[r] = l[r] * corr[r] + _mm512_reduce_add_ps(sum);
            m[r] = m_new;
        }
    }

    /// `M` rows × 64 columns of [`gemm_acc`]: `(rs, ks, d)` are the strides of `a` and the row
    /// length of `b` and `c`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn gemm_m<const M: usize>(
        kn: usize,
        (rs, ks, d): (usize, usize, usize),
        p: *const f32,
        v: *const f32,
        corr: *const f32,
        o: *mut f32,
        masks: [__mmask16; 4],
    ) {
        let mut acc = [[_mm512_setzero_ps(); 4]; M];
        for (r, ar) in acc.iter_mut().enumerate() {
            // SAFETY: corr has a factor per row (r < M rows from this block's first).
            let c_r = _mm512_set1_ps(unsafe { *corr.add(r) });
            for (c, a) in ar.iter_mut().enumerate() {
                // SAFETY: masked lanes are not read (AVX-512 masked loads suppress faults).
                let o_rc = unsafe { _mm512_maskz_loadu_ps(masks[c], o.add(r * d + c * 16)) };
                *a = _mm512_mul_ps(o_rc, c_r);
            }
        }
        for j in 0..kn {
            // SAFETY: k-step j < kn rows of b (v); lanes past d are masked; a(r, j) is in bounds (checked by gemm_acc).
            unsafe {
                let vj = v.add(j * d);
                let vv: [__m512; 4] =
                    std::array::from_fn(|c| _mm512_maskz_loadu_ps(masks[c], vj.add(c * 16)));
                for (r, ar) in acc.iter_mut().enumerate() {
                    let pv = _mm512_set1_ps(*p.add(r * rs + j * ks));
                    for (a, &x) in ar.iter_mut().zip(&vv) {
                        *a = _mm512_fmadd_ps(pv, x, *a);
                    }
                }
            }
        }
        for (r, ar) in acc.iter().enumerate() {
            for (c, &a) in ar.iter().enumerate() {
                // SAFETY: as for the loads.
                unsafe { _mm512_mask_storeu_ps(o.add(r * d + c * 16), masks[c], a) };
            }
        }
    }
}

/// What the blocked backward reads besides q, k, v: the output gradient, the packed keys and
/// values (`[D][BK]` tiles), and per query row the forward's log-sum-exp and `δ = dO·O`.
struct Saved<'a> {
    dout: &'a [f32],
    kt: &'a [f32],
    vt: &'a [f32],
    lse: &'a [f32],
    delta: &'a [f32],
}

/// One backward unit's (dq, dk), dv output blocks, as rayon's zip nests them.
type GradBlocks<'a> = ((&'a mut [f32], &'a mut [f32]), &'a mut [f32]);

/// True when `units` parallel pieces of this attention are worth rayon's overhead.
fn parallel(dims: &Dims, units: usize) -> bool {
    units > 1 && dims.b * dims.hq * dims.tq * dims.tk * dims.d >= PAR_THRESHOLD
}

/// Gradients `(dq, dk, dv)` of [`attention`] for the output gradient `dout` `[B, Hq, Tq, D]`.
/// dk/dv of a kv head sum the contributions of every query head in its group.
pub fn attention_backward(
    q: View,
    k: View,
    v: View,
    mask: Option<View>,
    dout: View,
    p: &AttentionParams,
) -> Result<(Buffer, Buffer, Buffer)> {
    let dims = Dims::new(OP_BACK, &q, &k, &v)?;
    if dout.shape() != q.shape() {
        return Err(Error::ShapeMismatch {
            op: OP_BACK,
            lhs: q.shape().to_vec(),
            rhs: dout.shape().to_vec(),
        });
    }
    let qs = f32_only(OP_BACK, &q)?;
    let dos = f32_only(OP_BACK, &dout)?;
    let inputs = Inputs {
        q: &qs,
        k: Heads::new(OP_BACK, &k)?,
        v: Heads::new(OP_BACK, &v)?,
        mask: mask.map(|m| Mask::new(OP_BACK, &m, &dims)).transpose()?,
        dims,
        p: *p,
    };
    let kv_len = dims.tk * dims.d;
    let q_len = dims.group() * dims.tq * dims.d;
    let mut dq = vec![0f32; dims.b * dims.hq * dims.tq * dims.d];
    let mut dk = vec![0f32; dims.b * dims.hkv * kv_len];
    let mut dv = vec![0f32; dk.len()];
    if !dq.is_empty() && !dk.is_empty() {
        // Recompute the forward for O and each row's log-sum-exp, then δ = dO·O per row.
        let kt = pack_keys(&inputs.k, &dims);
        let (o, lse) = inputs.forward_all(Some(&kt));
        let delta: Vec<f32> = if o.len() >= PAR_THRESHOLD {
            let rows = dos.par_chunks_exact(dims.d).zip(o.par_chunks_exact(dims.d));
            rows.map(|(a, b)| dot(a, b)).collect()
        } else {
            let rows = dos.chunks_exact(dims.d).zip(o.chunks_exact(dims.d));
            rows.map(|(a, b)| dot(a, b)).collect()
        };
        let saved = Saved {
            dout: &dos,
            kt: &kt,
            vt: &pack_keys(&inputs.v, &dims),
            lse: &lse,
            delta: &delta,
        };
        let unit = |(u, ((dqc, dkc), dvc)): (usize, GradBlocks)| {
            inputs.backward_blocked(&saved, u, dqc, dkc, dvc);
        };
        if parallel(&dims, dims.b * dims.hkv) {
            dq.par_chunks_mut(q_len)
                .zip(dk.par_chunks_mut(kv_len))
                .zip(dv.par_chunks_mut(kv_len))
                .enumerate()
                .for_each(unit);
        } else {
            dq.chunks_mut(q_len)
                .zip(dk.chunks_mut(kv_len))
                .zip(dv.chunks_mut(kv_len))
                .enumerate()
                .for_each(unit);
        }
    }
    Ok((
        boxed(HostBuffer::F32(dq)),
        boxed(HostBuffer::F32(dk)),
        boxed(HostBuffer::F32(dv)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::Rng;

    /// The blocked backward against the per-row one, on shapes with several row blocks and
    /// key tiles, GQA, a head dim that is not a multiple of 16, causal and not.
    #[test]
    fn blocked_backward_matches_the_per_row_backward() {
        for causal in [false, true] {
            let dims = Dims {
                b: 2,
                hq: 4,
                hkv: 2,
                tq: 37,
                tk: 150,
                d: 20,
            };
            let mut rng = Rng::new(7);
            let mut randn = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal()).collect() };
            let nq = dims.b * dims.hq * dims.tq * dims.d;
            let nk = dims.b * dims.hkv * dims.tk * dims.d;
            let (q, k, v, dout) = (randn(nq), randn(nk), randn(nk), randn(nq));
            let head = dims.tk * dims.d;
            let inputs = Inputs {
                q: &q,
                k: Heads::dense(Cow::Borrowed(&k), dims.hkv, head),
                v: Heads::dense(Cow::Borrowed(&v), dims.hkv, head),
                mask: None,
                dims,
                p: AttentionParams { scale: 0.3, causal },
            };
            let kt = pack_keys(&inputs.k, &dims);
            let (o, lse) = inputs.forward_all(Some(&kt));
            let delta: Vec<f32> = dout
                .chunks(dims.d)
                .zip(o.chunks(dims.d))
                .map(|(a, b)| dot(a, b))
                .collect();
            let saved = Saved {
                dout: &dout,
                kt: &kt,
                vt: &pack_keys(&inputs.v, &dims),
                lse: &lse,
                delta: &delta,
            };
            let (ql, kl) = (nq / (dims.b * dims.hkv), nk / (dims.b * dims.hkv));
            for u in 0..dims.b * dims.hkv {
                let (mut dq, mut dk, mut dv) = (vec![0f32; ql], vec![0f32; kl], vec![0f32; kl]);
                inputs.backward_blocked(&saved, u, &mut dq, &mut dk, &mut dv);
                let (mut rq, mut rk, mut rv) = (vec![0f32; ql], vec![0f32; kl], vec![0f32; kl]);
                let (bi, kv) = (u / dims.hkv, u % dims.hkv);
                inputs.backward_unit(&dout, bi, kv, &mut rq, &mut rk, &mut rv);
                for (name, got, want) in [("dq", dq, rq), ("dk", dk, rk), ("dv", dv, rv)] {
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (g - w).abs() <= 1e-4 + 1e-4 * w.abs(),
                            "{name}[{i}] unit {u} causal {causal}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }
}
