//! The blocked backward pass (FlashAttention-2 order) over recomputed probabilities.

use super::*;

impl Inputs<'_> {
    /// Blocked backward of kv head `bkv` (= b·Hkv + kv) over the rows of its query-head group
    /// (FlashAttention-2 order, Dao 2023): per block of [`BQ`] rows and tile of [`BK`] keys,
    /// `P = exp(scale·Q·Kᵀ + mask − lse)` (no renormalization: lse is final), `dP = dO·Vᵀ`,
    /// `dS = scale·P∘(dP − δ)`, then `dV += Pᵀ·dO`, `dK += dSᵀ·Q`, `dQ += dS·K`, all with the
    /// forward's micro-kernels. `dq` is the group's `[G·Tq, D]` block, `dk`/`dv` the kv head's
    /// `[Tk, D]` blocks (zero on entry).
    pub(super) fn backward_blocked(
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
