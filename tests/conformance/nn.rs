//! Conformance cases: softmax / log-softmax, LayerNorm / RMSNorm, rotary embeddings and their
//! tables, cross-entropy, and the in-place AdamW step. Every forward is checked against an f64
//! reference loop written here (on strided and broadcast inputs, half-precision weights for the
//! norms), every differentiable op against central differences.

use super::*;
use osum::engine::ops::optim::adamw_step;
use osum::engine::ops::rope::rope_tables;
use osum::engine::{AdamWParams, DType, Error, RopeStyle};

macro_rules! nn_cases {
    ($dev:path) => {
        conformance_cases!(
            $dev,
            nn,
            [
                softmax_and_log_softmax_match_reference_on_strided_and_broadcast_input,
                softmax_and_log_softmax_stay_finite_for_logits_of_magnitude_1000,
                layer_norm_matches_reference_with_f32_f16_bf16_weights,
                rms_norm_matches_reference_with_f32_f16_bf16_weights,
                norms_reject_bad_inputs_naming_the_op,
                rope_matches_reference_in_both_styles_with_start_pos,
                rope_tables_match_f64_formula,
                rope_rejects_odd_dims_bad_tables_and_tracked_tables,
                cross_entropy_matches_reference_with_u32_and_i64_targets_and_ignored_rows,
                cross_entropy_of_all_ignored_batch_is_zero_with_zero_gradient,
                cross_entropy_rejects_out_of_range_targets_and_bad_shapes,
                adamw_matches_reference_loop_over_several_steps,
                adamw_rejects_bad_state_and_leaves_it_untouched,
                grad_softmax_and_log_softmax,
                grad_layer_norm_input_weight_and_bias,
                grad_rms_norm_input_and_weight,
                grad_rope_both_styles,
                grad_cross_entropy_with_an_ignored_row,
                row_kernels_match_reference_on_long_rows_and_parallel_sizes,
            ]
        );
    };
}

// ---- f64 reference loops ---------------------------------------------------------------------

fn softmax_ref(x: &[f64], d: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(d) {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
        out.extend(row.iter().map(|v| (v - m).exp() / s));
    }
    out
}

fn log_softmax_ref(x: &[f64], d: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(d) {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        out.extend(row.iter().map(|v| v - lse));
    }
    out
}

fn layer_norm_ref(x: &[f64], w: &[f64], b: Option<&[f64]>, eps: f64) -> Vec<f64> {
    let d = w.len();
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(d) {
        let mu = row.iter().sum::<f64>() / d as f64;
        let var = row.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / d as f64;
        for (i, v) in row.iter().enumerate() {
            let bias = b.map_or(0.0, |b| b[i]);
            out.push((v - mu) / (var + eps).sqrt() * w[i] + bias);
        }
    }
    out
}

fn rms_norm_ref(x: &[f64], w: &[f64], eps: f64) -> Vec<f64> {
    let d = w.len();
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(d) {
        let ms = row.iter().map(|v| v * v).sum::<f64>() / d as f64;
        for (i, v) in row.iter().enumerate() {
            out.push(v / (ms + eps).sqrt() * w[i]);
        }
    }
    out
}

/// Rotary embedding of rows of length `d` (row `r` at position `start + r mod t`), angles from
/// the formula `pos·θ^(−2i/d)` directly (not from a table).
fn rope_ref(x: &[f64], t: usize, d: usize, style: RopeStyle, theta: f64, start: usize) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for (r, row) in x.chunks(d).enumerate() {
        let pos = (start + r % t) as f64;
        for i in 0..d / 2 {
            let (a, b) = match style {
                RopeStyle::RotateHalf => (i, i + d / 2),
                RopeStyle::Interleaved => (2 * i, 2 * i + 1),
            };
            let angle = pos * theta.powf(-2.0 * i as f64 / d as f64);
            let (s, c) = angle.sin_cos();
            out[r * d + a] = row[a] * c - row[b] * s;
            out[r * d + b] = row[b] * c + row[a] * s;
        }
    }
    out
}

/// Mean NLL over the rows whose target is not `ignore` (0 if there are none).
fn cross_entropy_ref(logits: &[f64], v: usize, targets: &[i64], ignore: i64) -> f64 {
    let (mut total, mut count) = (0.0, 0);
    for (row, &t) in logits.chunks(v).zip(targets) {
        if t == ignore {
            continue;
        }
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
        total += lse - row[t as usize];
        count += 1;
    }
    if count == 0 {
        0.0
    } else {
        total / count as f64
    }
}

