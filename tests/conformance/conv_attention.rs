//! Conformance cases: conv2d / conv1d / im2col / col2im and scaled dot-product attention,
//! each against a direct f64 nested-loop reference written here, plus gradient checks and the
//! errors bad shapes must produce.

use super::*;
use osum::engine::ops::attention::KvCache;
use osum::engine::{AttentionParams, Conv2dParams, DType, Error};

macro_rules! conv_attention_cases {
    ($dev:path) => {
        conformance_cases!(
            $dev,
            conv_attention,
            [
                conv2d_matches_reference_over_stride_padding_dilation,
                conv2d_widens_half_precision_weights,
                conv2d_reads_noncontiguous_input_and_weights,
                conv1d_matches_reference_whisper_like,
                conv_ops_match_reference_on_sizes_that_run_in_parallel,
                im2col_matches_reference_and_col2im_is_its_adjoint,
                attention_noncausal_matches_reference,
                attention_causal_square_matches_reference,
                attention_causal_decode_aligns_queries_to_the_last_keys,
                attention_gqa_query_heads_share_kv_heads,
                attention_additive_mask_broadcasts_over_batch_heads_queries,
                attention_fully_masked_row_gives_zeros,
                attention_reads_noncontiguous_qkv,
                attention_long_key_sequence_crosses_tiles,
                attention_head_dims_and_block_shapes_of_the_tiled_kernel,
                attention_with_kv_cache_decodes_like_full_causal_attention,
                grad_conv2d_input_weight_bias,
                grad_conv1d,
                grad_im2col_and_col2im,
                grad_attention_causal_gqa_masked,
                attention_backward_matches_reference_on_sizes_that_run_in_parallel,
                attention_backward_matches_reference_across_row_blocks_and_key_tiles,
                attention_mask_tracking_gradients_is_refused,
                conv_errors_name_the_op_and_shapes,
                attention_errors_name_the_op_and_shapes,
            ]
        );
    };
}

// ---- convolution references ----------------------------------------------------------------------

fn params(
    stride: (usize, usize),
    padding: (usize, usize),
    dilation: (usize, usize),
) -> Conv2dParams {
    Conv2dParams {
        stride,
        padding,
        dilation,
    }
}

/// Output length along one axis: ⌊(i + 2p − d(k − 1) − 1)/s⌋ + 1.
fn out_len(i: usize, k: usize, s: usize, p: usize, d: usize) -> usize {
    (i + 2 * p - d * (k - 1) - 1) / s + 1
}

/// Input coordinate read by output `o`, tap `t` along one axis, if inside the input.
fn src(o: usize, t: usize, s: usize, p: usize, d: usize, len: usize) -> Option<usize> {
    let x = (o * s + t * d) as isize - p as isize;
    (x >= 0 && (x as usize) < len).then_some(x as usize)
}

/// Direct conv2d: y[n,o,oy,ox] = b[o] + Σ_{c,i,j} x[n,c,src(oy,i),src(ox,j)]·w[o,c,i,j].
fn conv2d_ref(
    x: &[f64],
    xs: [usize; 4],
    w: &[f64],
    ws: [usize; 4],
    b: Option<&[f64]>,
    p: &Conv2dParams,
) -> (Vec<f64>, Vec<usize>) {
    let [n, c, h, wd] = xs;
    let [o, _, kh, kw] = ws;
    let oh = out_len(h, kh, p.stride.0, p.padding.0, p.dilation.0);
    let ow = out_len(wd, kw, p.stride.1, p.padding.1, p.dilation.1);
    let mut y = vec![0.0; n * o * oh * ow];
    for ni in 0..n {
        for oi in 0..o {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b.map_or(0.0, |b| b[oi]);
                    for ci in 0..c {
                        for i in 0..kh {
                            for j in 0..kw {
                                let iy = src(oy, i, p.stride.0, p.padding.0, p.dilation.0, h);
                                let ix = src(ox, j, p.stride.1, p.padding.1, p.dilation.1, wd);
                                if let (Some(iy), Some(ix)) = (iy, ix) {
                                    acc += x[ravel(&[ni, ci, iy, ix], &xs)]
                                        * w[ravel(&[oi, ci, i, j], &ws)];
                                }
                            }
                        }
                    }
                    y[ravel(&[ni, oi, oy, ox], &[n, o, oh, ow])] = acc;
                }
            }
        }
    }
    (y, vec![n, o, oh, ow])
}

