//! Conformance cases: matmul (strided, transposed, broadcast, half-precision rhs, edge sizes),
//! linear, lora_linear, and the indexing ops (index_select/embedding, index_add, gather,
//! scatter_add, cat), each against a plain f64 reference loop, with gradient checks and the
//! error cases (bad ids, bad shapes).

use super::*;
use osum::engine::{DType, Error};

macro_rules! linalg_index_cases {
    ($dev:path) => {
        conformance_cases!(
            $dev,
            linalg_index,
            [
                matmul_matches_reference_for_transposed_and_strided_operands,
                matmul_broadcasts_batch_dims_like_numpy,
                matmul_widens_half_precision_rhs,
                matmul_edge_sizes_m1_n1_k0_and_empty_batch,
                gemm_relative_error_within_1e5_on_every_kernel_edge,
                gemv_relative_error_within_1e5_for_half_and_f32_weights,
                linear_matches_reference_with_and_without_bias,
                linear_gelu_equals_linear_then_gelu_on_every_gemm_path,
                lora_linear_matches_reference,
                index_select_matches_reference_on_every_dim_and_dtype,
                embedding_looks_up_rows_for_ids_of_any_shape,
                index_add_accumulates_repeated_ids,
                gather_matches_reference_with_smaller_index,
                scatter_add_accumulates_repeated_targets,
                concat_joins_any_dtype_along_any_dim,
                grad_matmul_transposed_and_broadcast_operands,
                grad_linear,
                grad_lora_linear_with_frozen_and_trainable_weight,
                grad_index_select_and_embedding,
                grad_index_add,
                grad_gather_and_scatter_add,
                grad_cat_with_strided_parts,
                ids_out_of_range_or_negative_are_errors_naming_the_op,
                shape_errors_name_the_op_and_both_shapes,
            ]
        );
    };
}

// ---- references --------------------------------------------------------------------------------