fn assert_finite(t: &Tensor, what: &str) -> Result<()> {
    for (i, v) in values(t)?.iter().enumerate() {
        assert!(v.is_finite(), "{what}: element {i} is {v}");
    }
    Ok(())
}

// ---- softmax ---------------------------------------------------------------------------------

pub fn softmax_and_log_softmax_match_reference_on_strided_and_broadcast_input(
    dev: &Dev,
) -> Result<()> {
    let strided = noncontig(&randn(dev, &[3, 4, 7], 1)?.scale(3.0)?)?;
    let rows_broadcast = randn(dev, &[1, 7], 2)?.broadcast_as(&[5, 7])?;
    let last_dim_broadcast = randn(dev, &[5, 1], 3)?.broadcast_as(&[5, 7])?;
    // Big enough to take the row-parallel path.
    let large = randn(dev, &[300, 128], 4)?.scale(2.0)?;
    for (x, what) in [
        (strided, "strided"),
        (rows_broadcast, "row broadcast"),
        (last_dim_broadcast, "last-dim broadcast"),
        (large, "large"),
    ] {
        let d = x.shape()[x.rank() - 1];
        let xv = values(&x)?;
        let y = x.softmax()?;
        assert_eq!(y.shape(), x.shape());
        assert_tensor_close(&y, &softmax_ref(&xv, d), 1e-7, 1e-5, what)?;
        let ly = x.log_softmax()?;
        assert_tensor_close(&ly, &log_softmax_ref(&xv, d), 1e-5, 1e-6, what)?;
    }
    Ok(())
}

pub fn softmax_and_log_softmax_stay_finite_for_logits_of_magnitude_1000(dev: &Dev) -> Result<()> {
    let v = vec![
        1000.0f32, -1000.0, 999.0, 0.0, // one dominant pair
        -1000.0, -1000.0, -999.0, -1000.0, // all very negative
        1000.0, 1000.0, 1000.0, 1000.0, // all equal and huge: uniform
    ];
    let x = Tensor::from_vec(v, &[3, 4], dev)?;
    let xv = values(&x)?;
    let y = x.softmax()?;
    assert_finite(&y, "softmax ±1000")?;
    assert_tensor_close(&y, &softmax_ref(&xv, 4), 1e-7, 1e-6, "softmax ±1000")?;
    let ly = x.log_softmax()?;
    assert_finite(&ly, "log_softmax ±1000")?;
    assert_tensor_close(
        &ly,
        &log_softmax_ref(&xv, 4),
        1e-4,
        1e-6,
        "log_softmax ±1000",
    )?;
    // The gradient is finite too.
    let xv = x.variable();
    let g = xv
        .softmax()?
        .mul(&randn(dev, &[3, 4], 5)?)?
        .sum_all()?
        .backward()?;
    assert_finite(g.get(&xv).expect("softmax gradient"), "softmax grad ±1000")
}

// ---- norms -----------------------------------------------------------------------------------

pub fn layer_norm_matches_reference_with_f32_f16_bf16_weights(dev: &Dev) -> Result<()> {
    let eps = 1e-5;
    // Offset by 5 so a one-pass variance formula would lose digits.
    let strided = noncontig(&randn(dev, &[2, 3, 8], 11)?.affine(2.0, 5.0)?)?;
    let broadcast = randn(dev, &[1, 8], 12)?.broadcast_as(&[4, 8])?;
    let large = randn(dev, &[256, 160], 13)?;
    for x in [strided, broadcast, large] {
        let d = x.shape()[x.rank() - 1];
        let w = randn(dev, &[d], 14)?;
        let b = randn(dev, &[d], 15)?;
        let xv = values(&x)?;
        for dt in [DType::F32, DType::F16, DType::BF16] {
            let (w, b) = (w.to_dtype(dt)?, b.to_dtype(dt)?);
            let (wv, bv) = (values(&w)?, values(&b)?);
            let y = x.layer_norm(&w, Some(&b), eps)?;
            assert_eq!((y.shape(), y.dtype()), (x.shape(), DType::F32));
            let want = layer_norm_ref(&xv, &wv, Some(&bv), eps as f64);
            assert_tensor_close(&y, &want, 2e-5, 1e-5, &format!("layer_norm {dt:?}"))?;
            let y = x.layer_norm(&w, None, eps)?;
            let want = layer_norm_ref(&xv, &wv, None, eps as f64);
            assert_tensor_close(&y, &want, 2e-5, 1e-5, &format!("layer_norm {dt:?} no bias"))?;
        }
    }
    Ok(())
}

