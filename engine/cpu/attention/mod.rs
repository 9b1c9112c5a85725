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
use super::gemm::Precision;
use super::memory::{boxed, f32_only, host};
use super::vector::{self, dot};
use crate::engine::device::{AttentionParams, Buffer, View};
use crate::engine::error::{Error, Result};
use crate::engine::storage::HostBuffer;
use rayon::prelude::*;
use std::borrow::Cow;

/// Calls `$f::<M>(args)` for a row count `M` in `1..=MR` known only at run time (the register-
/// blocked micro-kernels of `avx512.rs` and `avx512_bf16.rs` are generic over their row count).
#[cfg(target_arch = "x86_64")]
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

mod backward;
#[cfg(target_arch = "x86_64")]
mod bf16;
mod forward;
use forward::{finish_rows, pack_keys, Keys};
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod avx512_bf16;
mod kernels;
#[cfg(test)]
mod tests;

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
/// With [`Precision::Bf16`] (the `cpu-bf16` device) the two products of the packed path run on
/// bf16 operands ([`bf16`]); the few-query path stays f32.
pub fn attention(
    q: View,
    k: View,
    v: View,
    mask: Option<View>,
    p: &AttentionParams,
    precision: Precision,
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
    if dims.group() * dims.tq < PACK_MIN_ROWS {
        return Ok(boxed(HostBuffer::F32(inputs.forward_all(Keys::Direct).0)));
    }
    #[cfg(target_arch = "x86_64")]
    if precision == Precision::Bf16 {
        // Precision::Bf16 exists only where supported (the device refuses it otherwise); the
        // check keeps the kernels' contract local.
        assert!(
            precision.supported(),
            "attention: bf16 kernels on a CPU without them"
        );
        let packed = bf16::Packed::new(&inputs.k, &inputs.v, &dims);
        return Ok(boxed(HostBuffer::F32(
            inputs.forward_all(Keys::Bf16(&packed)).0,
        )));
    }
    let _ = precision;
    let kt = pack_keys(&inputs.k, &dims);
    Ok(boxed(HostBuffer::F32(inputs.forward_all(Keys::F32(&kt)).0)))
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
        let (o, lse) = inputs.forward_all(Keys::F32(&kt));
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
