//! The blocked forward pass: key packing and the per-block online softmax.

use super::*;

/// How a forward reads the keys: in place (few query rows), packed f32 tiles, or the bf16
/// pair-packed keys and values of the `cpu-bf16` device.
#[derive(Clone, Copy)]
pub(super) enum Keys<'a> {
    /// Read each key row in place with dot products.
    Direct,
    /// `[D][BK]` f32 tiles from [`pack_keys`].
    F32(&'a [f32]),
    /// Pair-packed keys and values ([`super::bf16::Packed`]).
    #[cfg(target_arch = "x86_64")]
    Bf16(&'a super::bf16::Packed),
}

/// Keys of every kv head packed for the score kernel: per head, tiles of [`BK`] keys, each
/// stored transposed as `[D][BK]` (key index fastest, zero past `Tk`), so the kernel loads the
/// keys of one tile as contiguous vectors. Packed once per call and shared by every query
/// block and every query head of the group (GQA).
pub(super) fn pack_keys(k: &Heads, dm: &Dims) -> Vec<f32> {
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
    pub(super) fn forward_all(&self, keys: Keys) -> (Vec<f32>, Vec<f32>) {
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
            let unit = |(blk, (o, l)): (usize, (&mut [f32], &mut [f32]))| match keys {
                Keys::Direct => self.forward_unit(None, bkv, blk * BQ, o, l),
                Keys::F32(kt) => self.forward_unit(Some(kt), bkv, blk * BQ, o, l),
                Keys::Bf16(packed) => self.forward_unit_bf16(packed, bkv, blk * BQ, o, l),
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
    pub(super) fn visible_in_tile(
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
    pub(super) fn row_info(
        &self,
        kv: usize,
        row0: usize,
        rows: usize,
    ) -> ([(usize, usize); BQ], [usize; BQ]) {
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
    pub(super) fn forward_unit(
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
        finish_rows(out, d, &m, &l, lse);
    }
}

/// The last step of a forward unit: each row's accumulator divided by its sum `l`, and its
/// log-sum-exp `m + ln l`.
pub(super) fn finish_rows(out: &mut [f32], d: usize, m: &[f32], l: &[f32], lse: &mut [f32]) {
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