pub fn rms_norm_matches_reference_with_f32_f16_bf16_weights(dev: &Dev) -> Result<()> {
    let eps = 1e-6;
    let strided = noncontig(&randn(dev, &[2, 3, 8], 21)?.scale(3.0)?)?;
    let broadcast = randn(dev, &[1, 8], 22)?.broadcast_as(&[4, 8])?;
    let large = randn(dev, &[256, 160], 23)?;
    for x in [strided, broadcast, large] {
        let d = x.shape()[x.rank() - 1];
        let w = randn(dev, &[d], 24)?;
        let xv = values(&x)?;
        for dt in [DType::F32, DType::F16, DType::BF16] {
            let w = w.to_dtype(dt)?;
            let y = x.rms_norm(&w, eps)?;
            assert_eq!((y.shape(), y.dtype()), (x.shape(), DType::F32));
            let want = rms_norm_ref(&xv, &values(&w)?, eps as f64);
            assert_tensor_close(&y, &want, 2e-5, 1e-5, &format!("rms_norm {dt:?}"))?;
        }
    }
    Ok(())
}

pub fn norms_reject_bad_inputs_naming_the_op(dev: &Dev) -> Result<()> {
    let x = randn(dev, &[2, 8], 31)?;
    let w7 = randn(dev, &[7], 32)?;
    let w8 = randn(dev, &[8], 33)?;
    let msg = x.layer_norm(&w7, None, 1e-5).unwrap_err().to_string();
    assert!(
        msg.contains("layer_norm") && msg.contains("[2, 8]") && msg.contains("[7]"),
        "{msg}"
    );
    let msg = x.layer_norm(&w8, Some(&w7), 1e-5).unwrap_err().to_string();
    assert!(msg.contains("layer_norm") && msg.contains("[7]"), "{msg}");
    let msg = x
        .rms_norm(&w8.reshape(&[8, 1])?, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("rms_norm") && msg.contains("[8, 1]"), "{msg}");
    let ids = Tensor::from_vec(vec![1u32; 8], &[8], dev)?;
    assert!(x.rms_norm(&ids, 1e-5).is_err(), "integer weights");
    assert!(ids.softmax().is_err() && ids.log_softmax().is_err());
    assert!(
        x.to_dtype(DType::F16)?.softmax().is_err(),
        "activations are f32"
    );
    let scalar = Tensor::from_vec(vec![1.0f32], &[], dev)?;
    let msg = scalar.softmax().unwrap_err().to_string();
    assert!(msg.contains("softmax"), "{msg}");
    Ok(())
}

// ---- rope ------------------------------------------------------------------------------------

pub fn rope_matches_reference_in_both_styles_with_start_pos(dev: &Dev) -> Result<()> {
    let (t, d, theta, start) = (5, 8, 10_000.0f32, 7);
    let (cos, sin) = rope_tables(t, d, theta, start, dev)?;
    // [B, T, H, D] permuted to [B, H, T, D]: the usual strided attention layout.
    let strided = randn(dev, &[2, t, 3, d], 41)?.permute(&[0, 2, 1, 3])?;
    assert!(!strided.layout().is_contiguous());
    let broadcast = randn(dev, &[1, 1, t, d], 42)?.broadcast_as(&[2, 2, t, d])?;
    let plain = randn(dev, &[t, d], 43)?;
    for x in [strided, broadcast, plain] {
        let xv = values(&x)?;
        for style in [RopeStyle::RotateHalf, RopeStyle::Interleaved] {
            let y = x.rope(&cos, &sin, style)?;
            assert_eq!(y.shape(), x.shape());
            let want = rope_ref(&xv, t, d, style, theta as f64, start);
            assert_tensor_close(&y, &want, 1e-5, 1e-5, &format!("rope {style:?}"))?;
        }
    }
    // Half-precision tables are accepted (widened in the kernel).
    let x = randn(dev, &[2, t, d], 44)?;
    let (ch, sh) = (cos.to_dtype(DType::BF16)?, sin.to_dtype(DType::BF16)?);
    let y = x.rope(&ch, &sh, RopeStyle::RotateHalf)?;
    let want = rope_ref(
        &values(&x)?,
        t,
        d,
        RopeStyle::RotateHalf,
        theta as f64,
        start,
    );
    assert_tensor_close(&y, &want, 3e-2, 1e-2, "rope bf16 tables")?;
    // Rotations preserve each pair's norm, so start_pos only shifts phases: position 0 is identity.
    let (c0, s0) = rope_tables(1, d, theta, 0, dev)?;
    let x0 = randn(dev, &[1, d], 45)?;
    assert_tensor_close(
        &x0.rope(&c0, &s0, RopeStyle::Interleaved)?,
        &values(&x0)?,
        0.0,
        0.0,
        "position 0",
    )
}

