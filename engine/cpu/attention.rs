//! Scaled dot-product attention on the CPU.
//!
//! Forward: one pass over the keys in tiles with an online softmax (Milakov & Gimelshein 2018;
//! FlashAttention, Dao et al. 2022): per query row keep the running max `m`, the running sum
//! `l = Σ exp(s_j − m)` and the unnormalized output `acc = Σ exp(s_j − m)·v_j`; when a tile
//! raises the max to `m'`, rescale `l` and `acc` by `exp(m − m')`. The output is `acc / l`.
//! No `Tq × Tk` score matrix is ever formed. Rows whose every score is −∞ (fully masked) give 0.
//!
//! Backward: per query row recompute the probabilities `P_j = softmax(s)_j` (a `Tk` row buffer),
//! `dP_j = dO·v_j`, `δ = Σ_j P_j·dP_j` (= dO·O) and `dS_j = P_j·(dP_j − δ)`; then
//! `dq += scale·Σ_j dS_j·k_j`, `dk_j += scale·dS_j·q`, `dv_j += P_j·dO`. Work is split by
//! (batch, kv head): such a unit owns the dk/dv of its kv head and the dq of the query heads
//! that read it (GQA), so no two threads write the same gradient.
//!
//! Shapes: q `[B, Hq, Tq, D]`, k/v `[B, Hkv, Tk, D]`, query head `h` reads kv head
//! `h / (Hq/Hkv)`; the optional additive mask is read through its strides as `[B, Hq, Tq, Tk]`
//! (stride-0 broadcast dims are never expanded). Causal: query `i` sees keys
//! `j ≤ i + Tk − Tq`.

use super::elementwise::PAR_THRESHOLD;
use super::memory::{boxed, f32_only, host};
use super::vector::{axpy, dot};
use crate::engine::device::{AttentionParams, Buffer, View};
use crate::engine::error::{Error, Result};
use crate::engine::storage::HostBuffer;
use rayon::prelude::*;

const OP: &str = "attention";
const OP_BACK: &str = "attention_backward";
/// Query rows processed together, so each key/value tile is reused from cache by all of them.
const Q_BLOCK: usize = 16;
/// Keys per tile of the online softmax (the score buffer of one row).
const K_TILE: usize = 64;

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