/// NumPy-broadcast batched matmul on row-major f64 values: returns (shape, values).
fn ref_matmul(a: &[f64], ash: &[usize], b: &[f64], bsh: &[usize]) -> (Vec<usize>, Vec<f64>) {
    let (ra, rb) = (ash.len(), bsh.len());
    let (m, k, n) = (ash[ra - 2], ash[ra - 1], bsh[rb - 1]);
    assert_eq!(k, bsh[rb - 2]);
    let rank = (ra - 2).max(rb - 2);
    let pad = |s: &[usize]| {
        let mut v = vec![1; rank - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (pa, pb) = (pad(&ash[..ra - 2]), pad(&bsh[..rb - 2]));
    let batch: Vec<usize> = pa.iter().zip(&pb).map(|(&x, &y)| x.max(y)).collect();
    let nb: usize = batch.iter().product();
    let pick = |idx: &[usize], dims: &[usize]| -> usize {
        let i: Vec<usize> = idx
            .iter()
            .zip(dims)
            .map(|(&i, &d)| if d == 1 { 0 } else { i })
            .collect();
        ravel(&i, dims)
    };
    let mut out = vec![0.0; nb * m * n];
    for bi in 0..nb {
        let idx = unravel(bi, &batch);
        let (oa, ob) = (pick(&idx, &pa) * m * k, pick(&idx, &pb) * k * n);
        for i in 0..m {
            for j in 0..n {
                let s: f64 = (0..k).map(|p| a[oa + i * k + p] * b[ob + p * n + j]).sum();
                out[(bi * m + i) * n + j] = s;
            }
        }
    }
    let mut shape = batch;
    shape.extend_from_slice(&[m, n]);
    (shape, out)
}

/// Checks `lhs.matmul(rhs)` against [`ref_matmul`] of the logical values.
fn check_matmul(lhs: &Tensor, rhs: &Tensor, tol: f64, what: &str) -> Result<()> {
    let y = lhs.matmul(rhs)?;
    let (shape, want) = ref_matmul(&values(lhs)?, lhs.shape(), &values(rhs)?, rhs.shape());
    assert_eq!(y.shape(), shape.as_slice(), "{what}: shape");
    assert_tensor_close(&y, &want, tol, tol, what)
}

/// `[rows, cols]` values seen through a layout whose row stride exceeds `cols` (a narrowed
/// view: dense rows that are not adjacent).
fn narrowed(dev: &Dev, rows: usize, cols: usize, seed: u64) -> Result<Tensor> {
    randn(dev, &[rows, cols + 3], seed)?.narrow(1, 2, cols)
}

/// x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ in f64, row by row over x flattened to `[rows, in]`.
fn ref_lora(
    x: &[f64],
    w: &[f64],
    b: Option<&[f64]>,
    a: &[f64],
    bm: &[f64],
    s: f64,
    (inp, out, r): (usize, usize, usize),
) -> Vec<f64> {
    let rows = x.len() / inp;
    let mut y = vec![0.0; rows * out];
    for i in 0..rows {
        let xi = &x[i * inp..(i + 1) * inp];
        let h: Vec<f64> = (0..r)
            .map(|q| (0..inp).map(|p| xi[p] * a[q * inp + p]).sum())
            .collect();
        for o in 0..out {
            let base: f64 = (0..inp).map(|p| xi[p] * w[o * inp + p]).sum();
            let low: f64 = (0..r).map(|q| h[q] * bm[o * r + q]).sum();
            y[i * out + o] = base + b.map_or(0.0, |b| b[o]) + s * low;
        }
    }
    y
}

/// Gather along `dim` on row-major f64 values: `out[p] = src[p with dim := index[p]]`.
fn ref_gather(src: &[f64], ssh: &[usize], index: &[i64], ish: &[usize], dim: usize) -> Vec<f64> {
    (0..index.len())
        .map(|i| {
            let mut p = unravel(i, ish);
            p[dim] = index[i] as usize;
            src[ravel(&p, ssh)]
        })
        .collect()
}

/// Ids as i64 host values.
fn id_vec(t: &Tensor) -> Result<Vec<i64>> {
    Ok(values(t)?.into_iter().map(|v| v as i64).collect())
}

// ---- matmul ------------------------------------------------------------------------------------

pub fn matmul_matches_reference_for_transposed_and_strided_operands(dev: &Dev) -> Result<()> {
    // (3,100,300): few rows, many columns → the column-parallel split;
    // (67,129,95): enough work and rows for the row-parallel split, K and N cross the blocks;
    // (6,300,230): a transposed rhs large enough to be packed in parallel bands.
    let sizes = [
        (5, 7, 3),
        (1, 9, 6),
        (6, 8, 1),
        (4, 20, 9),
        (3, 100, 300),
        (67, 129, 95),
        (6, 300, 230),
    ];
    for (i, &(m, k, n)) in sizes.iter().enumerate() {
        let seed = 10 * i as u64;
        let a = randn(dev, &[m, k], seed)?;
        let b = randn(dev, &[k, n], seed + 1)?;
        // Column-major ("transposed") storage of each operand: the values stay the same.
        let at = randn(dev, &[k, m], seed + 2)?.t()?;
        let bt = randn(dev, &[n, k], seed + 3)?.t()?;
        let an = narrowed(dev, m, k, seed + 4)?;
        let bn = narrowed(dev, k, n, seed + 5)?;
        let tol = 1e-4 * (k as f64).sqrt().max(1.0);
        let tag = |s: &str| format!("{m}x{k}x{n} {s}");
        check_matmul(&a, &b, tol, &tag("contiguous"))?;
        check_matmul(&at, &b, tol, &tag("transposed lhs"))?;
        check_matmul(&a, &bt, tol, &tag("transposed rhs"))?;
        check_matmul(&at, &bt, tol, &tag("both transposed"))?;
        check_matmul(&an, &bn, tol, &tag("narrowed rows"))?;
    }
    Ok(())
}

pub fn matmul_broadcasts_batch_dims_like_numpy(dev: &Dev) -> Result<()> {
    let tol = 1e-4;
    // [2,3,M,K] × [K,N]: one shared rhs block, folded into one [2·3·M, K] product, with a
    // contiguous, a transposed-per-batch and a transposed-rhs variant.
    let x = randn(dev, &[2, 3, 5, 6], 1)?;
    let w = randn(dev, &[6, 4], 2)?;
    check_matmul(&x, &w, tol, "[2,3,M,K]x[K,N]")?;
    check_matmul(&noncontig(&x)?, &w, tol, "strided lhs x [K,N]")?;
    let wt = randn(dev, &[4, 6], 3)?.t()?;
    check_matmul(&x, &wt, tol, "[2,3,M,K]x Wᵀ")?;
    // x[B,T,in]·Wᵀ with B·T crossing the parallel threshold.
    let x = randn(dev, &[3, 30, 40], 4)?;
    let wt = randn(dev, &[50, 40], 5)?.t()?;
    check_matmul(&x, &wt, tol, "x[B,T,in]·Wᵀ large")?;
    // [B,M,K] × [B,K,N]: a distinct rhs per batch entry, strided or not.
    let a = randn(dev, &[4, 3, 5], 6)?;
    let b = randn(dev, &[4, 5, 2], 7)?;
    check_matmul(&a, &b, tol, "[B,M,K]x[B,K,N]")?;
    check_matmul(&noncontig(&a)?, &noncontig(&b)?, tol, "strided batched")?;
    // Many small products (parallel over the batch).
    let a = randn(dev, &[8, 33, 40], 8)?;
    let b = noncontig(&randn(dev, &[8, 40, 30], 9)?)?;
    check_matmul(&a, &b, tol, "many batched products")?;
    // Partial broadcast: [2,1,M,K] × [3,K,N] → [2,3,M,N] (each rhs block reused twice).
    let a = randn(dev, &[2, 1, 4, 5], 10)?;
    let b = randn(dev, &[3, 5, 6], 11)?;
    check_matmul(&a, &b, tol, "[2,1,M,K]x[3,K,N]")?;
    // Broadcast lhs: [M,K] × [B,K,N].
    let a = randn(dev, &[4, 5], 12)?;
    check_matmul(&a, &b, tol, "[M,K]x[B,K,N]")?;
    Ok(())
}

pub fn matmul_widens_half_precision_rhs(dev: &Dev) -> Result<()> {
    for dt in [DType::F16, DType::BF16] {
        // The reference reads the half values themselves (exactly representable in f64), so
        // only f32 accumulation error remains.
        let tol = 1e-4;
        let a = randn(dev, &[6, 10], 1)?;
        let w = randn(dev, &[10, 7], 2)?.to_dtype(dt)?;
        check_matmul(&a, &w, tol, "half rhs")?;
        let wt = randn(dev, &[7, 10], 3)?.to_dtype(dt)?.t()?;
        check_matmul(&a, &wt, tol, "half transposed rhs")?;
        // Few rows (dot products against the weight rows) and a shared rhs over a batch.
        let x1 = randn(dev, &[2, 10], 4)?;
        check_matmul(&x1, &wt, tol, "half transposed rhs, 2 rows")?;
        let big = randn(dev, &[300, 64], 5)?.to_dtype(dt)?.t()?;
        check_matmul(&randn(dev, &[1, 64], 6)?, &big, tol, "half GEMV, parallel")?;
        let xb = randn(dev, &[2, 3, 4, 10], 7)?;
        check_matmul(&xb, &wt, tol, "batched x half Wᵀ")?;
        let bb = noncontig(&randn(dev, &[2, 10, 3], 8)?.to_dtype(dt)?)?;
        check_matmul(&randn(dev, &[2, 4, 10], 9)?, &bb, tol, "half batched rhs")?;
    }
    Ok(())
}

/// Checks `lhs.matmul(rhs)` (both rank 2) element by element against an f64 reference, with
/// the error relative to `Σₚ |aᵢₚ·bₚⱼ|`: the scale f32 rounding errors grow with, which, unlike
/// `|Cᵢⱼ|`, does not vanish when the terms cancel.
fn check_relative(lhs: &Tensor, rhs: &Tensor, what: &str) -> Result<()> {
    let (m, k, n) = (lhs.shape()[0], lhs.shape()[1], rhs.shape()[1]);
    let (a, b, y) = (values(lhs)?, values(rhs)?, values(&lhs.matmul(rhs)?)?);
    let mut worst = 0f64;
    for i in 0..m {
        for j in 0..n {
            let (mut dot, mut scale) = (0f64, 0f64);
            for p in 0..k {
                dot += a[i * k + p] * b[p * n + j];
                scale += (a[i * k + p] * b[p * n + j]).abs();
            }
            worst = worst.max((y[i * n + j] - dot).abs() / scale.max(f64::MIN_POSITIVE));
        }
    }
    assert!(
        worst <= 1e-5,
        "{what} {m}x{k}x{n}: max relative error {worst:e}"
    );
    Ok(())
}

pub fn gemm_relative_error_within_1e5_on_every_kernel_edge(dev: &Dev) -> Result<()> {
    // M, N, K off every tile size (6×64, 6×16, 4×8), K beyond the 512-deep pass, rows
    // enough for several row blocks, both operands transposed, half-precision weights.
    let shapes = [
        (37, 600, 70),
        (13, 1030, 45),
        (150, 257, 33),
        (25, 64, 100),
        (400, 520, 130),
    ];
    for (i, &(m, k, n)) in shapes.iter().enumerate() {
        let s = 100 + 10 * i as u64;
        let a = randn(dev, &[m, k], s)?;
        let at = randn(dev, &[k, m], s + 1)?.t()?;
        let b = randn(dev, &[k, n], s + 2)?;
        let bt = randn(dev, &[n, k], s + 3)?.t()?;
        check_relative(&a, &b, "row-major")?;
        check_relative(&at, &b, "transposed A")?;
        check_relative(&a, &bt, "x·Wᵀ")?;
        check_relative(&at, &bt, "both transposed")?;
        check_relative(
            &narrowed(dev, m, k, s + 4)?,
            &narrowed(dev, k, n, s + 5)?,
            "narrowed",
        )?;
        for dt in [DType::BF16, DType::F16] {
            check_relative(&a, &b.to_dtype(dt)?, "half B")?;
            check_relative(&at, &bt.to_dtype(dt)?, "half Wᵀ, transposed A")?;
        }
    }
    // Matrix × vector (N = 1) with many rows.
    check_relative(
        &randn(dev, &[300, 70], 7)?,
        &randn(dev, &[70, 1], 8)?,
        "N=1",
    )?;
    Ok(())
}

pub fn gemv_relative_error_within_1e5_for_half_and_f32_weights(dev: &Dev) -> Result<()> {
    // Decode-shaped products x[M ≤ 8, K]·Wᵀ, W stored [N, K]: K off the vector widths, N large
    // enough to split over threads, M across the 4-row groups.
    for &(m, k, n) in &[(1, 1000, 301), (3, 77, 40), (8, 515, 260)] {
        let x = randn(dev, &[m, k], 20)?;
        let w = randn(dev, &[n, k], 21)?;
        for dt in [DType::F32, DType::BF16, DType::F16] {
            check_relative(&x, &w.to_dtype(dt)?.t()?, &format!("GEMV {dt:?}"))?;
        }
    }
    Ok(())
}

pub fn matmul_edge_sizes_m1_n1_k0_and_empty_batch(dev: &Dev) -> Result<()> {
    // K = 0: an empty sum, so every output is 0.
    let a = Tensor::zeros(&[3, 0], DType::F32, dev)?;
    let b = Tensor::zeros(&[0, 4], DType::F32, dev)?;
    let y = a.matmul(&b)?;
    assert_eq!(y.shape(), &[3, 4]);
    assert_eq!(y.to_vec::<f32>()?, vec![0.0; 12]);
    // M = 1 and N = 1, including a 1×1 result and a long dot product.
    check_matmul(
        &randn(dev, &[1, 5], 1)?,
        &randn(dev, &[5, 4], 2)?,
        1e-5,
        "M=1",
    )?;
    check_matmul(
        &randn(dev, &[4, 5], 3)?,
        &randn(dev, &[5, 1], 4)?,
        1e-5,
        "N=1",
    )?;
    check_matmul(
        &randn(dev, &[1, 1000], 5)?,
        &noncontig(&randn(dev, &[1000, 1], 6)?)?,
        1e-3,
        "1x1000x1",
    )?;
    check_matmul(
        &randn(dev, &[200, 400], 7)?,
        &randn(dev, &[400, 1], 8)?,
        1e-3,
        "GEMV",
    )?;
    // Empty batch and empty M.
    let y = randn(dev, &[0, 3, 4], 9)?.matmul(&randn(dev, &[4, 2], 10)?)?;
    assert_eq!(y.shape(), &[0, 3, 2]);
    assert!(y.to_vec::<f32>()?.is_empty());
    let y = randn(dev, &[0, 4], 11)?.matmul(&randn(dev, &[4, 2], 12)?)?;
    assert_eq!(y.shape(), &[0, 2]);
    Ok(())
}

/// The fused `linear_gelu` (inference) against `linear` then `gelu`: the blocked GEMM with edge
/// tiles and more than one depth pass (K = 600), the short wide driver, the GEMV path (≤ 8
/// rows), a zero-depth product, with and without bias; and under gradient recording, where it
/// is the composition and must train like it.
pub fn linear_gelu_equals_linear_then_gelu_on_every_gemm_path(dev: &Dev) -> Result<()> {
    for (rows, inp, out) in [(450, 600, 70), (100, 33, 130), (5, 64, 300), (7, 0, 9)] {
        let x = randn(dev, &[rows, inp], 11)?;
        let w = randn(dev, &[out, inp], 12)?.scale(0.1)?;
        let b = randn(dev, &[out], 13)?;
        for bias in [Some(&b), None] {
            let fused = osum::engine::no_grad(|| x.linear_gelu(&w, bias))?;
            let want = values(&x.linear(&w, bias)?.gelu()?)?;
            let what = format!("linear_gelu {rows}x{inp}x{out} bias={}", bias.is_some());
            assert_tensor_close(&fused, &want, 1e-6, 1e-5, &what)?;
        }
    }
    // Recording gradients: the composition, so the gradient reaches W and b.
    let x = randn(dev, &[4, 6], 14)?;
    let (w, b) = (
        randn(dev, &[3, 6], 15)?.variable(),
        randn(dev, &[3], 16)?.variable(),
    );
    let g = x.linear_gelu(&w, Some(&b))?.sum_all()?.backward()?;
    assert!(
        g.get(&w).is_some() && g.get(&b).is_some(),
        "gradients reach W and b"
    );
    Ok(())
}

pub fn linear_matches_reference_with_and_without_bias(dev: &Dev) -> Result<()> {
    let x = randn(dev, &[2, 3, 6], 1)?;
    let w = randn(dev, &[5, 6], 2)?;
    let b = randn(dev, &[5], 3)?;
    let (xv, wv, bv) = (values(&x)?, values(&w)?, values(&b)?);
    let want = |bias: bool| -> Vec<f64> {
        (0..6 * 5)
            .map(|i| {
                let (r, o) = (i / 5, i % 5);
                let s: f64 = (0..6).map(|p| xv[r * 6 + p] * wv[o * 6 + p]).sum();
                s + if bias { bv[o] } else { 0.0 }
            })
            .collect()
    };
    let y = x.linear(&w, Some(&b))?;
    assert_eq!(y.shape(), &[2, 3, 5]);
    assert_tensor_close(&y, &want(true), 1e-5, 1e-5, "linear + b")?;
    assert_tensor_close(&x.linear(&w, None)?, &want(false), 1e-5, 1e-5, "linear")?;
    assert_tensor_close(
        &noncontig(&x)?.contiguous()?.linear(&w, Some(&b))?,
        &want(true),
        1e-5,
        1e-5,
        "linear of a copy",
    )?;
    // An f16 weight: compare against the f16 values themselves.
    let wh = w.to_dtype(DType::F16)?;
    let whv = values(&wh)?;
    let want_h: Vec<f64> = (0..30)
        .map(|i| {
            let (r, o) = (i / 5, i % 5);
            (0..6).map(|p| xv[r * 6 + p] * whv[o * 6 + p]).sum::<f64>() + bv[o]
        })
        .collect();
    assert_tensor_close(&x.linear(&wh, Some(&b))?, &want_h, 1e-5, 1e-5, "f16 linear")
}

pub fn lora_linear_matches_reference(dev: &Dev) -> Result<()> {
    // (rows shape, in, out, r): 2 rows take the dot-product path, the others the packed GEMM;
    // [4,10]·64·96 crosses the parallel threshold; a rank-1 x is one row.
    let cases: [(&[usize], usize, usize, usize); 5] = [
        (&[2, 5], 7, 6, 3),
        (&[2], 9, 5, 2),
        (&[4, 10], 64, 96, 4),
        (&[2], 200, 300, 8),
        (&[], 6, 4, 2),
    ];
    for (ci, &(lead, inp, out, r)) in cases.iter().enumerate() {
        let seed = 100 * ci as u64;
        let xshape = [lead, &[inp]].concat();
        let x = randn(dev, &xshape, seed)?;
        let w = randn(dev, &[out, inp], seed + 1)?;
        let b = randn(dev, &[out], seed + 2)?;
        let a = randn(dev, &[r, inp], seed + 3)?;
        let bm = randn(dev, &[out, r], seed + 4)?;
        let s = 0.75;
        let dims = (inp, out, r);
        let (xv, wv, av, bmv, bv) = (
            values(&x)?,
            values(&w)?,
            values(&a)?,
            values(&bm)?,
            values(&b)?,
        );
        let yshape = [lead, &[out]].concat();
        let tol = 1e-4 * (inp as f64).sqrt();
        let y = x.lora_linear(&w, Some(&b), &a, &bm, s)?;
        assert_eq!(y.shape(), yshape.as_slice());
        let want = ref_lora(&xv, &wv, Some(&bv), &av, &bmv, s as f64, dims);
        assert_tensor_close(&y, &want, tol, tol, "lora_linear + b")?;
        let want = ref_lora(&xv, &wv, None, &av, &bmv, s as f64, dims);
        let y = x.lora_linear(&w, None, &a, &bm, s)?;
        assert_tensor_close(&y, &want, tol, tol, "lora_linear")?;
        if x.rank() >= 2 {
            // Strided x and transposed-storage A/B give the same result.
            let y = noncontig(&x)?.lora_linear(&w, None, &noncontig(&a)?, &noncontig(&bm)?, s)?;
            assert_tensor_close(&y, &want, tol, tol, "lora_linear strided")?;
        }
        // A half-precision frozen W: the reference reads the half values.
        let wh = w.to_dtype(DType::BF16)?;
        let want = ref_lora(&xv, &values(&wh)?, Some(&bv), &av, &bmv, s as f64, dims);
        let y = x.lora_linear(&wh, Some(&b), &a, &bm, s)?;
        assert_tensor_close(&y, &want, tol, tol, "lora_linear bf16 W")?;
    }
    Ok(())
}

// ---- indexing ----------------------------------------------------------------------------------

pub fn index_select_matches_reference_on_every_dim_and_dtype(dev: &Dev) -> Result<()> {
    let shape = [4, 5, 3];
    let src = noncontig(&randn(dev, &shape, 1)?)?;
    let sv = values(&src)?;
    for d in 0..3 {
        let size = shape[d];
        let raw = vec![size as i64 - 1, 0, 1, 0, size as i64 - 1];
        let ids_i64 = Tensor::from_vec(raw.clone(), &[5], dev)?;
        let ids_u32 = Tensor::from_vec(raw.iter().map(|&i| i as u32).collect(), &[5], dev)?;
        let mut oshape = shape.to_vec();
        oshape[d] = raw.len();
        let want: Vec<f64> = (0..oshape.iter().product())
            .map(|i| {
                let mut p = unravel(i, &oshape);
                p[d] = raw[p[d]] as usize;
                sv[ravel(&p, &shape)]
            })
            .collect();
        for ids in [&ids_i64, &ids_u32] {
            let y = src.index_select(ids, d as isize)?;
            assert_eq!(y.shape(), oshape.as_slice());
            assert_tensor_close(&y, &want, 0.0, 0.0, "index_select")?;
        }
        // Other dtypes are copied exactly: f16 values and integer ids.
        let h = src.to_dtype(DType::F16)?;
        let hv = values(&h)?;
        let y = h.index_select(&ids_u32, d as isize)?;
        assert_eq!(y.dtype(), DType::F16);
        let want_h: Vec<f64> = (0..oshape.iter().product())
            .map(|i| {
                let mut p = unravel(i, &oshape);
                p[d] = raw[p[d]] as usize;
                hv[ravel(&p, &shape)]
            })
            .collect();
        assert_tensor_close(&y, &want_h, 0.0, 0.0, "f16 index_select")?;
    }
    let table = Tensor::from_vec((0..12u32).collect(), &[4, 3], dev)?;
    let ids = Tensor::from_vec(vec![3i64, 3, 1], &[3], dev)?;
    assert_eq!(
        table.index_select(&ids, 0)?.to_vec::<u32>()?,
        vec![9, 10, 11, 9, 10, 11, 3, 4, 5]
    );
    // Large enough to split over threads.
    let table = randn(dev, &[100, 64], 2)?;
    let raw: Vec<u32> = (0..600).map(|i| (i * 37 % 100) as u32).collect();
    let ids = Tensor::from_vec(raw.clone(), &[600], dev)?;
    let tv = values(&table)?;
    let want: Vec<f64> = raw
        .iter()
        .flat_map(|&r| tv[r as usize * 64..(r as usize + 1) * 64].to_vec())
        .collect();
    assert_tensor_close(&table.index_select(&ids, 0)?, &want, 0.0, 0.0, "large")?;
    Ok(())
}

pub fn embedding_looks_up_rows_for_ids_of_any_shape(dev: &Dev) -> Result<()> {
    let table = randn(dev, &[7, 4], 1)?;
    let tv = values(&table)?;
    let raw = vec![6i64, 0, 3, 3, 1, 6];
    // 2-D ids, stored transposed so they are not contiguous.
    let ids = Tensor::from_vec(raw.clone(), &[3, 2], dev)?.t()?;
    let idv = id_vec(&ids)?;
    let y = table.embedding(&ids)?;
    assert_eq!(y.shape(), &[2, 3, 4]);
    let want: Vec<f64> = idv
        .iter()
        .flat_map(|&r| tv[r as usize * 4..(r as usize + 1) * 4].to_vec())
        .collect();
    assert_tensor_close(&y, &want, 0.0, 0.0, "embedding 2-D ids")?;
    let ids_u32 = Tensor::from_vec(vec![5u32], &[], dev)?;
    let y = table.embedding(&ids_u32)?;
    assert_eq!(y.shape(), &[4]);
    assert_tensor_close(&y, &tv[20..24], 0.0, 0.0, "embedding 0-d id")?;
    Ok(())
}

pub fn index_add_accumulates_repeated_ids(dev: &Dev) -> Result<()> {
    let shape = [4, 3, 5];
    let dst = randn(dev, &shape, 1)?;
    let dv = values(&dst)?;
    for d in 0..3 {
        let raw = vec![0i64, 2, 0, 1, 2, 0];
        let mut sshape = shape.to_vec();
        sshape[d] = raw.len();
        let src = noncontig(&randn(dev, &sshape, 2 + d as u64)?)?;
        let sv = values(&src)?;
        let mut want = dv.clone();
        for (i, &v) in sv.iter().enumerate() {
            let mut p = unravel(i, &sshape);
            p[d] = raw[p[d]] as usize;
            want[ravel(&p, &shape)] += v;
        }
        let ids = Tensor::from_vec(raw.iter().map(|&i| i as u32).collect(), &[6], dev)?;
        let y = dst.index_add(&ids, &src, d as isize)?;
        assert_eq!(y.shape(), &shape);
        assert_tensor_close(&y, &want, 1e-6, 1e-6, "index_add u32")?;
        let ids = Tensor::from_vec(raw, &[6], dev)?;
        let y = noncontig(&dst)?
            .contiguous()?
            .index_add(&ids, &src, d as isize)?;
        assert_tensor_close(&y, &want, 1e-6, 1e-6, "index_add i64")?;
    }
    // Many outer slabs (parallel path).
    let dst = Tensor::zeros(&[64, 10, 64], DType::F32, dev)?;
    let src = Tensor::ones(&[64, 3, 64], DType::F32, dev)?;
    let ids = Tensor::from_vec(vec![7u32, 7, 2], &[3], dev)?;
    let y = values(&dst.index_add(&ids, &src, 1)?)?;
    for (i, v) in y.iter().enumerate() {
        let row = unravel(i, &[64, 10, 64])[1];
        let want = match row {
            7 => 2.0,
            2 => 1.0,
            _ => 0.0,
        };
        assert_eq!(*v, want, "element {i}");
    }
    Ok(())
}

pub fn gather_matches_reference_with_smaller_index(dev: &Dev) -> Result<()> {
    let ssh = [3, 4, 5];
    let src = noncontig(&randn(dev, &ssh, 1)?)?;
    let sv = values(&src)?;
    for d in 0..3 {
        // The index is smaller than src in the other dims and may be longer along `d`.
        let mut ish = vec![2, 3, 4];
        ish[d] = 6;
        let n: usize = ish.iter().product();
        let raw: Vec<i64> = (0..n).map(|i| ((i * 7 + 3) % ssh[d]) as i64).collect();
        let want = ref_gather(&sv, &ssh, &raw, &ish, d);
        let idx = Tensor::from_vec(raw.clone(), &ish, dev)?;
        let y = src.gather(&idx, d as isize)?;
        assert_eq!(y.shape(), ish.as_slice());
        assert_tensor_close(&y, &want, 0.0, 0.0, "gather i64")?;
        let idx = noncontig(&Tensor::from_vec(
            raw.iter().map(|&i| i as u32).collect(),
            &ish,
            dev,
        )?)?;
        let want = ref_gather(&sv, &ssh, &id_vec(&idx)?, &ish, d);
        assert_tensor_close(
            &src.gather(&idx, d as isize)?,
            &want,
            0.0,
            0.0,
            "gather u32",
        )?;
    }
    Ok(())
}

pub fn scatter_add_accumulates_repeated_targets(dev: &Dev) -> Result<()> {
    let dsh = [3, 4, 5];
    let dst = randn(dev, &dsh, 1)?;
    for d in 0..3 {
        let mut ish = vec![2, 3, 4];
        ish[d] = 6;
        // src is larger than the index in the last dim; only the covered part is added.
        let mut ssh = ish.clone();
        ssh[2] += 1;
        let src = noncontig(&randn(dev, &ssh, 2 + d as u64)?)?;
        let sv = values(&src)?;
        let n: usize = ish.iter().product();
        let raw: Vec<i64> = (0..n).map(|i| ((i * 5 + 1) % dsh[d]) as i64).collect();
        let mut want = values(&dst)?;
        for (i, &t) in raw.iter().enumerate() {
            let p = unravel(i, &ish);
            let mut q = p.clone();
            q[d] = t as usize;
            want[ravel(&q, &dsh)] += sv[ravel(&p, &ssh)];
        }
        for ids in [
            Tensor::from_vec(raw.clone(), &ish, dev)?,
            Tensor::from_vec(raw.iter().map(|&i| i as u32).collect(), &ish, dev)?,
        ] {
            let y = dst.scatter_add(&ids, &src, d as isize)?;
            assert_eq!(y.shape(), &dsh);
            assert_tensor_close(&y, &want, 1e-6, 1e-6, "scatter_add")?;
        }
    }
    Ok(())
}

pub fn concat_joins_any_dtype_along_any_dim(dev: &Dev) -> Result<()> {
    let a = noncontig(&randn(dev, &[2, 3, 4], 1)?)?;
    for d in 0..3 {
        let mut bshape = vec![2, 3, 4];
        bshape[d] = 2;
        let b = randn(dev, &bshape, 2)?;
        // A narrowed part: dense rows that are not adjacent.
        let c = randn(dev, &[2, 3, 7], 3)?.narrow(2, 1, 4)?;
        let mut oshape = vec![2, 3, 4];
        oshape[d] = 2 * oshape[d] + 2;
        let parts = [a.clone(), b.clone(), c.clone()];
        let y = Tensor::cat(&parts, d as isize)?;
        assert_eq!(y.shape(), oshape.as_slice());
        let pv: Vec<Vec<f64>> = parts.iter().map(values).collect::<Result<_>>()?;
        let want: Vec<f64> = (0..oshape.iter().product())
            .map(|i| {
                let mut p = unravel(i, &oshape);
                for (t, v) in parts.iter().zip(&pv) {
                    let len = t.shape()[d];
                    if p[d] < len {
                        return v[ravel(&p, t.shape())];
                    }
                    p[d] -= len;
                }
                unreachable!("index beyond the parts")
            })
            .collect();
        assert_tensor_close(&y, &want, 0.0, 0.0, "cat f32")?;
    }
    // Ids and half values keep their dtype and bits.
    let u = Tensor::cat(
        &[
            Tensor::from_vec(vec![1u32, 2], &[2, 1], dev)?,
            Tensor::from_vec(vec![3u32, 4, 5, 6], &[2, 2], dev)?,
        ],
        1,
    )?;
    assert_eq!(u.to_vec::<u32>()?, vec![1, 3, 4, 2, 5, 6]);
    let i = Tensor::cat(
        &[
            Tensor::from_vec(vec![-1i64], &[1], dev)?,
            Tensor::from_vec(vec![1i64 << 40], &[1], dev)?,
        ],
        0,
    )?;
    assert_eq!(i.to_vec::<i64>()?, vec![-1, 1 << 40]);
    let h = randn(dev, &[2, 2], 5)?.to_dtype(DType::F16)?;
    let hh = Tensor::cat(&[h.clone(), h.t()?], 0)?;
    assert_eq!(hh.dtype(), DType::F16);
    let hv = values(&h)?;
    assert_tensor_close(
        &hh,
        &[hv[0], hv[1], hv[2], hv[3], hv[0], hv[2], hv[1], hv[3]],
        0.0,
        0.0,
        "cat f16",
    )?;
    // Empty parts contribute nothing.
    let e = Tensor::zeros(&[0, 2], DType::F32, dev)?;
    let y = Tensor::cat(&[e, h.to_dtype(DType::F32)?], 0)?;
    assert_eq!(y.shape(), &[2, 2]);
    Ok(())
}

// ---- gradients ---------------------------------------------------------------------------------

pub fn grad_matmul_transposed_and_broadcast_operands(dev: &Dev) -> Result<()> {
    let tol = GradTol::default();
    let mm = |t: &[Tensor]| t[0].matmul(&t[1]);
    let a = randn(dev, &[3, 4], 1)?;
    let b = randn(dev, &[4, 5], 2)?;
    grad_check(dev, &[a.clone(), b.clone()], mm, tol, "matmul")?;
    grad_check(
        dev,
        &[a.clone(), b.clone()],
        |t| noncontig(&t[0])?.matmul(&noncontig(&t[1])?),
        tol,
        "matmul strided",
    )?;
    // x·Wᵀ: the rhs is a transposed view of a [N, K] weight.
    let w = randn(dev, &[5, 4], 3)?;
    grad_check(
        dev,
        &[randn(dev, &[2, 3, 4], 4)?, w.clone()],
        |t| t[0].matmul(&t[1].t()?),
        tol,
        "x·Wᵀ broadcast",
    )?;
    grad_check(
        dev,
        &[randn(dev, &[2, 3, 4], 5)?, b.clone()],
        mm,
        tol,
        "[B,M,K]x[K,N]",
    )?;
    grad_check(
        dev,
        &[randn(dev, &[2, 3, 4], 6)?, randn(dev, &[2, 4, 2], 7)?],
        mm,
        tol,
        "[B,M,K]x[B,K,N]",
    )?;
    grad_check(
        dev,
        &[a, randn(dev, &[2, 4, 2], 8)?],
        mm,
        tol,
        "[M,K]x[B,K,N]",
    )?;
    grad_check(
        dev,
        &[randn(dev, &[2, 1, 2, 3], 9)?, randn(dev, &[3, 2, 3], 10)?],
        |t| t[0].matmul(&t[1].t()?),
        tol,
        "[2,1,M,K]x[3,K,N]ᵀ",
    )
}

pub fn grad_linear(dev: &Dev) -> Result<()> {
    let x = randn(dev, &[2, 3, 4], 1)?;
    let w = randn(dev, &[5, 4], 2)?;
    let b = randn(dev, &[5], 3)?;
    grad_check(
        dev,
        &[x.clone(), w.clone(), b],
        |t| noncontig(&t[0])?.linear(&t[1], Some(&t[2])),
        GradTol::default(),
        "linear + b",
    )?;
    grad_check(
        dev,
        &[x, w],
        |t| t[0].linear(&t[1], None),
        GradTol::default(),
        "linear",
    )
}

pub fn grad_lora_linear_with_frozen_and_trainable_weight(dev: &Dev) -> Result<()> {
    let tol = GradTol::default();
    let x = randn(dev, &[2, 3, 5], 1)?;
    let w = randn(dev, &[4, 5], 2)?;
    let b = randn(dev, &[4], 3)?;
    let a = randn(dev, &[2, 5], 4)?;
    let bm = randn(dev, &[4, 2], 5)?;
    let s = 0.5;
    // Frozen W (captured, never a variable): x, A, B (and b) get gradients.
    let frozen = w.clone();
    grad_check(
        dev,
        &[x.clone(), a.clone(), bm.clone()],
        |t| t[0].lora_linear(&frozen, None, &t[1], &t[2], s),
        tol,
        "lora frozen W, no bias",
    )?;
    grad_check(
        dev,
        &[noncontig(&x)?, a.clone(), bm.clone(), b.clone()],
        |t| t[0].lora_linear(&frozen, Some(&t[3]), &t[1], &t[2], s),
        tol,
        "lora frozen W, bias",
    )?;
    // Trainable W too.
    grad_check(
        dev,
        &[x.clone(), w.clone(), a.clone(), bm.clone(), b.clone()],
        |t| t[0].lora_linear(&t[1], Some(&t[4]), &t[2], &t[3], s),
        tol,
        "lora trainable W",
    )?;
    grad_check(
        dev,
        &[x.clone(), w.clone(), a.clone(), bm.clone()],
        |t| noncontig(&t[0])?.lora_linear(&t[1], None, &noncontig(&t[2])?, &t[3], s),
        tol,
        "lora trainable W, strided x and A",
    )?;
    // Only the adapter trains (x and W constant): the usual fine-tuning setup.
    let (av, bmv) = (a.variable(), bm.variable());
    let g = x
        .lora_linear(&w, Some(&b), &av, &bmv, s)?
        .sum_all()?
        .backward()?;
    assert_eq!(g.len(), 2, "only A and B receive gradients");
    assert!(g.get(&w).is_none());
    Ok(())
}

pub fn grad_index_select_and_embedding(dev: &Dev) -> Result<()> {
    let tol = GradTol::default();
    let src = randn(dev, &[5, 3], 1)?;
    let ids = Tensor::from_vec(vec![4u32, 0, 4, 2], &[4], dev)?;
    grad_check(
        dev,
        &[src.clone(), ids.clone()],
        |t| t[0].index_select(&t[1], 0),
        tol,
        "index_select dim 0",
    )?;
    let ids = Tensor::from_vec(vec![2i64, 2, 1], &[3], dev)?;
    grad_check(
        dev,
        &[src.clone(), ids],
        |t| noncontig(&t[0])?.index_select(&t[1], 1),
        tol,
        "index_select dim 1",
    )?;
    let ids = Tensor::from_vec(vec![1i64, 4, 1, 1, 0, 3], &[2, 3], dev)?;
    grad_check(
        dev,
        &[src, ids],
        |t| t[0].embedding(&t[1]),
        tol,
        "embedding",
    )
}

pub fn grad_index_add(dev: &Dev) -> Result<()> {
    let dst = randn(dev, &[4, 3], 1)?;
    let src = randn(dev, &[4, 5], 2)?;
    let ids = Tensor::from_vec(vec![0u32, 2, 0, 1, 2], &[5], dev)?;
    grad_check(
        dev,
        &[dst, ids, src],
        |t| t[0].index_add(&t[1], &noncontig(&t[2])?.contiguous()?, 1),
        GradTol::default(),
        "index_add",
    )
}

pub fn grad_gather_and_scatter_add(dev: &Dev) -> Result<()> {
    let tol = GradTol::default();
    let src = randn(dev, &[3, 4], 1)?;
    let idx = Tensor::from_vec(vec![3i64, 0, 3, 1, 1, 2, 0, 0, 2, 2], &[2, 5], dev)?;
    grad_check(
        dev,
        &[src, idx.clone()],
        |t| noncontig(&t[0])?.gather(&t[1], 1),
        tol,
        "gather",
    )?;
    let dst = randn(dev, &[3, 4], 2)?;
    // src larger than the index: its uncovered entries get a zero gradient.
    let s = randn(dev, &[3, 6], 3)?;
    let idx = Tensor::from_vec(vec![3u32, 0, 3, 1, 1, 2, 0, 0, 2, 2], &[2, 5], dev)?;
    grad_check(
        dev,
        &[dst, idx, s],
        |t| t[0].scatter_add(&t[1], &t[2], 1),
        tol,
        "scatter_add",
    )
}

pub fn grad_cat_with_strided_parts(dev: &Dev) -> Result<()> {
    let a = randn(dev, &[2, 3, 4], 1)?;
    let b = randn(dev, &[2, 3, 2], 2)?;
    grad_check(
        dev,
        &[a.clone(), b],
        |t| Tensor::cat(&[noncontig(&t[0])?, t[1].clone(), t[0].clone()], 2),
        GradTol::default(),
        "cat dim 2",
    )?;
    let c = randn(dev, &[1, 3, 4], 3)?;
    grad_check(
        dev,
        &[a, c],
        |t| Tensor::cat(&[t[1].clone(), noncontig(&t[0])?], 0),
        GradTol::default(),
        "cat dim 0",
    )
}

// ---- errors ------------------------------------------------------------------------------------

/// True if `r` failed with IndexOutOfRange naming `op` and reporting `index`.
fn is_oob<T>(r: Result<T>, op: &str, index: i64) -> bool {
    matches!(r, Err(Error::IndexOutOfRange { op: o, index: i, .. }) if o == op && i == index)
}

pub fn ids_out_of_range_or_negative_are_errors_naming_the_op(dev: &Dev) -> Result<()> {
    let src = randn(dev, &[4, 3], 1)?;
    let big = Tensor::from_vec(vec![1u32, 4], &[2], dev)?;
    let neg = Tensor::from_vec(vec![0i64, -1], &[2], dev)?;
    assert!(is_oob(src.index_select(&big, 0), "index_select", 4));
    assert!(is_oob(src.index_select(&neg, 0), "index_select", -1));
    assert!(is_oob(src.index_select(&big, 1), "index_select", 4));
    assert!(is_oob(src.embedding(&big), "embedding", 4));
    assert!(is_oob(src.embedding(&neg), "embedding", -1));
    let s2 = randn(dev, &[2, 3], 2)?;
    assert!(is_oob(src.index_add(&big, &s2, 0), "index_add", 4));
    assert!(is_oob(src.index_add(&neg, &s2, 0), "index_add", -1));
    let gi = Tensor::from_vec(vec![0i64, 3, -2, 1], &[2, 2], dev)?;
    assert!(is_oob(src.gather(&gi, 1), "gather", 3));
    let gi = Tensor::from_vec(vec![0i64, 1, -2, 1], &[2, 2], dev)?;
    assert!(is_oob(src.gather(&gi, 1), "gather", -2));
    let si = Tensor::from_vec(vec![0u32, 7, 1, 1], &[2, 2], dev)?;
    assert!(is_oob(src.scatter_add(&si, &s2, 0), "scatter_add", 7));
    let msg = src.index_select(&big, 0).unwrap_err().to_string();
    assert!(msg.contains("index_select") && msg.contains('4'), "{msg}");
    // Float ids and 2-D ids for a 1-D-ids op are refused, not truncated or flattened.
    let fids = Tensor::from_vec(vec![0.0f32, 1.0], &[2], dev)?;
    assert!(src.index_select(&fids, 0).is_err());
    assert!(src.embedding(&fids).is_err());
    assert!(src.gather(&fids.reshape(&[2, 1])?, 0).is_err());
    let ids2 = Tensor::from_vec(vec![0u32, 1], &[1, 2], dev)?;
    assert!(matches!(
        src.index_select(&ids2, 0),
        Err(Error::BadShape {
            op: "index_select",
            ..
        })
    ));
    assert!(src.index_select(&big.narrow(0, 0, 1)?, 2).is_err(), "dim 2");
    Ok(())
}

pub fn shape_errors_name_the_op_and_both_shapes(dev: &Dev) -> Result<()> {
    let named = |r: Result<Tensor>, op: &str, shapes: &[&str]| {
        let msg = r.expect_err("must fail").to_string();
        assert!(
            msg.contains(op) && shapes.iter().all(|s| msg.contains(s)),
            "{msg}"
        );
    };
    let a = randn(dev, &[2, 3], 1)?;
    named(
        a.matmul(&randn(dev, &[4, 5], 2)?),
        "matmul",
        &["[2, 3]", "[4, 5]"],
    );
    named(
        randn(dev, &[2, 3, 4], 3)?.matmul(&randn(dev, &[3, 4, 5], 4)?),
        "matmul",
        &["[2, 3, 4]", "[3, 4, 5]"],
    );
    named(
        a.matmul(&randn(dev, &[3], 5)?),
        "matmul",
        &["[2, 3]", "[3]"],
    );
    let ids = Tensor::from_vec(vec![0u32, 1], &[2], dev)?;
    // Integer operands are refused.
    assert!(a
        .matmul(&ids.reshape(&[1, 2])?.broadcast_as(&[3, 2])?)
        .is_err());
    named(
        a.linear(&randn(dev, &[4, 5], 6)?, None),
        "linear",
        &["[2, 3]", "[4, 5]"],
    );
    // lora_linear: W, A against x; B against [out, r]; b against W.
    let (w, la, lb) = (
        randn(dev, &[4, 3], 7)?,
        randn(dev, &[2, 3], 8)?,
        randn(dev, &[4, 2], 9)?,
    );
    named(
        a.lora_linear(&randn(dev, &[4, 5], 10)?, None, &la, &lb, 1.0),
        "lora_linear",
        &["[2, 3]", "[4, 5]"],
    );
    named(
        a.lora_linear(&w, None, &randn(dev, &[2, 5], 11)?, &lb, 1.0),
        "lora_linear",
        &["[2, 3]", "[2, 5]"],
    );
    named(
        a.lora_linear(&w, None, &la, &randn(dev, &[2, 4], 12)?, 1.0),
        "lora_linear",
        &["[2, 4]"],
    );
    named(
        a.lora_linear(&w, Some(&randn(dev, &[3], 13)?), &la, &lb, 1.0),
        "lora_linear",
        &["[4, 3]", "[3]"],
    );
    // Indexing ops.
    named(
        a.index_add(&ids, &randn(dev, &[3, 3], 14)?, 0),
        "index_add",
        &["[2, 3]", "[3, 3]"],
    );
    let gi = Tensor::from_vec(vec![0i64; 3], &[3], dev)?;
    named(a.gather(&gi, 0), "gather", &["[2, 3]", "[3]"]);
    let gi = Tensor::from_vec(vec![0i64; 8], &[2, 4], dev)?;
    named(a.gather(&gi, 0), "gather", &["[2, 3]", "[2, 4]"]);
    named(
        a.scatter_add(&gi, &randn(dev, &[2, 4], 15)?, 0),
        "scatter_add",
        &["[2, 3]", "[2, 4]"],
    );
    let gi = Tensor::from_vec(vec![0i64; 4], &[2, 2], dev)?;
    named(
        a.scatter_add(&gi, &randn(dev, &[2, 1], 16)?, 0),
        "scatter_add",
        &["[2, 1]", "[2, 2]"],
    );
    named(
        Tensor::cat(&[a.clone(), randn(dev, &[3, 2], 17)?], 0),
        "cat",
        &["[2, 3]", "[3, 2]"],
    );
    assert!(Tensor::cat(&[a.clone(), a.to_dtype(DType::F16)?], 0).is_err());
    assert!(Tensor::cat(&[], 0).is_err());
    Ok(())
}