/// Direct im2col: cols[n, (c·KH + i)·KW + j, oy·OW + ox] = x[n, c, src(oy,i), src(ox,j)] or 0.
fn im2col_ref(x: &[f64], xs: [usize; 4], k: (usize, usize), p: &Conv2dParams) -> Vec<f64> {
    let [n, c, h, w] = xs;
    let oh = out_len(h, k.0, p.stride.0, p.padding.0, p.dilation.0);
    let ow = out_len(w, k.1, p.stride.1, p.padding.1, p.dilation.1);
    let shape = [n, c * k.0 * k.1, oh * ow];
    let mut out = vec![0.0; shape.iter().product()];
    for ni in 0..n {
        for ci in 0..c {
            for i in 0..k.0 {
                for j in 0..k.1 {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let iy = src(oy, i, p.stride.0, p.padding.0, p.dilation.0, h);
                            let ix = src(ox, j, p.stride.1, p.padding.1, p.dilation.1, w);
                            if let (Some(iy), Some(ix)) = (iy, ix) {
                                let r = (ci * k.0 + i) * k.1 + j;
                                out[ravel(&[ni, r, oy * ow + ox], &shape)] =
                                    x[ravel(&[ni, ci, iy, ix], &xs)];
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

fn shape4(t: &Tensor) -> [usize; 4] {
    t.shape().try_into().expect("rank 4")
}

/// Compare `x.conv2d(w, b, p)` with the reference.
fn check_conv2d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    p: &Conv2dParams,
    what: &str,
) -> Result<()> {
    let got = x.conv2d(w, b, p)?;
    let bv = b.map(values).transpose()?;
    let (want, shape) = conv2d_ref(
        &values(x)?,
        shape4(x),
        &values(w)?,
        shape4(w),
        bv.as_deref(),
        p,
    );
    assert_eq!(got.shape(), shape.as_slice(), "{what}: shape");
    assert_tensor_close(&got, &want, 1e-4, 1e-4, what)
}

pub fn conv2d_matches_reference_over_stride_padding_dilation(dev: &Dev) -> Result<()> {
    // (input hw, kernel, stride, padding, dilation): square, non-square, strided, dilated,
    // padding wider than the dilated kernel reach, and the 1×1 fast path.
    let combos = [
        ((6, 6), (3, 3), (1, 1), (0, 0), (1, 1)),
        ((6, 6), (3, 3), (1, 1), (1, 1), (1, 1)),
        ((7, 5), (3, 2), (2, 1), (1, 0), (1, 2)),
        ((8, 9), (2, 3), (3, 2), (2, 1), (2, 1)),
        ((5, 7), (3, 3), (2, 2), (2, 3), (2, 2)),
        ((4, 5), (1, 1), (1, 1), (0, 0), (1, 1)),
        ((4, 5), (1, 1), (2, 1), (1, 0), (1, 1)),
        ((3, 4), (5, 4), (1, 1), (1, 0), (1, 1)),
    ];
    for (seed, &((h, w), (kh, kw), s, pd, d)) in combos.iter().enumerate() {
        let seed = 10 * seed as u64;
        let p = params(s, pd, d);
        let x = randn(dev, &[2, 3, h, w], seed)?;
        let wt = randn(dev, &[4, 3, kh, kw], seed + 1)?;
        let b = randn(dev, &[4], seed + 2)?;
        let what = format!("conv2d {:?} k{:?} {p:?}", (h, w), (kh, kw));
        check_conv2d(&x, &wt, None, &p, &format!("{what} no bias"))?;
        check_conv2d(&x, &wt, Some(&b), &p, &format!("{what} bias"))?;
    }
    Ok(())
}

pub fn conv2d_widens_half_precision_weights(dev: &Dev) -> Result<()> {
    let p = params((1, 2), (1, 1), (1, 1));
    let x = randn(dev, &[2, 3, 5, 6], 31)?;
    let w = randn(dev, &[4, 3, 3, 3], 32)?;
    let b = randn(dev, &[4], 33)?;
    for dt in [DType::BF16, DType::F16] {
        // The reference reads the rounded half values, so the check stays tight.
        let (wh, bh) = (w.to_dtype(dt)?, b.to_dtype(dt)?);
        check_conv2d(&x, &wh, Some(&bh), &p, &format!("conv2d {dt:?} weights"))?;
    }
    Ok(())
}

pub fn conv2d_reads_noncontiguous_input_and_weights(dev: &Dev) -> Result<()> {
    let p = params((2, 1), (1, 2), (1, 2));
    // x stored as [N, H, W, C] and permuted to [N, C, H, W]; w with its last two dims transposed.
    let x = randn(dev, &[2, 6, 7, 3], 41)?.permute(&[0, 3, 1, 2])?;
    assert!(!x.layout().is_contiguous());
    let w = noncontig(&randn(dev, &[5, 3, 3, 2], 42)?)?;
    let b = randn(dev, &[10], 43)?.narrow(0, 3, 5)?;
    check_conv2d(&x, &w, Some(&b), &p, "conv2d strided x, w")?;
    check_conv2d(
        &noncontig(&x.contiguous()?)?,
        &w,
        None,
        &p,
        "conv2d transposed hw",
    )
}

pub fn conv1d_matches_reference_whisper_like(dev: &Dev) -> Result<()> {
    // (L, K, stride, padding, dilation); (k3, s1, p1) and (k3, s2, p1) are Whisper's two convs.
    let combos = [
        (11, 3, 1, 1, 1),
        (11, 3, 2, 1, 1),
        (12, 3, 2, 1, 1),
        (9, 2, 3, 2, 2),
    ];
    for (seed, &(l, k, s, pd, d)) in combos.iter().enumerate() {
        let seed = 50 + 10 * seed as u64;
        // Features arrive as [N, T, C] and are transposed to [N, C, T]: a strided input.
        let x = randn(dev, &[2, l, 4], seed)?.transpose(1, 2)?;
        let w = randn(dev, &[6, 4, k], seed + 1)?;
        let b = randn(dev, &[6], seed + 2)?;
        let got = x.conv1d(&w, Some(&b), s, pd, d)?;
        // Reference: conv2d_ref on height-1 copies.
        let (want, shape) = conv2d_ref(
            &values(&x)?,
            [2, 4, 1, l],
            &values(&w)?,
            [6, 4, 1, k],
            Some(&values(&b)?),
            &params((1, s), (0, pd), (1, d)),
        );
        assert_eq!(got.shape(), &[2, 6, shape[3]], "conv1d shape");
        assert_tensor_close(
            &got,
            &want,
            1e-4,
            1e-4,
            &format!("conv1d L{l} k{k} s{s} p{pd} d{d}"),
        )?;
    }
    Ok(())
}

pub fn im2col_matches_reference_and_col2im_is_its_adjoint(dev: &Dev) -> Result<()> {
    let cases = [
        ((5, 6), (3, 2), params((1, 1), (1, 0), (1, 1))),
        ((7, 5), (3, 3), params((2, 1), (1, 2), (1, 2))),
        ((6, 6), (2, 2), params((2, 2), (0, 0), (1, 1))),
        ((4, 4), (3, 3), params((3, 3), (2, 2), (2, 1))),
    ];
    for (seed, &((h, w), k, p)) in cases.iter().enumerate() {
        let seed = 70 + 10 * seed as u64;
        let xs = [2, 3, h, w];
        let x = noncontig(&randn(dev, &xs, seed)?)?;
        let cols = x.im2col(k, &p)?;
        let want = im2col_ref(&values(&x)?, xs, k, &p);
        let what = format!("im2col {:?} k{k:?} {p:?}", (h, w));
        assert_tensor_close(&cols, &want, 0.0, 0.0, &what)?;
        // ⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩ for a random y, in f64.
        let y = randn(dev, cols.shape(), seed + 1)?;
        let folded = y.col2im(3, (h, w), k, &p)?;
        assert_eq!(folded.shape(), &xs);
        let lhs: f64 = values(&cols)?
            .iter()
            .zip(values(&y)?)
            .map(|(a, b)| a * b)
            .sum();
        let rhs: f64 = values(&x)?
            .iter()
            .zip(values(&folded)?)
            .map(|(a, b)| a * b)
            .sum();
        assert_close(&[lhs], &[rhs], 1e-4, 1e-5, &format!("{what}: adjointness"));
        // col2im on non-contiguous columns equals col2im on a contiguous copy.
        let yt = noncontig(&y)?;
        assert_eq!(values(&yt.col2im(3, (h, w), k, &p)?)?, values(&folded)?);
    }
    Ok(())
}

pub fn conv_ops_match_reference_on_sizes_that_run_in_parallel(dev: &Dev) -> Result<()> {
    // Large enough (work ≥ the CPU's parallel threshold) that images and planes are split
    // across threads; the result must not depend on it.
    let p = params((1, 1), (1, 1), (1, 1));
    let xs = [4, 4, 16, 16];
    let x = randn(dev, &xs, 91)?;
    let w = randn(dev, &[8, 4, 3, 3], 92)?;
    let b = randn(dev, &[8], 93)?;
    check_conv2d(&x, &w, Some(&b), &p, "conv2d large batch")?;
    check_conv2d(
        &x.narrow(0, 0, 1)?,
        &w,
        Some(&b),
        &p,
        "conv2d single large image",
    )?;
    let cols = x.im2col((3, 3), &p)?;
    assert_tensor_close(
        &cols,
        &im2col_ref(&values(&x)?, xs, (3, 3), &p),
        0.0,
        0.0,
        "im2col large",
    )?;
    let y = randn(dev, cols.shape(), 94)?;
    let lhs: f64 = values(&cols)?
        .iter()
        .zip(values(&y)?)
        .map(|(a, b)| a * b)
        .sum();
    let folded = y.col2im(4, (16, 16), (3, 3), &p)?;
    let rhs: f64 = values(&x)?
        .iter()
        .zip(values(&folded)?)
        .map(|(a, b)| a * b)
        .sum();
    assert_close(&[lhs], &[rhs], 1e-3, 1e-5, "col2im large: adjointness");
    Ok(())
}

// ---- attention reference -------------------------------------------------------------------------

/// An additive mask and the shape it broadcasts from.
struct MaskRef {
    data: Vec<f64>,
    shape: [usize; 4],
}

impl MaskRef {
    fn at(&self, idx: [usize; 4]) -> f64 {
        let i: Vec<usize> = (0..4)
            .map(|d| if self.shape[d] == 1 { 0 } else { idx[d] })
            .collect();
        self.data[ravel(&i, &self.shape)]
    }
}

/// The f64 reference of one attention call: q, k, v values and sizes.
struct AttnRef<'a> {
    q: Vec<f64>,
    k: Vec<f64>,
    v: Vec<f64>,
    qs: [usize; 4],
    ks: [usize; 4],
    mask: Option<&'a MaskRef>,
    p: AttentionParams,
}

impl<'a> AttnRef<'a> {
    fn new(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&'a MaskRef>,
        p: &AttentionParams,
    ) -> Result<Self> {
        Ok(AttnRef {
            q: values(q)?,
            k: values(k)?,
            v: values(v)?,
            qs: shape4(q),
            ks: shape4(k),
            mask,
            p: *p,
        })
    }
    fn qi(&self, bi: usize, h: usize, i: usize, e: usize) -> usize {
        ravel(&[bi, h, i, e], &self.qs)
    }
    fn kj(&self, bi: usize, h: usize, j: usize, e: usize) -> usize {
        let [_, hq, _, _] = self.qs;
        ravel(&[bi, h / (hq / self.ks[1]), j, e], &self.ks)
    }
    /// Naive softmax over the visible keys of query (bi, h, i): `None` if no score is finite.
    fn probs(&self, bi: usize, h: usize, i: usize) -> Option<Vec<f64>> {
        let ([_, _, tq, d], tk) = (self.qs, self.ks[2]);
        let s: Vec<f64> = (0..tk)
            .map(|j| {
                if self.p.causal && j as isize > i as isize + tk as isize - tq as isize {
                    return f64::NEG_INFINITY;
                }
                let dot: f64 = (0..d)
                    .map(|e| self.q[self.qi(bi, h, i, e)] * self.k[self.kj(bi, h, j, e)])
                    .sum();
                self.p.scale as f64 * dot + self.mask.map_or(0.0, |m| m.at([bi, h, i, j]))
            })
            .collect();
        let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        if max == f64::NEG_INFINITY {
            return None;
        }
        let e: Vec<f64> = s.iter().map(|&x| (x - max).exp()).collect();
        let z: f64 = e.iter().sum();
        Some(e.iter().map(|x| x / z).collect())
    }
    /// out[b,h,i] = Σ_j P_ij·v_j (0 for a row that sees no key).
    fn forward(&self) -> Vec<f64> {
        let [b, hq, tq, d] = self.qs;
        let mut out = vec![0.0; b * hq * tq * d];
        for (bi, h, i) in rows(self.qs) {
            let Some(pr) = self.probs(bi, h, i) else {
                continue;
            };
            for e in 0..d {
                out[self.qi(bi, h, i, e)] = pr
                    .iter()
                    .enumerate()
                    .map(|(j, pj)| pj * self.v[self.kj(bi, h, j, e)])
                    .sum();
            }
        }
        out
    }
    /// (dq, dk, dv) for output gradient `g`, from the softmax Jacobian
    /// ∂P_j/∂s_l = P_j(δ_jl − P_l): dS_l = Σ_j dP_j·P_j(δ_jl − P_l) with dP_j = g·v_j,
    /// dq = scale·Σ_l dS_l·k_l, dk_l += scale·dS_l·q, dv_j += P_j·g.
    fn backward(&self, g: &[f64]) -> [Vec<f64>; 3] {
        let ([_, _, _, d], tk) = (self.qs, self.ks[2]);
        let (mut dq, mut dk, mut dv) = (
            vec![0.0; self.q.len()],
            vec![0.0; self.k.len()],
            vec![0.0; self.v.len()],
        );
        for (bi, h, i) in rows(self.qs) {
            let Some(pr) = self.probs(bi, h, i) else {
                continue;
            };
            let dp: Vec<f64> = (0..tk)
                .map(|j| {
                    (0..d)
                        .map(|e| g[self.qi(bi, h, i, e)] * self.v[self.kj(bi, h, j, e)])
                        .sum()
                })
                .collect();
            for l in 0..tk {
                let ds: f64 = (0..tk)
                    .map(|j| dp[j] * pr[j] * (((j == l) as u8 as f64) - pr[l]))
                    .sum();
                for e in 0..d {
                    let (qi, kl) = (self.qi(bi, h, i, e), self.kj(bi, h, l, e));
                    dq[qi] += self.p.scale as f64 * ds * self.k[kl];
                    dk[kl] += self.p.scale as f64 * ds * self.q[qi];
                    dv[kl] += pr[l] * g[qi];
                }
            }
        }
        [dq, dk, dv]
    }
}

/// Every query row (b, h, i) of a q shape.
fn rows([b, h, t, _]: [usize; 4]) -> impl Iterator<Item = (usize, usize, usize)> {
    (0..b).flat_map(move |bi| (0..h).flat_map(move |hh| (0..t).map(move |i| (bi, hh, i))))
}

/// Naive softmax attention in f64 (see [`AttnRef`]).
fn attention_ref(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&MaskRef>,
    p: &AttentionParams,
) -> Result<Vec<f64>> {
    Ok(AttnRef::new(q, k, v, mask, p)?.forward())
}

/// Random q `[B, Hq, Tq, D]`, k and v `[B, Hkv, Tk, D]` for sizes `[B, Hq, Hkv, Tq, Tk, D]`.
fn qkv(
    dev: &Dev,
    [b, hq, hkv, tq, tk, d]: [usize; 6],
    seed: u64,
) -> Result<(Tensor, Tensor, Tensor)> {
    Ok((
        randn(dev, &[b, hq, tq, d], seed)?,
        randn(dev, &[b, hkv, tk, d], seed + 1)?,
        randn(dev, &[b, hkv, tk, d], seed + 2)?,
    ))
}

fn attn_params(d: usize, causal: bool) -> AttentionParams {
    AttentionParams {
        scale: 1.0 / (d as f32).sqrt(),
        causal,
    }
}

/// A mask tensor of `shape` with about one entry in `every` set to −∞ (never a whole row unless
/// `every == 1`), the rest small finite biases; also returned as a reference.
fn mask_tensor(dev: &Dev, shape: [usize; 4], every: usize, seed: u64) -> Result<(Tensor, MaskRef)> {
    let mut data: Vec<f64> = randn_vec(shape.iter().product(), seed)
        .iter()
        .map(|&x| x as f64 * 0.5)
        .collect();
    for (i, m) in data.iter_mut().enumerate() {
        if every > 0 && (i * 7 + 3) % every == 0 {
            *m = f64::NEG_INFINITY;
        }
    }
    let t = Tensor::from_vec(data.iter().map(|&x| x as f32).collect(), &shape, dev)?;
    Ok((t, MaskRef { data, shape }))
}

fn check_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<(&Tensor, &MaskRef)>,
    p: &AttentionParams,
    what: &str,
) -> Result<()> {
    let got = q.attention(k, v, mask.map(|m| m.0), p)?;
    assert_eq!(got.shape(), q.shape(), "{what}: shape");
    let want = attention_ref(q, k, v, mask.map(|m| m.1), p)?;
    let vals = values(&got)?;
    assert!(
        vals.iter().all(|x| x.is_finite()),
        "{what}: non-finite output"
    );
    assert_close(&vals, &want, 2e-5, 1e-4, what);
    Ok(())
}

pub fn attention_noncausal_matches_reference(dev: &Dev) -> Result<()> {
    let (q, k, v) = qkv(dev, [2, 2, 2, 5, 7, 8], 101)?;
    check_attention(&q, &k, &v, None, &attn_params(8, false), "non-causal")?;
    // An odd head dim exercises the dot product's remainder lanes; scale ≠ 1/√D is honoured.
    let (q, k, v) = qkv(dev, [1, 3, 3, 4, 6, 11], 104)?;
    let p = AttentionParams {
        scale: 0.7,
        causal: false,
    };
    check_attention(&q, &k, &v, None, &p, "non-causal D=11 scale 0.7")
}

pub fn attention_causal_square_matches_reference(dev: &Dev) -> Result<()> {
    let (q, k, v) = qkv(dev, [2, 3, 3, 6, 6, 8], 111)?;
    check_attention(&q, &k, &v, None, &attn_params(8, true), "causal Tq=Tk")?;
    // Tq > query block size (16) so several query blocks run per head.
    let (q, k, v) = qkv(dev, [1, 2, 2, 37, 37, 4], 114)?;
    check_attention(&q, &k, &v, None, &attn_params(4, true), "causal T=37")
}

pub fn attention_causal_decode_aligns_queries_to_the_last_keys(dev: &Dev) -> Result<()> {
    for (tq, tk) in [(1, 9), (3, 9), (2, 2)] {
        let (q, k, v) = qkv(dev, [2, 2, 2, tq, tk, 8], 120 + tq as u64)?;
        check_attention(
            &q,
            &k,
            &v,
            None,
            &attn_params(8, true),
            &format!("causal decode Tq={tq} Tk={tk}"),
        )?;
    }
    // A single decoded query with causal=true sees every key, like non-causal.
    let (q, k, v) = qkv(dev, [1, 2, 2, 1, 7, 8], 130)?;
    let a = q.attention(&k, &v, None, &attn_params(8, true))?;
    let b = q.attention(&k, &v, None, &attn_params(8, false))?;
    assert_close(
        &values(&a)?,
        &values(&b)?,
        1e-6,
        1e-6,
        "decode row sees all keys",
    );
    Ok(())
}

pub fn attention_gqa_query_heads_share_kv_heads(dev: &Dev) -> Result<()> {
    for (hkv, causal) in [(2, false), (2, true), (1, false), (1, true)] {
        let (q, k, v) = qkv(dev, [2, 4, hkv, 5, 7, 8], 140 + hkv as u64)?;
        check_attention(
            &q,
            &k,
            &v,
            None,
            &attn_params(8, causal),
            &format!("GQA Hq=4 Hkv={hkv} causal={causal}"),
        )?;
    }
    Ok(())
}

pub fn attention_additive_mask_broadcasts_over_batch_heads_queries(dev: &Dev) -> Result<()> {
    let (b, hq, tq, tk, d) = (2, 4, 5, 7, 8);
    let (q, k, v) = qkv(dev, [b, hq, 2, tq, tk, d], 150)?;
    for (shape, causal) in [
        ([1, 1, tq, tk], false),
        ([b, 1, 1, tk], false),
        ([b, 1, 1, tk], true),
        ([b, hq, tq, tk], true),
    ] {
        let (m, mr) = mask_tensor(dev, shape, 5, 151)?;
        let what = format!("mask {shape:?} causal={causal}");
        check_attention(&q, &k, &v, Some((&m, &mr)), &attn_params(d, causal), &what)?;
    }
    // A lower-rank mask [Tq, Tk] broadcasts too.
    let (m, mr) = mask_tensor(dev, [1, 1, tq, tk], 4, 152)?;
    let got = q.attention(&k, &v, Some(&m.reshape(&[tq, tk])?), &attn_params(d, false))?;
    assert_tensor_close(
        &got,
        &attention_ref(&q, &k, &v, Some(&mr), &attn_params(d, false))?,
        2e-5,
        1e-4,
        "mask [Tq, Tk]",
    )
}

pub fn attention_fully_masked_row_gives_zeros(dev: &Dev) -> Result<()> {
    let (b, h, tq, tk, d) = (1, 2, 3, 5, 4);
    let (q, k, v) = qkv(dev, [b, h, h, tq, tk, d], 160)?;
    // Row 1 of every head sees only −∞.
    let mut data = randn_vec(tq * tk, 161);
    data[tk..2 * tk].fill(f32::NEG_INFINITY);
    let m = Tensor::from_vec(data, &[1, 1, tq, tk], dev)?;
    let out = q.attention(&k, &v, Some(&m), &attn_params(d, false))?;
    let vals = values(&out)?;
    for hh in 0..h {
        for e in 0..d {
            let x = vals[ravel(&[0, hh, 1, e], &[b, h, tq, d])];
            assert_eq!(x, 0.0, "fully masked row must be exactly 0, got {x}");
        }
    }
    assert!(vals.iter().all(|x| x.is_finite()));
    // Causal with more queries than keys: the first Tq − Tk rows see no key at all.
    let (q, k, v) = qkv(dev, [1, 1, 1, 4, 2, 4], 162)?;
    let out = values(&q.attention(&k, &v, None, &attn_params(4, true))?)?;
    assert!(out[..2 * 4].iter().all(|&x| x == 0.0), "{out:?}");
    assert_close(
        &out,
        &attention_ref(&q, &k, &v, None, &attn_params(4, true))?,
        2e-5,
        1e-4,
        "causal Tq>Tk",
    );
    // Gradients through a fully masked row are zero, not NaN.
    let (qv, kv, vv) = (q.variable(), k.variable(), v.variable());
    let g = qv
        .attention(&kv, &vv, None, &attn_params(4, true))?
        .sum_all()?
        .backward()?;
    for t in [&qv, &kv, &vv] {
        let gv = values(g.get(t).expect("gradient"))?;
        assert!(gv.iter().all(|x| x.is_finite()), "{gv:?}");
    }
    assert!(values(g.get(&qv).expect("dq"))?[..8]
        .iter()
        .all(|&x| x == 0.0));
    Ok(())
}

pub fn attention_reads_noncontiguous_qkv(dev: &Dev) -> Result<()> {
    // Projections come out as [B, T, H, D]; attention reads them transposed to [B, H, T, D].
    let (b, tq, tk, hq, hkv, d) = (2, 5, 6, 4, 2, 8);
    let q = randn(dev, &[b, tq, hq, d], 170)?.transpose(1, 2)?;
    let k = randn(dev, &[b, tk, hkv, d], 171)?.transpose(1, 2)?;
    let v = randn(dev, &[b, tk, hkv, d], 172)?.transpose(1, 2)?;
    assert!(!q.layout().is_contiguous() && !k.layout().is_contiguous());
    check_attention(
        &q,
        &k,
        &v,
        None,
        &attn_params(d, true),
        "strided q/k/v causal",
    )?;
    let (m, mr) = mask_tensor(dev, [b, 1, 1, tk], 4, 173)?;
    check_attention(
        &q,
        &k,
        &v,
        Some((&m, &mr)),
        &attn_params(d, false),
        "strided q/k/v masked",
    )
}

pub fn attention_long_key_sequence_crosses_tiles(dev: &Dev) -> Result<()> {
    let (q, k, v) = qkv(dev, [1, 2, 1, 3, 300, 16], 180)?;
    // Scale 1 gives peaked scores, so a late tile often raises the running max.
    for causal in [false, true] {
        let p = AttentionParams { scale: 1.0, causal };
        check_attention(&q, &k, &v, None, &p, &format!("Tk=300 causal={causal}"))?;
    }
    let (m, mr) = mask_tensor(dev, [1, 1, 3, 300], 3, 181)?;
    check_attention(
        &q,
        &k,
        &v,
        Some((&m, &mr)),
        &attn_params(16, true),
        "Tk=300 masked",
    )?;
    // Long queries and keys: several query blocks × key tiles, causal square.
    let (q, k, v) = qkv(dev, [1, 1, 1, 70, 150, 8], 182)?;
    check_attention(
        &q,
        &k,
        &v,
        None,
        &attn_params(8, true),
        "Tq=70 Tk=150 causal",
    )
}

pub fn attention_head_dims_and_block_shapes_of_the_tiled_kernel(dev: &Dev) -> Result<()> {
    // D = 128 (two column chunks), D = 80 and 20 (masked column tails), D = 1; Tk over several
    // 64-key tiles and not a multiple of one; G·Tq rows not a multiple of the 48-row block, so
    // blocks straddle query heads of a group (causal limits differ inside one block); fewer
    // than 8 rows per kv head (decoding) take the unpacked path, with 7 rows and D = 20 too.
    for (hq, hkv, tq, tk, d, causal) in [
        (2, 1, 5, 200, 128, false),
        (4, 2, 30, 130, 80, true),
        (3, 1, 17, 17, 20, true),
        (2, 2, 50, 70, 1, true),
        (8, 2, 1, 300, 64, true),
        (4, 1, 2, 257, 16, false),
        (7, 1, 1, 150, 20, true),
    ] {
        let (q, k, v) = qkv(dev, [2, hq, hkv, tq, tk, d], 300 + d as u64)?;
        let what = format!("Hq={hq} Hkv={hkv} Tq={tq} Tk={tk} D={d} causal={causal}");
        check_attention(&q, &k, &v, None, &attn_params(d, causal), &what)?;
    }
    // A per-query mask over a long key axis with the GQA row grouping.
    let (q, k, v) = qkv(dev, [1, 4, 2, 13, 150, 24], 310)?;
    let (m, mr) = mask_tensor(dev, [1, 4, 13, 150], 3, 311)?;
    check_attention(
        &q,
        &k,
        &v,
        Some((&m, &mr)),
        &attn_params(24, true),
        "mask [1, 4, 13, 150] GQA causal",
    )?;
    // Large scores: the running max rises tile after tile (keys scaled up with their index).
    let (q, k, v) = qkv(dev, [1, 1, 1, 4, 260, 16], 312)?;
    let kv = values(&k)?;
    let grow: Vec<f32> = kv
        .iter()
        .enumerate()
        .map(|(i, &x)| (x * (1.0 + (i / 16) as f64 / 40.0)) as f32)
        .collect();
    let k = Tensor::from_vec(grow, k.shape(), dev)?;
    let p = AttentionParams {
        scale: 2.0,
        causal: false,
    };
    check_attention(&q, &k, &v, None, &p, "rising running max")
}

pub fn attention_with_kv_cache_decodes_like_full_causal_attention(dev: &Dev) -> Result<()> {
    let (b, hq, hkv, t, d) = (2, 4, 2, 9, 16);
    // [B, T, H, D] projections seen as [B, H, T, D]: the cache copies from strided views.
    let q = randn(dev, &[b, t, hq, d], 320)?.transpose(1, 2)?;
    let k = randn(dev, &[b, t, hkv, d], 321)?.transpose(1, 2)?;
    let v = randn(dev, &[b, t, hkv, d], 322)?.transpose(1, 2)?;
    let p = attn_params(d, true);
    let full = values(&q.attention(&k, &v, None, &p)?)?;
    let mut cache = KvCache::new(b, hkv, 10, d, dev)?;
    assert!(cache.is_empty() && cache.capacity() == 10);
    // Prefill 4 positions, then decode one token at a time.
    let mut steps = vec![(0, 4)];
    steps.extend((4..t).map(|i| (i, 1)));
    for (start, n) in steps {
        let (kc, vc) = cache.append(&k.narrow(2, start, n)?, &v.narrow(2, start, n)?)?;
        assert_eq!(cache.len(), start + n);
        assert_eq!(kc.shape(), &[b, hkv, start + n, d]);
        let out = values(&q.narrow(2, start, n)?.attention(&kc, &vc, None, &p)?)?;
        let want: Vec<f64> = (0..b * hq)
            .flat_map(|bh| {
                let base = (bh * t + start) * d;
                full[base..base + n * d].to_vec()
            })
            .collect();
        assert_close(&out, &want, 1e-5, 1e-5, &format!("decode step at {start}"));
    }
    // Full: an append past the capacity is an error and changes nothing.
    let more = k.narrow(2, 0, 2)?;
    let err = cache.append(&more, &v.narrow(2, 0, 2)?);
    assert!(
        matches!(&err, Err(e) if e.to_string().contains("kv_cache_append")),
        "{err:?}"
    );
    assert_eq!(cache.len(), t);
    // Shape mismatches are errors too.
    assert!(cache
        .append(&k.narrow(2, 0, 1)?, &v.narrow(2, 0, 2)?)
        .is_err());
    assert!(cache
        .append(
            &randn(dev, &[b, hkv, 1, 8], 1)?,
            &randn(dev, &[b, hkv, 1, 8], 2)?
        )
        .is_err());
    // Reset starts over in the same buffers.
    cache.reset();
    assert!(cache.is_empty());
    let (kc, _) = cache.append(&k.narrow(2, 3, 1)?, &v.narrow(2, 3, 1)?)?;
    assert_close(
        &values(&kc)?,
        &values(&k.narrow(2, 3, 1)?)?,
        0.0,
        0.0,
        "after reset",
    );
    Ok(())
}

// ---- gradients --------------------------------------------------------------------------------------

pub fn grad_conv2d_input_weight_bias(dev: &Dev) -> Result<()> {
    let p = params((2, 1), (1, 1), (1, 2));
    let x = randn(dev, &[2, 2, 5, 6], 201)?;
    let w = randn(dev, &[3, 2, 3, 2], 202)?;
    let b = randn(dev, &[3], 203)?;
    grad_check(
        dev,
        &[x.clone(), w.clone(), b],
        |t| noncontig(&t[0])?.conv2d(&t[1], Some(&t[2]), &p),
        GradTol::default(),
        "conv2d (x, w, b)",
    )?;
    grad_check(
        dev,
        &[x.clone(), w.clone()],
        |t| t[0].conv2d(&t[1], None, &p),
        GradTol::default(),
        "conv2d no bias",
    )?;
    // Only the weight trainable (frozen input), 1×1 kernel fast path.
    let w1 = randn(dev, &[3, 2, 1, 1], 204)?;
    let p1 = params((1, 1), (0, 0), (1, 1));
    grad_check(
        dev,
        &[w1],
        |t| x.conv2d(&t[0], None, &p1),
        GradTol::default(),
        "conv2d 1x1 weight only",
    )
}

pub fn grad_conv1d(dev: &Dev) -> Result<()> {
    let x = randn(dev, &[2, 7, 3], 211)?;
    let w = randn(dev, &[4, 3, 3], 212)?;
    let b = randn(dev, &[4], 213)?;
    grad_check(
        dev,
        &[x, w, b],
        |t| t[0].transpose(1, 2)?.conv1d(&t[1], Some(&t[2]), 2, 1, 1),
        GradTol::default(),
        "conv1d k3 s2 p1 strided x",
    )
}

pub fn grad_im2col_and_col2im(dev: &Dev) -> Result<()> {
    let p = params((2, 1), (1, 2), (1, 2));
    let x = randn(dev, &[1, 2, 5, 4], 221)?;
    grad_check(
        dev,
        std::slice::from_ref(&x),
        |t| noncontig(&t[0])?.im2col((3, 2), &p),
        GradTol::default(),
        "im2col",
    )?;
    let cols = x.im2col((3, 2), &p)?;
    let y = randn(dev, cols.shape(), 222)?;
    grad_check(
        dev,
        &[y],
        |t| noncontig(&t[0])?.col2im(2, (5, 4), (3, 2), &p),
        GradTol::default(),
        "col2im",
    )
}

pub fn grad_attention_causal_gqa_masked(dev: &Dev) -> Result<()> {
    let tol = GradTol::default();
    // Causal, Tq < Tk (decode-like), q/k/v strided from [B, T, H, D].
    let q = randn(dev, &[2, 3, 2, 4], 231)?;
    let k = randn(dev, &[2, 5, 2, 4], 232)?;
    let v = randn(dev, &[2, 5, 2, 4], 233)?;
    let p = attn_params(4, true);
    grad_check(
        dev,
        &[q, k, v],
        |t| {
            t[0].transpose(1, 2)?.attention(
                &t[1].transpose(1, 2)?,
                &t[2].transpose(1, 2)?,
                None,
                &p,
            )
        },
        tol,
        "attention causal strided",
    )?;
    // GQA: Hq = 4, Hkv = 2, dk/dv sum over each group.
    let (q, k, v) = qkv(dev, [1, 4, 2, 3, 4, 4], 240)?;
    grad_check(
        dev,
        &[q, k, v],
        |t| t[0].attention(&t[1], &t[2], None, &attn_params(4, false)),
        tol,
        "attention GQA",
    )?;
    let (q, k, v) = qkv(dev, [1, 4, 1, 4, 4, 4], 245)?;
    grad_check(
        dev,
        &[q, k, v],
        |t| t[0].attention(&t[1], &t[2], None, &attn_params(4, true)),
        tol,
        "attention MQA causal",
    )?;
    // Broadcast additive mask with −∞ entries and one fully masked row.
    let (q, k, v) = qkv(dev, [2, 2, 2, 3, 5, 4], 250)?;
    let mut data = randn_vec(2 * 5, 251);
    data[2] = f32::NEG_INFINITY;
    data[5..10].fill(f32::NEG_INFINITY); // batch 1 sees no key at all
    let m = Tensor::from_vec(data, &[2, 1, 1, 5], dev)?;
    grad_check(
        dev,
        &[q, k, v],
        |t| t[0].attention(&t[1], &t[2], Some(&m), &attn_params(4, false)),
        tol,
        "attention masked",
    )
}

pub fn attention_backward_matches_reference_on_sizes_that_run_in_parallel(dev: &Dev) -> Result<()> {
    // B·Hkv = 4 independent backward units and Tq·Tk·D large enough to split across threads;
    // GQA, causal decode alignment and a broadcast mask with −∞ entries all at once.
    let (b, hq, hkv, tq, tk, d) = (2, 4, 2, 20, 40, 16);
    let (q, k, v) = qkv(dev, [b, hq, hkv, tq, tk, d], 290)?;
    let (m, mr) = mask_tensor(dev, [b, 1, tq, tk], 6, 291)?;
    let p = attn_params(d, true);
    let (qv, kv, vv) = (q.variable(), k.variable(), v.variable());
    let out = qv.attention(&kv, &vv, Some(&m), &p)?;
    let r = AttnRef::new(&q, &k, &v, Some(&mr), &p)?;
    assert_tensor_close(&out, &r.forward(), 2e-5, 1e-4, "large forward")?;
    let g = randn(dev, out.shape(), 292)?;
    let grads = out.mul(&g)?.sum_all()?.backward()?;
    let want = r.backward(&values(&g)?);
    for (t, (w, name)) in [&qv, &kv, &vv]
        .into_iter()
        .zip(want.iter().zip(["dq", "dk", "dv"]))
    {
        let got = grads.get(t).expect("gradient");
        assert_eq!(got.shape(), t.shape());
        assert_tensor_close(got, w, 1e-4, 1e-4, name)?;
    }
    Ok(())
}

pub fn attention_backward_matches_reference_across_row_blocks_and_key_tiles(
    dev: &Dev,
) -> Result<()> {
    // G·Tq = 60 rows per kv head (two 48-row blocks, the second straddling two query heads),
    // Tk = 140 (three 64-key tiles, the last partial), D = 24 (a masked column tail), causal
    // with a mask; and the same without causal masking and mask, D = 64.
    for (tq, tk, d, causal, masked) in [(30, 140, 24, true, true), (25, 70, 64, false, false)] {
        let (q, k, v) = qkv(dev, [1, 4, 2, tq, tk, d], 295)?;
        let (m, mr) = mask_tensor(dev, [1, 1, tq, tk], 7, 296)?;
        let p = attn_params(d, causal);
        let (qv, kv, vv) = (q.variable(), k.variable(), v.variable());
        let out = qv.attention(&kv, &vv, masked.then_some(&m), &p)?;
        let r = AttnRef::new(&q, &k, &v, masked.then_some(&mr), &p)?;
        let g = randn(dev, out.shape(), 297)?;
        let grads = out.mul(&g)?.sum_all()?.backward()?;
        let want = r.backward(&values(&g)?);
        for (t, (w, name)) in [&qv, &kv, &vv]
            .into_iter()
            .zip(want.iter().zip(["dq", "dk", "dv"]))
        {
            let got = grads.get(t).expect("gradient");
            let what = format!("{name} Tq={tq} Tk={tk} D={d} causal={causal}");
            assert_tensor_close(got, w, 1e-4, 1e-4, &what)?;
        }
    }
    Ok(())
}

// ---- errors -------------------------------------------------------------------------------------------

pub fn attention_mask_tracking_gradients_is_refused(dev: &Dev) -> Result<()> {
    let (q, k, v) = qkv(dev, [1, 2, 2, 3, 4, 4], 260)?;
    let m = randn(dev, &[1, 1, 3, 4], 261)?.variable();
    assert!(matches!(
        q.attention(&k, &v, Some(&m), &attn_params(4, false)),
        Err(Error::NoBackward { op: "attention" })
    ));
    // Detached, or without recording, the same mask is fine.
    q.attention(&k, &v, Some(&m.detach()), &attn_params(4, false))?;
    no_grad(|| q.attention(&k, &v, Some(&m), &attn_params(4, false)))?;
    Ok(())
}

fn expect_err(r: Result<Tensor>, needles: &[&str]) {
    let msg = match r {
        Ok(t) => panic!("expected an error, got {t:?}"),
        Err(e) => e.to_string(),
    };
    for n in needles {
        assert!(msg.contains(n), "error {msg:?} should mention {n:?}");
    }
}

pub fn conv_errors_name_the_op_and_shapes(dev: &Dev) -> Result<()> {
    let p = params((1, 1), (0, 0), (1, 1));
    let x = randn(dev, &[1, 3, 4, 4], 1)?;
    let w = randn(dev, &[2, 5, 3, 3], 2)?;
    expect_err(
        x.conv2d(&w, None, &p),
        &["conv2d", "[1, 3, 4, 4]", "[2, 5, 3, 3]"],
    );
    let big = randn(dev, &[2, 3, 5, 3], 3)?;
    expect_err(
        x.conv2d(&big, None, &p),
        &["conv2d", "[1, 3, 4, 4]", "[2, 3, 5, 3]"],
    );
    // Padding makes the same kernel fit.
    x.conv2d(&big, None, &params((1, 1), (1, 0), (1, 1)))?;
    // Dilation 2 spreads a 3-tap kernel over 5 pixels.
    let w3 = randn(dev, &[2, 3, 3, 3], 4)?;
    expect_err(
        x.conv2d(&w3, None, &params((1, 1), (0, 0), (2, 1))),
        &["conv2d"],
    );
    expect_err(
        x.conv2d(&w3, None, &params((0, 1), (0, 0), (1, 1))),
        &["conv2d", "stride"],
    );
    expect_err(
        x.conv2d(&w3, Some(&randn(dev, &[3], 5)?), &p),
        &["conv2d", "[3]"],
    );
    expect_err(
        x.reshape(&[3, 4, 4])?.conv2d(&w3, None, &p),
        &["conv2d", "rank 4"],
    );
    let ids = Tensor::zeros(&[1, 3, 4, 4], DType::U32, dev)?;
    expect_err(ids.conv2d(&w3, None, &p), &["conv2d"]);
    let x1 = randn(dev, &[2, 3, 6], 6)?;
    expect_err(
        x1.conv1d(&randn(dev, &[4, 2, 3], 7)?, None, 1, 0, 1),
        &["conv1d", "[2, 3, 6]", "[4, 2, 3]"],
    );
    expect_err(
        x1.conv1d(&randn(dev, &[4, 3, 9], 8)?, None, 1, 1, 1),
        &["conv1d", "[2, 3, 6]"],
    );
    expect_err(
        x1.conv1d(&randn(dev, &[4, 3, 3, 1], 9)?, None, 1, 1, 1),
        &["conv1d", "rank 3"],
    );
    expect_err(x.im2col((5, 1), &p), &["im2col"]);
    expect_err(
        randn(dev, &[1, 10, 4], 10)?.col2im(3, (4, 4), (3, 3), &p),
        &["col2im", "[1, 10, 4]"],
    );
    Ok(())
}

pub fn attention_errors_name_the_op_and_shapes(dev: &Dev) -> Result<()> {
    let p = attn_params(4, false);
    let (q, _, _) = qkv(dev, [1, 3, 3, 2, 5, 4], 270)?;
    let (_, k2, v2) = qkv(dev, [1, 2, 2, 2, 5, 4], 271)?;
    expect_err(
        q.attention(&k2, &v2, None, &p),
        &["attention", "[1, 3, 2, 4]", "[1, 2, 5, 4]"],
    );
    let (q, k, v) = qkv(dev, [1, 2, 2, 2, 5, 4], 272)?;
    expect_err(
        q.attention(&k, &randn(dev, &[1, 2, 6, 4], 1)?, None, &p),
        &["attention", "[1, 2, 6, 4]"],
    );
    expect_err(
        q.attention(&randn(dev, &[1, 2, 5, 3], 2)?, &v, None, &p),
        &["attention", "[1, 2, 5, 3]"],
    );
    expect_err(
        q.attention(
            &randn(dev, &[2, 2, 5, 4], 3)?,
            &randn(dev, &[2, 2, 5, 4], 4)?,
            None,
            &p,
        ),
        &["attention", "[2, 2, 5, 4]"],
    );
    expect_err(
        q.attention(&k, &v, Some(&randn(dev, &[1, 1, 2, 4], 5)?), &p),
        &["attention", "[1, 1, 2, 4]"],
    );
    expect_err(
        q.reshape(&[2, 2, 4])?.attention(&k, &v, None, &p),
        &["attention", "rank 4"],
    );
    let half = k.to_dtype(DType::F16)?;
    expect_err(q.attention(&half, &v, None, &p), &["attention", "F16"]);
    Ok(())
}