/// Everything a forward or backward worker reads.
struct Inputs<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    mask: Option<Mask<'a>>,
    dims: Dims,
    p: AttentionParams,
}

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
        let kbase = dm.row(bi, kv, dm.hkv, 0, dm.tk);
        let mrow = self.mask.as_ref().map(|m| m.row(bi, h, i));
        let mut max = f32::NEG_INFINITY;
        for (j, sj) in (t0..t1).zip(s.iter_mut()) {
            let kj = &self.k[kbase + j * dm.d..kbase + (j + 1) * dm.d];
            let mut x = self.p.scale * dot(qi, kj);
            if let Some(m) = &mrow {
                x += m.at(j);
            }
            *sj = x;
            max = max.max(x);
        }
        max
    }

    /// Online-softmax forward of query rows `i0..i0+rows` of head `(bi, h)` into `out`
    /// (`rows × D`, zero on entry; it doubles as the running accumulator).
    fn forward_block(&self, bi: usize, h: usize, i0: usize, out: &mut [f32]) {
        let dm = &self.dims;
        let d = dm.d;
        let rows = out.len() / d;
        let kv = h / dm.group();
        let vbase = dm.row(bi, kv, dm.hkv, 0, dm.tk);
        let mut m = [f32::NEG_INFINITY; Q_BLOCK];
        let mut l = [0f32; Q_BLOCK];
        let mut s = [0f32; K_TILE];
        let kmax = dm.visible(self.p.causal, i0 + rows - 1);
        for t0 in (0..kmax).step_by(K_TILE) {
            let t1 = (t0 + K_TILE).min(kmax);
            for r in 0..rows {
                let i = i0 + r;
                let lim = dm.visible(self.p.causal, i).min(t1);
                if lim <= t0 {
                    continue;
                }
                let qo = dm.row(bi, h, dm.hq, i, dm.tq);
                let qi = &self.q[qo..qo + d];
                let tile_max = self.scores(qi, bi, h, i, kv, (t0, lim), &mut s);
                if tile_max == f32::NEG_INFINITY {
                    continue; // every key of this tile is masked out: it adds nothing
                }
                let m_new = m[r].max(tile_max);
                // exp(−∞ − m_new) = 0 on the first contributing tile, where acc and l are 0.
                let corr = (m[r] - m_new).exp();
                let acc = &mut out[r * d..(r + 1) * d];
                if corr != 1.0 {
                    acc.iter_mut().for_each(|a| *a *= corr);
                    l[r] *= corr;
                }
                for (j, &sj) in (t0..lim).zip(s.iter()) {
                    let pj = (sj - m_new).exp();
                    if pj == 0.0 {
                        continue;
                    }
                    l[r] += pj;
                    axpy(acc, pj, &self.v[vbase + j * d..vbase + (j + 1) * d]);
                }
                m[r] = m_new;
            }
        }
        for (r, acc) in out.chunks_mut(d).enumerate() {
            // l = 0 only when no key was visible or all were −∞: such a row outputs 0.
            let inv = if l[r] > 0.0 { 1.0 / l[r] } else { 0.0 };
            acc.iter_mut().for_each(|a| *a *= inv);
        }
    }

    /// Backward of every query row of the query heads reading kv head `(bi, kv)`; `dq` is those
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
        let kvbase = dm.row(bi, kv, dm.hkv, 0, dm.tk);
        let (kh, vh) = (
            &self.k[kvbase..kvbase + dm.tk * d],
            &self.v[kvbase..kvbase + dm.tk * d],
        );
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
                    axpy(dqi, ds, &kh[span.clone()]);
                    axpy(&mut dk[span.clone()], ds, qi);
                    axpy(&mut dv[span], pj, doi);
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
    let (qs, ks, vs) = (f32_only(OP, &q)?, f32_only(OP, &k)?, f32_only(OP, &v)?);
    let inputs = Inputs {
        q: &qs,
        k: &ks,
        v: &vs,
        mask: mask.map(|m| Mask::new(OP, &m, &dims)).transpose()?,
        dims,
        p: *p,
    };
    let plane = dims.tq * dims.d;
    let mut out = vec![0f32; dims.b * dims.hq * plane];
    if out.is_empty() {
        return Ok(boxed(HostBuffer::F32(out)));
    }
    let head = |(bh, po): (usize, &mut [f32])| {
        let (bi, h) = (bh / dims.hq, bh % dims.hq);
        let block = |(blk, o): (usize, &mut [f32])| {
            inputs.forward_block(bi, h, blk * Q_BLOCK, o);
        };
        if parallel(&dims, dims.tq.div_ceil(Q_BLOCK)) {
            po.par_chunks_mut(Q_BLOCK * dims.d)
                .enumerate()
                .for_each(block);
        } else {
            po.chunks_mut(Q_BLOCK * dims.d).enumerate().for_each(block);
        }
    };
    if parallel(&dims, dims.b * dims.hq) {
        out.par_chunks_mut(plane).enumerate().for_each(head);
    } else {
        out.chunks_mut(plane).enumerate().for_each(head);
    }
    Ok(boxed(HostBuffer::F32(out)))
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
    let (qs, ks, vs) = (
        f32_only(OP_BACK, &q)?,
        f32_only(OP_BACK, &k)?,
        f32_only(OP_BACK, &v)?,
    );
    let dos = f32_only(OP_BACK, &dout)?;
    let inputs = Inputs {
        q: &qs,
        k: &ks,
        v: &vs,
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
        let unit = |(u, ((dqc, dkc), dvc)): (usize, GradBlocks)| {
            inputs.backward_unit(&dos, u / dims.hkv, u % dims.hkv, dqc, dkc, dvc);
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