pub fn rope_tables_match_f64_formula(dev: &Dev) -> Result<()> {
    for (t, d, theta, start) in [
        (6, 4, 10_000.0f32, 0),
        (3, 16, 500_000.0, 4096),
        (1, 2, 10.0, 3),
    ] {
        let (cos, sin) = rope_tables(t, d, theta, start, dev)?;
        assert_eq!(
            (cos.shape(), sin.shape()),
            (&[t, d / 2][..], &[t, d / 2][..])
        );
        assert_eq!((cos.dtype(), sin.dtype()), (DType::F32, DType::F32));
        let mut want_c = Vec::new();
        let mut want_s = Vec::new();
        for p in 0..t {
            for i in 0..d / 2 {
                let inv_freq = (theta as f64).powf(-(2.0 * i as f64) / d as f64);
                let angle = (start + p) as f64 * inv_freq;
                want_c.push(angle.cos());
                want_s.push(angle.sin());
            }
        }
        // Only the final f32 rounding separates the table from the formula.
        assert_tensor_close(&cos, &want_c, 2e-7, 0.0, "rope cos table")?;
        assert_tensor_close(&sin, &want_s, 2e-7, 0.0, "rope sin table")?;
    }
    assert!(rope_tables(4, 7, 10_000.0, 0, dev).is_err(), "odd head_dim");
    assert!(
        rope_tables(4, 0, 10_000.0, 0, dev).is_err(),
        "zero head_dim"
    );
    assert!(
        rope_tables(4, 8, 0.0, 0, dev).is_err(),
        "theta must be positive"
    );
    Ok(())
}

pub fn rope_rejects_odd_dims_bad_tables_and_tracked_tables(dev: &Dev) -> Result<()> {
    let (cos, sin) = rope_tables(5, 8, 10_000.0, 0, dev)?;
    let odd = randn(dev, &[2, 5, 7], 51)?;
    let msg = odd
        .rope(&cos, &sin, RopeStyle::RotateHalf)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("rope") && msg.contains("[2, 5, 7]"), "{msg}");
    let x = randn(dev, &[2, 4, 8], 52)?; // T = 4, tables have 5 rows
    let msg = x
        .rope(&cos, &sin, RopeStyle::Interleaved)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("rope") && msg.contains("[2, 4, 8]") && msg.contains("[5, 4]"),
        "{msg}"
    );
    let flat = randn(dev, &[8], 53)?;
    assert!(
        flat.rope(&cos, &sin, RopeStyle::RotateHalf).is_err(),
        "rank 1"
    );
    let x = randn(dev, &[2, 5, 8], 54)?;
    let ids = Tensor::from_vec(vec![0u32; 20], &[5, 4], dev)?;
    assert!(
        x.rope(&ids, &sin, RopeStyle::RotateHalf).is_err(),
        "integer table"
    );
    assert!(matches!(
        x.rope(&cos.variable(), &sin, RopeStyle::RotateHalf),
        Err(Error::NoBackward { op: "rope" })
    ));
    // Without recording, trainable tables are just values.
    no_grad(|| x.rope(&cos, &sin.variable(), RopeStyle::RotateHalf))?;
    Ok(())
}

// ---- cross-entropy ---------------------------------------------------------------------------

