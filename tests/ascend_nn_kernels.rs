//! The norm, rope, reduce, index, loss and optimizer kernels of `ascend-sim` against the CPU
//! device, on ragged sizes (rows and columns that are not multiples of the 8-float block or of the
//! UB chunk). Everything here runs on the CPU simulator of the AscendC API — a simulation, not
//! an NPU.
//!
//! Tolerances (per element, |ascend − cpu| ≤ atol + rtol·|cpu|):
//! - pure data movement (index_select, gather) and the same f32 operation sequence (rope,
//!   max/min/argmax, adamw, index_add/scatter_add with one addition order) must be bit-identical;
//! - row statistics (norms, log-softmax, cross-entropy) are f32 sums in chunk order on the kernel
//!   and f64 or 16-lane sums on the CPU: atol 1e-6·(1 + cols/64), rtol 1e-5 — a few f32 ulps
//!   per 64 summed terms, measured max ≈ 1e-6 on these cases;
//! - sums over a dim: f32 sequential vs f64 on the CPU: rtol 1e-6·n, atol 1e-6·n.

mod ascend_nn_kernels {
    use osum::engine::{
        cpu_device, device_named, AdamWParams, DType, Device, Error, ReduceOp, Result, Rng,
        RopeStyle, Tensor,
    };
    use std::sync::Arc;

    fn sim() -> Arc<dyn Device> {
        device_named("ascend-sim").expect("ascend-sim device")
    }

    fn random(seed: u64, n: usize, scale: f32) -> Vec<f32> {
        let mut r = Rng::new(seed);
        (0..n).map(|_| scale * r.normal()).collect()
    }

    fn both(v: &[f32], shape: &[usize]) -> Result<(Tensor, Tensor)> {
        Ok((
            Tensor::from_vec(v.to_vec(), shape, &cpu_device())?,
            Tensor::from_vec(v.to_vec(), shape, &sim())?,
        ))
    }

