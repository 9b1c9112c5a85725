//! The bf16 forward of the `cpu-bf16` device: the same blocked online-softmax pass as
//! `forward.rs`, with both products on AVX512_BF16 (`avx512_bf16.rs`): `S = Q·Kᵀ` and
//! `O += P·V` read bf16 *pairs*, so each instruction does two steps of the reduction. Q, K, V
//! and the probabilities P are rounded to bf16 (8 significant bits) as they are packed; scores,
//! the softmax statistics and the output accumulate in f32, exactly as in the f32 path.
//!
//! Packing, once per call and kv head (shared by every query block and every query head of the
//! group): keys in tiles of [`BK`] as `[D/2][BK]` pair words — word `(q, j)` holds dimensions
//! `2q, 2q+1` of key `j`, so a tile row is 64 keys' worth of one dimension pair; values in tiles
//! as `[BK/2][D]` pair words — word `(q, e)` holds dimension `e` of keys `2q, 2q+1`. Zero past
//! `Tk` and past an odd `D`. The backward and the few-query (decode) path stay f32.

use super::avx512_bf16 as kern;
use super::*;
use half::bf16;

/// A pair word: `lo` in the low 16 bits (the even index), `hi` in the high ones.
fn pair(lo: f32, hi: f32) -> u32 {
    u32::from(bf16::from_f32(lo).to_bits()) | (u32::from(bf16::from_f32(hi).to_bits()) << 16)
}

/// Keys and values of every kv head, packed as pair words (see the module docs).
pub(super) struct Packed {
    kt: Vec<u32>,
    vt: Vec<u32>,
}

impl Packed {
    /// Pack k and v (per kv head in parallel when large).
    pub(super) fn new(k: &Heads, v: &Heads, dm: &Dims) -> Packed {
        let (d, d2, tiles) = (dm.d, dm.d.div_ceil(2), dm.tk.div_ceil(BK));
        let heads = dm.b * dm.hkv;
        let (k_head, v_head) = (tiles * d2 * BK, tiles * (BK / 2) * d);
        let mut kt = vec![0u32; heads * k_head];
        let mut vt = vec![0u32; heads * v_head];
        if kt.is_empty() || vt.is_empty() {
            return Packed { kt, vt };
        }
        let pack = |(h, (kd, vd)): (usize, (&mut [u32], &mut [u32]))| {
            for (j, kj) in k.head(h).chunks_exact(d).enumerate() {
                let base = (j / BK) * d2 * BK + j % BK;
                for (q, two) in kj.chunks(2).enumerate() {
                    kd[base + q * BK] = pair(two[0], two.get(1).copied().unwrap_or(0.0));
                }
            }
            let vh = v.head(h);
            for (jp, rows) in vh.chunks(2 * d).enumerate() {
                // Key pair jp = keys 2jp, 2jp+1: tile jp / (BK/2), pair row jp % (BK/2).
                let base = (jp / (BK / 2)) * (BK / 2) * d + (jp % (BK / 2)) * d;
                let (v0, v1) = rows.split_at(d.min(rows.len()));
                for e in 0..d {
                    vd[base + e] = pair(v0[e], v1.get(e).copied().unwrap_or(0.0));
                }
            }
        };
        if kt.len() >= PAR_THRESHOLD && heads > 1 {
            kt.par_chunks_mut(k_head)
                .zip(vt.par_chunks_mut(v_head))
                .enumerate()
                .for_each(pack);
        } else {
            kt.chunks_mut(k_head)
                .zip(vt.chunks_mut(v_head))
                .enumerate()
                .for_each(pack);
        }
        Packed { kt, vt }
    }
}

impl Inputs<'_> {
    /// [`Inputs::forward_unit`] with the bf16 products (same arguments and results).
    pub(super) fn forward_unit_bf16(
        &self,
        packed: &Packed,
        bkv: usize,
        row0: usize,
        out: &mut [f32],
        lse: &mut [f32],
    ) {
        let dm = &self.dims;
        let (d, d2, g) = (dm.d, dm.d.div_ceil(2), dm.group());
        let rows = out.len() / d;
        let (bi, kv) = (bkv / dm.hkv, bkv % dm.hkv);
        let q = &self.q[(bkv * g * dm.tq + row0) * d..][..rows * d];
        let mut qp = vec![0u32; rows * d2];
        for (src, dst) in q.chunks_exact(d).zip(qp.chunks_exact_mut(d2)) {
            // SAFETY: the bf16 path is only chosen on CPUs with AVX512_BF16 (see `attention`);
            // dst holds ⌈d/2⌉ words.
            unsafe { kern::to_pairs(src, dst) };
        }
        let tiles = dm.tk.div_ceil(BK);
        let kth = &packed.kt[bkv * tiles * d2 * BK..][..tiles * d2 * BK];
        let vth = &packed.vt[bkv * tiles * (BK / 2) * d..][..tiles * (BK / 2) * d];
        let (who, lim) = self.row_info(kv, row0, rows);
        let kmax = lim[..rows].iter().copied().max().unwrap_or(0);
        let mut m = [f32::NEG_INFINITY; BQ];
        let mut l = [0f32; BQ];
        let mut s = vec![0f32; BQ * BK];
        let mut pp = vec![0u32; BQ * BK / 2];
        for t0 in (0..kmax).step_by(BK) {
            let kn = (kmax - t0).min(BK);
            let tile = t0 / BK;
            let k_tile = &kth[tile * d2 * BK..][..d2 * BK];
            // SAFETY: as above; qp holds rows·d2, the tile d2·BK, s BQ·BK ≥ rows·BK.
            unsafe { kern::scores(rows, d2, &qp, k_tile, &mut s, self.p.scale) };
            let vis = self.visible_in_tile(bi, &who[..rows], &lim[..rows], t0, kn, &mut s);
            let mut corr = [1f32; BQ];
            kernels::online_softmax(
                &vis[..rows],
                &mut s,
                &mut m[..rows],
                &mut l[..rows],
                &mut corr[..rows],
            );
            // Hidden entries are exactly 0 after the softmax step, so the pair past an odd kn
            // (and keys past Tk, zero in the packed tile) add nothing.
            for (src, dst) in s
                .chunks_exact(BK)
                .zip(pp.chunks_exact_mut(BK / 2))
                .take(rows)
            {
                // SAFETY: as above; dst holds BK/2 words.
                unsafe { kern::to_pairs(src, dst) };
            }
            let v_tile = &vth[tile * (BK / 2) * d..][..(BK / 2) * d];
            // SAFETY: as above; pp rows·BK/2, the tile (BK/2)·d ≥ ⌈kn/2⌉·d, out rows·d.
            unsafe { kern::pv(rows, kn.div_ceil(2), d, &pp, v_tile, &corr[..rows], out) };
        }
        finish_rows(out, d, &m, &l, lse);
    }
}