pub fn cross_entropy_matches_reference_with_u32_and_i64_targets_and_ignored_rows(
    dev: &Dev,
) -> Result<()> {
    let v = 6;
    let logits = noncontig(&randn(dev, &[2, 3, v], 61)?.scale(3.0)?)?;
    let lv = values(&logits)?;
    let ids = [1i64, -100, 5, 0, -100, 2];
    let targets = Tensor::from_vec(ids.to_vec(), &[2, 3], dev)?;
    let loss = logits.cross_entropy(&targets, -100)?;
    assert_eq!(loss.shape(), &[] as &[usize]);
    let want = cross_entropy_ref(&lv, v, &ids, -100);
    assert_tensor_close(&loss, &[want], 1e-5, 1e-5, "i64 with ignored rows")?;

    let uids = [1u32, 3, 5, 0, 2, 2];
    let u = Tensor::from_vec(uids.to_vec(), &[2, 3], dev)?;
    let as_i64: Vec<i64> = uids.iter().map(|&t| t as i64).collect();
    let loss = logits.cross_entropy(&u, -100)?;
    let want = cross_entropy_ref(&lv, v, &as_i64, -100);
    assert_tensor_close(&loss, &[want], 1e-5, 1e-5, "u32 none ignored")?;
    // A u32 target can be ignored too, by a non-negative ignore index.
    let loss = logits.cross_entropy(&u, 2)?;
    let want = cross_entropy_ref(&lv, v, &as_i64, 2);
    assert_tensor_close(&loss, &[want], 1e-5, 1e-5, "u32 ignore index 2")?;
    // Flat [N] targets for [.., V] logits work as long as the counts match.
    let loss = logits.cross_entropy(&u.reshape(&[6])?, -100)?;
    assert_tensor_close(
        &loss,
        &[cross_entropy_ref(&lv, v, &as_i64, -100)],
        1e-5,
        1e-5,
        "flat",
    )?;

    // Large logits: log-sum-exp keeps it finite.
    let big = Tensor::from_vec(
        vec![1000.0f32, -1000.0, 0.0, -1000.0, 1000.0, 999.0],
        &[2, 3],
        dev,
    )?;
    let t = Tensor::from_vec(vec![1i64, 2], &[2], dev)?;
    let loss = big.cross_entropy(&t, -100)?;
    let want = cross_entropy_ref(&values(&big)?, 3, &[1, 2], -100);
    assert_tensor_close(&loss, &[want], 1e-3, 1e-6, "logits ±1000")?;
    Ok(())
}

pub fn cross_entropy_of_all_ignored_batch_is_zero_with_zero_gradient(dev: &Dev) -> Result<()> {
    let logits = randn(dev, &[3, 4], 71)?.variable();
    let targets = Tensor::from_vec(vec![-100i64; 3], &[3], dev)?;
    let loss = logits.cross_entropy(&targets, -100)?;
    assert_eq!(loss.to_scalar_f32()?, 0.0);
    let g = loss.backward()?;
    assert_tensor_close(
        g.get(&logits).expect("logits gradient"),
        &[0.0; 12],
        0.0,
        0.0,
        "grad",
    )
}

pub fn cross_entropy_rejects_out_of_range_targets_and_bad_shapes(dev: &Dev) -> Result<()> {
    let logits = randn(dev, &[2, 4], 81)?;
    let t = Tensor::from_vec(vec![1u32, 4], &[2], dev)?;
    assert!(matches!(
        logits.cross_entropy(&t, -100),
        Err(Error::IndexOutOfRange {
            op: "cross_entropy",
            index: 4,
            size: 4
        })
    ));
    let t = Tensor::from_vec(vec![-1i64, 0], &[2], dev)?;
    assert!(matches!(
        logits.cross_entropy(&t, -100),
        Err(Error::IndexOutOfRange { index: -1, .. })
    ));
    let t = Tensor::from_vec(vec![0i64, 1, 2], &[3], dev)?;
    let msg = logits.cross_entropy(&t, -100).unwrap_err().to_string();
    assert!(
        msg.contains("cross_entropy") && msg.contains("[2, 4]") && msg.contains("[3]"),
        "{msg}"
    );
    let ft = Tensor::from_vec(vec![0.0f32, 1.0], &[2], dev)?;
    assert!(logits.cross_entropy(&ft, -100).is_err(), "float targets");
    let ok = Tensor::from_vec(vec![0i64, 1], &[2], dev)?;
    assert!(
        logits
            .to_dtype(DType::F16)?
            .cross_entropy(&ok, -100)
            .is_err(),
        "logits are f32"
    );
    let scalar = Tensor::from_vec(vec![1.0f32], &[], dev)?;
    assert!(scalar.cross_entropy(&ok, -100).is_err(), "0-d logits");
    Ok(())
}

// ---- AdamW -----------------------------------------------------------------------------------