    fn close(got: &[f32], want: &[f32], atol: f32, rtol: f32, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        assert!(!want.is_empty(), "{what}: nothing to compare");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= atol + rtol * w.abs() || g == w,
                "{what}: element {i}: ascend {g}, cpu {w} (atol {atol}, rtol {rtol})"
            );
        }
    }

    /// Shapes `[rows, cols]` with ragged columns, a row longer than one 8192-float UB chunk,
    /// and a single row.
    const ROW_SHAPES: [(usize, usize); 5] = [(1, 1), (3, 7), (37, 100), (2, 8193), (5, 576)];

    #[test]
    fn ascend_layer_norm_and_rms_norm_match_the_cpu() -> Result<()> {
        for (i, &(rows, cols)) in ROW_SHAPES.iter().enumerate() {
            let seed = 10 + i as u64;
            // A large common offset checks the centred (two-pass) variance.
            let x: Vec<f32> = random(seed, rows * cols, 2.0)
                .iter()
                .map(|v| v + 30.0)
                .collect();
            let (xc, xa) = both(&x, &[rows, cols])?;
            let (wc, wa) = both(&random(seed + 100, cols, 1.0), &[cols])?;
            let (bc, ba) = both(&random(seed + 200, cols, 1.0), &[cols])?;
            let tol = 1e-6 * (1.0 + cols as f32 / 64.0);
            for bias in [false, true] {
                let want = xc
                    .layer_norm(&wc, bias.then_some(&bc), 1e-5)?
                    .to_vec::<f32>()?;
                let got = xa
                    .layer_norm(&wa, bias.then_some(&ba), 1e-5)?
                    .to_vec::<f32>()?;
                close(
                    &got,
                    &want,
                    10.0 * tol,
                    1e-4,
                    &format!("layer_norm {rows}x{cols}"),
                );
            }
            let want = xc.rms_norm(&wc, 1e-6)?.to_vec::<f32>()?;
            let got = xa.rms_norm(&wa, 1e-6)?.to_vec::<f32>()?;
            close(&got, &want, tol, 1e-5, &format!("rms_norm {rows}x{cols}"));
        }
        Ok(())
    }

    #[test]
    fn ascend_rope_matches_the_cpu_in_both_styles() -> Result<()> {
        // [B, H, T, D] with odd T, D/2 not a multiple of 8 (D = 10, 36) and the usual 64.
        for (i, &(b, h, t, d)) in [(1, 1, 1, 2), (2, 3, 7, 10), (1, 4, 13, 36), (1, 2, 5, 64)]
            .iter()
            .enumerate()
        {
            let seed = 40 + i as u64;
            let (xc, xa) = both(&random(seed, b * h * t * d, 1.0), &[b, h, t, d])?;
            let (cc, ca) = both(&random(seed + 1, t * d / 2, 1.0), &[t, d / 2])?;
            let (sc, sa) = both(&random(seed + 2, t * d / 2, 1.0), &[t, d / 2])?;
            for style in [RopeStyle::RotateHalf, RopeStyle::Interleaved] {
                let want = xc.rope(&cc, &sc, style)?.to_vec::<f32>()?;
                let got = xa.rope(&ca, &sa, style)?.to_vec::<f32>()?;
                close(
                    &got,
                    &want,
                    0.0,
                    0.0,
                    &format!("rope {style:?} {b}x{h}x{t}x{d}"),
                );
            }
        }
        Ok(())
    }

    #[test]
    fn ascend_reductions_match_the_cpu_on_every_axis() -> Result<()> {
        for (i, shape) in [
            vec![7usize],
            vec![3, 9001],
            vec![5, 13, 3],
            vec![2, 3, 4, 5],
        ]
        .into_iter()
        .enumerate()
        {
            let n: usize = shape.iter().product();
            let (xc, xa) = both(&random(70 + i as u64, n, 3.0), &shape)?;
            for dim in 0..shape.len() {
                for op in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min] {
                    let want = xc.reduce_keepdim(op, dim as isize)?.to_vec::<f32>()?;
                    let got = xa.reduce_keepdim(op, dim as isize)?.to_vec::<f32>()?;
                    let k = shape[dim] as f32;
                    let (atol, rtol) = if op == ReduceOp::Sum {
                        (1e-6 * k, 1e-6 * k)
                    } else {
                        (0.0, 0.0)
                    };
                    close(
                        &got,
                        &want,
                        atol,
                        rtol,
                        &format!("{op:?} {shape:?} dim {dim}"),
                    );
                }
                let want = xc.argmax(dim as isize)?.to_vec::<u32>()?;
                let got = xa.argmax(dim as isize)?.to_vec::<u32>()?;
                assert_eq!(got, want, "argmax {shape:?} dim {dim}");
            }
        }
        // Ties: the first maximum wins on both devices.
        let (xc, xa) = both(&[1.0, 5.0, 5.0, 2.0, 5.0, 0.0], &[2, 3])?;
        for dim in [0, 1] {
            assert_eq!(
                xa.argmax(dim)?.to_vec::<u32>()?,
                xc.argmax(dim)?.to_vec::<u32>()?
            );
        }
        Ok(())
    }

    #[test]
    fn ascend_index_select_and_gather_move_any_dtype_like_the_cpu() -> Result<()> {
        let (cpu, dev) = (cpu_device(), sim());
        let x = random(90, 5 * 7 * 3, 1.0);
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let xc = Tensor::from_vec(x.clone(), &[5, 7, 3], &cpu)?.to_dtype(dtype)?;
            // Half tensors are uploaded as they are (ascend-sim has no cast kernel of its own here).
            let xa = Tensor::from_host(xc.to_host()?, &[5, 7, 3], &dev)?;
            for dim in 0..3usize {
                let size = [5, 7, 3][dim];
                let ids: Vec<u32> = (0..11).map(|i| (i * 5 + 2) % size as u32).collect();
                let (ic, ia) = (
                    Tensor::from_vec(ids.clone(), &[ids.len()], &cpu)?,
                    Tensor::from_vec(ids.clone(), &[ids.len()], &dev)?,
                );
                let want = xc.index_select(&ic, dim as isize)?.to_host()?.to_f64_vec();
                let got = xa.index_select(&ia, dim as isize)?.to_host()?.to_f64_vec();
                assert_eq!(got, want, "index_select {dtype:?} dim {dim}");
                // gather with an index smaller than src in the other dims.
                let mut ishape = vec![4usize, 6, 2];
                ishape[dim] = 9;
                let n: usize = ishape.iter().product();
                let idx: Vec<i64> = (0..n as i64).map(|i| (i * 7 + 1) % size as i64).collect();
                let (gc, ga) = (
                    Tensor::from_vec(idx.clone(), &ishape, &cpu)?,
                    Tensor::from_vec(idx, &ishape, &dev)?,
                );
                let want = xc.gather(&gc, dim as isize)?.to_host()?.to_f64_vec();
                let got = xa.gather(&ga, dim as isize)?.to_host()?.to_f64_vec();
                assert_eq!(got, want, "gather {dtype:?} dim {dim}");
            }
        }
        Ok(())
    }

    #[test]
    fn ascend_index_add_and_scatter_add_accumulate_repeated_ids_like_the_cpu() -> Result<()> {
        let (cpu, dev) = (cpu_device(), sim());
        // Embedding backward shape: 49 ids (repeats) into a [17, 100] table, plus other dims.
        for (i, (dshape, dim)) in [
            (vec![17usize, 100], 0usize),
            (vec![4, 9, 5], 1),
            (vec![3, 6], 1),
        ]
        .into_iter()
        .enumerate()
        {
            let size = dshape[dim];
            let n = 49usize;
            let ids: Vec<u32> = (0..n as u32).map(|j| (j * j + 3) % size as u32).collect();
            let mut sshape = dshape.clone();
            sshape[dim] = n;
            let dn: usize = dshape.iter().product();
            let sn: usize = sshape.iter().product();
            let (dc, da) = both(&random(110 + i as u64, dn, 1.0), &dshape)?;
            let (sc, sa) = both(&random(120 + i as u64, sn, 1.0), &sshape)?;
            let (ic, ia) = (
                Tensor::from_vec(ids.clone(), &[n], &cpu)?,
                Tensor::from_vec(ids.clone(), &[n], &dev)?,
            );
            let want = dc.index_add(&ic, &sc, dim as isize)?.to_vec::<f32>()?;
            let got = da.index_add(&ia, &sa, dim as isize)?.to_vec::<f32>()?;
            close(
                &got,
                &want,
                0.0,
                0.0,
                &format!("index_add {dshape:?} dim {dim}"),
            );
            // scatter_add with an index as large as src along dim and smaller elsewhere.
            let mut ishape: Vec<usize> = dshape.iter().map(|&s| s.max(2) - 1).collect();
            ishape[dim] = 7;
            let mut srcshape = ishape.clone();
            srcshape[dim] = 8;
            let inn: usize = ishape.iter().product();
            let idx: Vec<i64> = (0..inn as i64).map(|j| (j * 3 + 1) % size as i64).collect();
            let srcn: usize = srcshape.iter().product();
            let (sc, sa) = both(&random(130 + i as u64, srcn, 1.0), &srcshape)?;
            let (gc, ga) = (
                Tensor::from_vec(idx.clone(), &ishape, &cpu)?,
                Tensor::from_vec(idx, &ishape, &dev)?,
            );
            let want = dc.scatter_add(&gc, &sc, dim as isize)?.to_vec::<f32>()?;
            let got = da.scatter_add(&ga, &sa, dim as isize)?.to_vec::<f32>()?;
            close(
                &got,
                &want,
                0.0,
                0.0,
                &format!("scatter_add {dshape:?} dim {dim}"),
            );
        }
        Ok(())
    }

    #[test]
    fn ascend_bad_ids_and_targets_are_errors_naming_the_op() -> Result<()> {
        let dev = sim();
        let x = Tensor::from_vec(random(140, 12, 1.0), &[4, 3], &dev)?;
        let bad = Tensor::from_vec(vec![0u32, 4], &[2], &dev)?;
        let neg = Tensor::from_vec(vec![-1i64], &[1], &dev)?;
        for (r, op) in [
            (x.index_select(&bad, 0), "index_select"),
            (x.index_select(&neg, 0), "index_select"),
        ] {
            match r {
                Err(Error::IndexOutOfRange { op: o, .. }) => assert_eq!(o, op),
                other => panic!("{op}: expected IndexOutOfRange, got {other:?}"),
            }
        }
        let t = Tensor::from_vec(vec![0u32, 1, 3, 2], &[4], &dev)?;
        let err = {
            let (l, tt) = (x.read(), t.read());
            dev.cross_entropy(l.view(), tt.view(), -100).map(|_| ())
        };
        assert!(
            matches!(
                err,
                Err(Error::IndexOutOfRange {
                    op: "cross_entropy",
                    index: 3,
                    size: 3
                })
            ),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn ascend_log_softmax_and_cross_entropy_match_the_cpu() -> Result<()> {
        let (cpu, dev) = (cpu_device(), sim());
        for (i, &(rows, cols)) in ROW_SHAPES.iter().enumerate() {
            let x = random(150 + i as u64, rows * cols, 4.0);
            let (xc, xa) = both(&x, &[rows, cols])?;
            let tol = 1e-6 * (1.0 + cols as f32 / 64.0);
            let want = xc.log_softmax()?.to_vec::<f32>()?;
            let got = xa.log_softmax()?.to_vec::<f32>()?;
            close(
                &got,
                &want,
                tol,
                1e-5,
                &format!("log_softmax {rows}x{cols}"),
            );
            // Targets as i64 with every third row ignored (-100), and as u32.
            let t64: Vec<i64> = (0..rows as i64)
                .map(|r| {
                    if r % 3 == 2 {
                        -100
                    } else {
                        (r * 37 + 5) % cols as i64
                    }
                })
                .collect();
            let t32: Vec<u32> = (0..rows as u32)
                .map(|r| (r * 11 + 1) % cols as u32)
                .collect();
            let g = random(160 + i as u64, rows, 1.0);
            for targets in [
                (
                    Tensor::from_vec(t64.clone(), &[rows], &cpu)?,
                    Tensor::from_vec(t64.clone(), &[rows], &dev)?,
                ),
                (
                    Tensor::from_vec(t32.clone(), &[rows], &cpu)?,
                    Tensor::from_vec(t32.clone(), &[rows], &dev)?,
                ),
            ] {
                let (gc, ga) = both(&g, &[rows])?;
                let run = |d: &Arc<dyn Device>,
                           x: &Tensor,
                           t: &Tensor,
                           g: &Tensor|
                 -> Result<(Vec<f32>, Vec<f32>)> {
                    let (xr, tr, gr) = (x.read(), t.read(), g.read());
                    let loss = d.cross_entropy(xr.view(), tr.view(), -100)?;
                    let dx = d.cross_entropy_backward(xr.view(), tr.view(), gr.view(), -100)?;
                    let l = osum::engine::Layout::contiguous(&[rows]);
                    let lx = osum::engine::Layout::contiguous(&[rows, cols]);
                    let loss = d.to_host(osum::engine::View::new(&*loss, &l))?;
                    let dx = d.to_host(osum::engine::View::new(&*dx, &lx))?;
                    Ok((
                        loss.into_vec::<f32>().expect("an f32 buffer"),
                        dx.into_vec::<f32>().expect("an f32 buffer"),
                    ))
                };
                let (lc, dc) = run(&cpu, &xc, &targets.0, &gc)?;
                let (la, da) = run(&dev, &xa, &targets.1, &ga)?;
                close(&la, &lc, tol, 1e-5, &format!("cross_entropy {rows}x{cols}"));
                close(
                    &da,
                    &dc,
                    tol,
                    1e-5,
                    &format!("cross_entropy_backward {rows}x{cols}"),
                );
            }
        }
        Ok(())
    }

    #[test]
    fn ascend_adamw_steps_equal_the_cpu() -> Result<()> {
        for (i, n) in [1usize, 7, 2049, 100_003].into_iter().enumerate() {
            let seed = 170 + i as u64;
            let (pc, pa) = both(&random(seed, n, 1.0), &[n])?;
            let (mc, ma) = both(&vec![0.0; n], &[n])?;
            let (vc, va) = both(&vec![0.0; n], &[n])?;
            for step in 1..=3u64 {
                let (gc, ga) = both(&random(seed * 10 + step, n, 0.1), &[n])?;
                let hp = AdamWParams {
                    lr: 1e-3,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.01,
                    step,
                };
                osum::engine::ops::optim::adamw_step(&pc, &gc, &mc, &vc, &hp)?;
                osum::engine::ops::optim::adamw_step(&pa, &ga, &ma, &va, &hp)?;
            }
            for (a, c, what) in [(&pa, &pc, "param"), (&ma, &mc, "m"), (&va, &vc, "v")] {
                close(
                    &a.to_vec::<f32>()?,
                    &c.to_vec::<f32>()?,
                    0.0,
                    0.0,
                    &format!("adamw {what} n={n}"),
                );
            }
        }
        Ok(())
    }

    /// dq, dk, dv of one device for one shape.
    fn attention_grads(
        dev: &Arc<dyn Device>,
        dims: (usize, usize, usize, usize, usize, usize),
        causal: bool,
        seed: u64,
    ) -> Result<[Vec<f32>; 3]> {
        attention_grads_masked(dev, dims, causal, None, seed).map(|r| r.1)
    }

    /// Forward output and (dq, dk, dv) of one device, with an optional `[tq, tk]` additive mask
    /// broadcast over batch and heads through stride 0.
    fn attention_grads_masked(
        dev: &Arc<dyn Device>,
        (b, hq, hkv, tq, tk, d): (usize, usize, usize, usize, usize, usize),
        causal: bool,
        mask: Option<&[f32]>,
        seed: u64,
    ) -> Result<(Vec<f32>, [Vec<f32>; 3])> {
        use osum::engine::{AttentionParams, Layout, View};
        let p = AttentionParams {
            scale: 1.0 / (d as f32).sqrt(),
            causal,
        };
        let t = |s: u64, shape: &[usize]| {
            Tensor::from_vec(random(seed + s, shape.iter().product(), 1.0), shape, dev)
        };
        let (q, k, v, g) = (
            t(0, &[b, hq, tq, d])?,
            t(1, &[b, hkv, tk, d])?,
            t(2, &[b, hkv, tk, d])?,
            t(3, &[b, hq, tq, d])?,
        );
        let m = mask
            .map(|m| Tensor::from_vec(m.to_vec(), &[tq * tk], dev))
            .transpose()?;
        let mr = m.as_ref().map(|m| m.read());
        let ml = Layout::new(vec![b, hq, tq, tk], vec![0, 0, tk, 1], 0);
        let mv = mr.as_ref().map(|r| View::new(r.view().buf, &ml));
        let (qr, kr, vr, gr) = (q.read(), k.read(), v.read(), g.read());
        let out = dev.attention(qr.view(), kr.view(), vr.view(), mv, &p)?;
        let (dq, dk, dv) =
            dev.attention_backward(qr.view(), kr.view(), vr.view(), mv, gr.view(), &p)?;
        let lq = Layout::contiguous(&[b * hq * tq * d]);
        let lk = Layout::contiguous(&[b * hkv * tk * d]);
        let host = |buf: &osum::engine::Buffer, l: &Layout| -> Result<Vec<f32>> {
            Ok(dev
                .to_host(View::new(&**buf, l))?
                .into_vec::<f32>()
                .expect("an f32 buffer"))
        };
        Ok((
            host(&out, &lq)?,
            [host(&dq, &lq)?, host(&dk, &lk)?, host(&dv, &lk)?],
        ))
    }

    #[test]
    fn ascend_attention_with_a_broadcast_additive_mask_matches_the_cpu() -> Result<()> {
        // A [Tq, Tk] mask broadcast over batch and heads (stride 0) with random values, scattered
        // -inf entries and one fully masked row (whose output and gradients must be 0 on both
        // devices). Tolerance as the unmasked backward test.
        let (cpu, dev) = (cpu_device(), sim());
        for (i, (dims, causal)) in [
            ((2, 4, 2, 37, 101, 40), false),
            ((1, 3, 1, 70, 70, 24), true),
        ]
        .into_iter()
        .enumerate()
        {
            let (tq, tk) = (dims.3, dims.4);
            let mut mask = random(500 + i as u64, tq * tk, 1.0);
            for (j, m) in mask.iter_mut().enumerate() {
                if j % 7 == 3 || j / tk == 2 {
                    *m = f32::NEG_INFINITY;
                }
            }
            let seed = 510 + 10 * i as u64;
            let (ow, want) = attention_grads_masked(&cpu, dims, causal, Some(&mask), seed)?;
            let (og, got) = attention_grads_masked(&dev, dims, causal, Some(&mask), seed)?;
            close(
                &og,
                &ow,
                2e-5,
                2e-4,
                &format!("out {dims:?} masked causal={causal}"),
            );
            for (name, (g, w)) in ["dq", "dk", "dv"].iter().zip(got.iter().zip(&want)) {
                close(
                    g,
                    w,
                    2e-5,
                    2e-4,
                    &format!("{name} {dims:?} masked causal={causal}"),
                );
            }
            // Row 2 of every (batch, head) is fully masked: exactly zero output.
            let d = dims.5;
            for bh in 0..dims.0 * dims.1 {
                let row = &og[(bh * tq + 2) * d..(bh * tq + 3) * d];
                assert!(row.iter().all(|&x| x == 0.0), "fully masked row: {row:?}");
            }
        }
        Ok(())
    }

    #[test]
    fn ascend_attention_backward_matches_the_cpu_on_edge_shapes() -> Result<()> {
        // Ragged lengths against the 64-row / 64-key blocks, odd head dims, GQA ratios 1, 2, 3,
        // decode (one query over many keys), causal and not, causal with Tq > Tk. Tolerance as the forward's
        // (tests/ascend_sim.rs): 2e-5 + 2e-4·|cpu| — both devices sum over keys in f32 in
        // different orders; gradients carry one more product than the output.
        let cases = [
            ((1, 2, 2, 5, 5, 8), false),
            ((1, 2, 2, 5, 5, 8), true),
            ((2, 4, 2, 37, 101, 40), false),
            ((2, 4, 2, 37, 101, 40), true),
            ((1, 6, 2, 70, 70, 24), true),
            ((1, 3, 1, 1, 90, 7), true),
            ((1, 2, 1, 20, 65, 128), false),
            // Causal with more queries than keys: the first 50 rows see no key (0 on both).
            ((1, 2, 1, 70, 20, 16), true),
        ];
        let (cpu, dev) = (cpu_device(), sim());
        for (i, (dims, causal)) in cases.into_iter().enumerate() {
            let seed = 300 + 10 * i as u64;
            let want = attention_grads(&cpu, dims, causal, seed)?;
            let got = attention_grads(&dev, dims, causal, seed)?;
            for (name, (g, w)) in ["dq", "dk", "dv"].iter().zip(got.iter().zip(&want)) {
                close(
                    g,
                    w,
                    2e-5,
                    2e-4,
                    &format!("{name} {dims:?} causal={causal}"),
                );
            }
        }
        Ok(())
    }
}