/// f64 AdamW state for the reference loop.
struct AdamRef {
    p: Vec<f64>,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl AdamRef {
    fn step(&mut self, g: &[f64], hp: &AdamWParams) {
        let (b1, b2) = (hp.beta1 as f64, hp.beta2 as f64);
        let (lr, wd, eps) = (hp.lr as f64, hp.weight_decay as f64, hp.eps as f64);
        let bc1 = 1.0 - b1.powi(hp.step as i32);
        let bc2 = 1.0 - b2.powi(hp.step as i32);
        for (i, &g) in g.iter().enumerate() {
            let (p, m, v) = (&mut self.p[i], &mut self.m[i], &mut self.v[i]);
            *p -= lr * wd * *p;
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            let (mh, vh) = (*m / bc1, *v / bc2);
            *p -= lr * mh / (vh.sqrt() + eps);
        }
    }
}

fn hp(step: u64) -> AdamWParams {
    AdamWParams {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.1,
        step,
    }
}

pub fn adamw_matches_reference_loop_over_several_steps(dev: &Dev) -> Result<()> {
    // Small: a trainable leaf sharing storage with `base`, strided gradients on odd steps.
    // Large: enough elements for the chunked parallel path.
    for (shape, seed) in [(vec![4usize, 5], 91u64), (vec![200, 200], 92)] {
        let base = randn(dev, &shape, seed)?;
        let param = base.variable();
        let m = Tensor::zeros(&shape, DType::F32, dev)?;
        let v = Tensor::zeros(&shape, DType::F32, dev)?;
        let mut r = AdamRef {
            p: values(&base)?,
            m: vec![0.0; base.elem_count()],
            v: vec![0.0; base.elem_count()],
        };
        for step in 1..=5u64 {
            let g = randn(dev, &shape, seed * 100 + step)?;
            let g = if step % 2 == 1 { noncontig(&g)? } else { g };
            adamw_step(&param, &g, &m, &v, &hp(step))?;
            r.step(&values(&g)?, &hp(step));
        }
        assert!(
            param.is_variable(),
            "the step records nothing on the parameter"
        );
        assert_tensor_close(&param, &r.p, 1e-6, 1e-5, "param")?;
        assert_tensor_close(&base, &r.p, 1e-6, 1e-5, "param seen through its storage")?;
        assert_tensor_close(&m, &r.m, 1e-7, 1e-5, "m")?;
        assert_tensor_close(&v, &r.v, 1e-9, 1e-5, "v")?;
    }
    // Weight decay alone (zero gradient): θ shrinks by exactly (1 − lr·wd) per step.
    let p = Tensor::from_vec(vec![2.0f32, -4.0], &[2], dev)?;
    let (m, v) = (p.zeros_like()?, p.zeros_like()?);
    adamw_step(&p, &p.zeros_like()?, &m, &v, &hp(1))?;
    assert_tensor_close(&p, &[2.0 * 0.999, -4.0 * 0.999], 1e-7, 1e-6, "decay only")
}

pub fn adamw_rejects_bad_state_and_leaves_it_untouched(dev: &Dev) -> Result<()> {
    let shape = [4, 5];
    let p = randn(dev, &shape, 101)?;
    let before = values(&p)?;
    let g = randn(dev, &shape, 102)?;
    let zeros = || Tensor::zeros(&shape, DType::F32, dev);
    let (m, v) = (zeros()?, zeros()?);
    let expect_err = |r: Result<()>, needle: &str| {
        let msg = r.expect_err(needle).to_string();
        assert!(
            msg.contains("adamw_step") && msg.contains(needle),
            "{needle}: {msg}"
        );
    };
    expect_err(
        adamw_step(&p, &g, &m.to_dtype(DType::F16)?, &v, &hp(1)),
        "m must be f32",
    );
    expect_err(
        adamw_step(&p, &randn(dev, &[5, 4], 103)?, &m, &v, &hp(1)),
        "[5, 4]",
    );
    expect_err(
        adamw_step(&noncontig(&p)?, &g, &m, &v, &hp(1)),
        "contiguous",
    );
    let big = randn(dev, &[8, 5], 104)?;
    expect_err(
        adamw_step(&big.narrow(0, 0, 4)?, &g, &m, &v, &hp(1)),
        "whole storage",
    );
    expect_err(
        adamw_step(&big.narrow(0, 4, 4)?, &g, &m, &v, &hp(1)),
        "offset 20",
    );
    expect_err(adamw_step(&p, &g, &m, &m.detach(), &hp(1)), "share storage");
    expect_err(adamw_step(&p, &p.detach(), &m, &v, &hp(1)), "share storage");
    expect_err(adamw_step(&p, &g, &p, &v, &hp(1)), "share storage");
    expect_err(adamw_step(&p, &g, &m, &v, &hp(0)), "1-based");
    let ids = Tensor::from_vec(vec![0u32; 20], &shape, dev)?;
    expect_err(adamw_step(&p, &ids, &m, &v, &hp(1)), "float");
    assert_eq!(values(&p)?, before, "a refused step changes nothing");
    assert_eq!(values(&m)?, vec![0.0; 20]);
    Ok(())
}

// ---- gradient checks -------------------------------------------------------------------------

pub fn grad_softmax_and_log_softmax(dev: &Dev) -> Result<()> {
    let x = randn(dev, &[3, 5], 111)?.scale(2.0)?;
    grad_check(
        dev,
        std::slice::from_ref(&x),
        |t| noncontig(&t[0])?.softmax(),
        GradTol::default(),
        "softmax",
    )?;
    grad_check(
        dev,
        &[x],
        |t| noncontig(&t[0])?.log_softmax(),
        GradTol::default(),
        "log_softmax",
    )
}

pub fn grad_layer_norm_input_weight_and_bias(dev: &Dev) -> Result<()> {
    let eps = 1e-5;
    let x = randn(dev, &[2, 3, 6], 121)?.affine(1.5, 0.5)?;
    let w = randn(dev, &[6], 122)?;
    let b = randn(dev, &[6], 123)?;
    let tol = GradTol::default();
    grad_check(
        dev,
        &[x.clone(), w.clone(), b.clone()],
        |t| noncontig(&t[0])?.layer_norm(&t[1], Some(&t[2]), eps),
        tol,
        "layer_norm x, w, b",
    )?;
    grad_check(
        dev,
        &[x.clone(), w.clone()],
        |t| t[0].layer_norm(&t[1], None, eps),
        tol,
        "layer_norm x, w",
    )?;
    // Frozen half-precision weights: only x is differentiated, through the f16 weights.
    let (wh, bh) = (w.to_dtype(DType::F16)?, b.to_dtype(DType::BF16)?);
    grad_check(
        dev,
        std::slice::from_ref(&x),
        |t| noncontig(&t[0])?.layer_norm(&wh, Some(&bh), eps),
        tol,
        "layer_norm x with half weights",
    )?;
    // Frozen input, trainable weight only.
    grad_check(
        dev,
        std::slice::from_ref(&w),
        |t| x.layer_norm(&t[0], None, eps),
        tol,
        "layer_norm w only",
    )?;
    // A trainable f16 weight gets an f16 gradient: Σ_rows g·x̂ with g = 1.
    let whv = wh.variable();
    let grads = x.layer_norm(&whv, None, eps)?.sum_all()?.backward()?;
    let dw = grads.get(&whv).expect("f16 weight gradient");
    assert_eq!(dw.dtype(), DType::F16);
    let xhat = layer_norm_ref(&values(&x)?, &[1.0; 6], None, eps as f64);
    let want: Vec<f64> = (0..6)
        .map(|i| xhat.iter().skip(i).step_by(6).sum())
        .collect();
    assert_tensor_close(dw, &want, 1e-2, 1e-2, "f16 dw")
}

pub fn grad_rms_norm_input_and_weight(dev: &Dev) -> Result<()> {
    let eps = 1e-6;
    let x = randn(dev, &[2, 3, 6], 131)?;
    let w = randn(dev, &[6], 132)?;
    let tol = GradTol::default();
    grad_check(
        dev,
        &[x.clone(), w.clone()],
        |t| noncontig(&t[0])?.rms_norm(&t[1], eps),
        tol,
        "rms_norm x, w",
    )?;
    let wh = w.to_dtype(DType::BF16)?;
    grad_check(
        dev,
        std::slice::from_ref(&x),
        |t| t[0].rms_norm(&wh, eps),
        tol,
        "rms_norm x with bf16 weight",
    )?;
    grad_check(
        dev,
        &[w],
        |t| x.rms_norm(&t[0], eps),
        tol,
        "rms_norm w only",
    )
}

pub fn grad_rope_both_styles(dev: &Dev) -> Result<()> {
    let (cos, sin) = rope_tables(4, 6, 100.0, 3, dev)?;
    let x = randn(dev, &[2, 4, 6], 141)?;
    for style in [RopeStyle::RotateHalf, RopeStyle::Interleaved] {
        grad_check(
            dev,
            std::slice::from_ref(&x),
            |t| noncontig(&t[0])?.rope(&cos, &sin, style),
            GradTol::default(),
            &format!("rope {style:?}"),
        )?;
    }
    Ok(())
}

pub fn grad_cross_entropy_with_an_ignored_row(dev: &Dev) -> Result<()> {
    let logits = randn(dev, &[4, 5], 151)?.scale(2.0)?;
    let targets = Tensor::from_vec(vec![1i64, -100, 4, 0], &[4], dev)?;
    grad_check(
        dev,
        &[logits, targets],
        |t| noncontig(&t[0])?.cross_entropy(&t[1], -100),
        GradTol::default(),
        "cross_entropy i64",
    )?;
    let logits = randn(dev, &[2, 2, 5], 152)?;
    let targets = Tensor::from_vec(vec![3u32, 7, 0, 7], &[2, 2], dev)?;
    grad_check(
        dev,
        &[logits.clone(), targets.clone()],
        |t| t[0].cross_entropy(&t[1], 7),
        GradTol::default(),
        "cross_entropy u32 [B, T, V]",
    )?;
    // The ignored rows' gradient is exactly zero.
    let lv = logits.variable();
    let g = lv.cross_entropy(&targets, 7)?.backward()?;
    let dl = values(g.get(&lv).expect("logits gradient"))?;
    assert!(dl[5..10].iter().chain(&dl[15..20]).all(|&v| v == 0.0));
    Ok(())
}

pub fn row_kernels_match_reference_on_long_rows_and_parallel_sizes(dev: &Dev) -> Result<()> {
    // Rows longer than the 1024-element exp buffer and ragged against every vector width;
    // 300 × 131 is above the parallel threshold.
    for (shape, seed) in [([3, 5003], 401u64), ([300, 131], 402)] {
        let x = randn(dev, &shape, seed)?.scale(4.0)?;
        let (xv, d) = (values(&x)?, shape[1]);
        assert_tensor_close(&x.softmax()?, &softmax_ref(&xv, d), 1e-6, 1e-5, "softmax")?;
        let ls = x.log_softmax()?;
        assert_tensor_close(&ls, &log_softmax_ref(&xv, d), 1e-4, 1e-5, "log_softmax")?;
        let w = randn(dev, &[d], seed + 10)?;
        let b = randn(dev, &[d], seed + 11)?;
        let (wv, bv) = (values(&w)?, values(&b)?);
        let xo = x.affine(1.0, 3.0)?;
        let xov = values(&xo)?;
        let want = layer_norm_ref(&xov, &wv, Some(&bv), 1e-5);
        assert_tensor_close(&xo.layer_norm(&w, Some(&b), 1e-5)?, &want, 1e-4, 1e-5, "ln")?;
        let want = rms_norm_ref(&xov, &wv, 1e-6);
        assert_tensor_close(&xo.rms_norm(&w, 1e-6)?, &want, 1e-4, 1e-5, "rms")?;
        // Cross-entropy and its gradient softmax − onehot (mean over rows).
        let n = shape[0];
        let ids: Vec<i64> = (0..n).map(|i| ((i * 7919) % d) as i64).collect();
        let t = Tensor::from_vec(ids.clone(), &[n], dev)?;
        let xvar = x.variable();
        let loss = xvar.cross_entropy(&t, -100)?;
        let want = cross_entropy_ref(&xv, d, &ids, -100);
        assert_tensor_close(&loss, &[want], 1e-5, 1e-5, "cross_entropy")?;
        let g = loss.backward()?;
        let mut want = softmax_ref(&xv, d);
        for (r, &id) in ids.iter().enumerate() {
            want[r * d + id as usize] -= 1.0;
        }
        want.iter_mut().for_each(|v| *v /= n as f64);
        let got = g.get(&xvar).expect("dlogits");
        assert_tensor_close(got, &want, 1e-7, 1e-4, "cross_entropy grad")?;
    }
    // The exp family in chunked parallel pieces (100 001 elements, ragged last chunk).
    let x = randn(dev, &[100_001], 403)?.scale(6.0)?;
    let xv = values(&x)?;
    type Case = (Tensor, fn(f64) -> f64, &'static str);
    let cases: [Case; 3] = [
        (x.exp()?, f64::exp, "exp"),
        (x.sigmoid()?, |v| 1.0 / (1.0 + (-v).exp()), "sigmoid"),
        (x.silu()?, |v| v / (1.0 + (-v).exp()), "silu"),
    ];
    for (y, f, name) in cases {
        let want: Vec<f64> = xv.iter().map(|&v| f(v)).collect();
        assert_tensor_close(&y, &want, 1e-7, 1e-6, name)?;
    }
    Ok(())
}
