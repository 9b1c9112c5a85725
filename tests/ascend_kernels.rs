//! Our convolution, LoRA/linear and plain AscendC kernels on the simulator (`ascend-sim`)
//! against the CPU device, on edge shapes. Everything here runs on the CPU simulator — a
//! simulation, not an NPU.
//!
//! Tolerances (stated per test): products accumulate in a different order on the cube (K steps
//! of 64, f32) than in the CPU GEMM, so |ascend − cpu| ≤ 1e-5·(1 + m) per element, m being the
//! magnitude sum Σ|a·b| of that element's dot product (computed on the CPU from |inputs|): the
//! f32 rounding bound of both summation orders. Pure data movement (im2col) must be bit-exact.

mod ascend_kernels {
    use osum::engine::{cpu_device, device_named, Conv2dParams, Device, Result, Rng, Tensor};
    use std::sync::Arc;

    fn sim() -> Arc<dyn Device> {
        device_named("ascend-sim").expect("ascend-sim device")
    }

    fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.normal()).collect()
    }

    fn abs(v: &[f32]) -> Vec<f32> {
        v.iter().map(|x| x.abs()).collect()
    }

    /// |got − want| ≤ 1e-5·(1 + mag) elementwise, with a message naming the case.
    fn assert_close(case: &str, got: &[f32], want: &[f32], mag: &[f32]) {
        assert_eq!(got.len(), want.len(), "{case}: lengths");
        for (i, ((g, w), m)) in got.iter().zip(want).zip(mag).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5 * (1.0 + m),
                "{case} at {i}: ascend-sim {g} vs cpu {w} (magnitude {m})"
            );
        }
    }

    struct ConvCase {
        x: [usize; 4],
        w: [usize; 4],
        p: Conv2dParams,
        bias: bool,
    }

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

    /// conv2d on both devices; the magnitude bound is conv2d(|x|, |w|, |b|) on the CPU.
    fn check_conv(case: &ConvCase, seed: u64) -> Result<()> {
        let (cpu, dev) = (cpu_device(), sim());
        let mut rng = Rng::new(seed);
        let xn: usize = case.x.iter().product();
        let wn: usize = case.w.iter().product();
        let (x, w, b) = (
            random(&mut rng, xn),
            random(&mut rng, wn),
            random(&mut rng, case.w[0]),
        );
        let run = |d: &Arc<dyn Device>, x: &[f32], w: &[f32], b: &[f32]| -> Result<Vec<f32>> {
            let xt = Tensor::from_vec(x.to_vec(), &case.x, d)?;
            let wt = Tensor::from_vec(w.to_vec(), &case.w, d)?;
            let bt = Tensor::from_vec(b.to_vec(), &[case.w[0]], d)?;
            xt.conv2d(&wt, case.bias.then_some(&bt), &case.p)?
                .to_vec::<f32>()
        };
        let got = run(&dev, &x, &w, &b)?;
        let want = run(&cpu, &x, &w, &b)?;
        let mag = run(&cpu, &abs(&x), &abs(&w), &abs(&b))?;
        assert_close(
            &format!("conv2d {:?} {:?} {:?}", case.x, case.w, case.p),
            &got,
            &want,
            &mag,
        );
        Ok(())
    }

    #[test]
    fn ascend_conv2d_matches_the_cpu_on_edge_shapes() -> Result<()> {
        let cases = [
            // Whisper front end shape class (conv1d as height 1): stride 1 and stride 2, pad 1.
            ConvCase {
                x: [1, 5, 1, 37],
                w: [7, 5, 1, 3],
                p: params((1, 1), (0, 1), (1, 1)),
                bias: true,
            },
            ConvCase {
                x: [2, 5, 1, 37],
                w: [7, 5, 1, 3],
                p: params((1, 2), (0, 1), (1, 1)),
                bias: true,
            },
            // The adapter's 4x downsampling conv (3x3, stride 2, no padding), odd sizes.
            ConvCase {
                x: [2, 1, 19, 13],
                w: [6, 1, 3, 3],
                p: params((2, 2), (0, 0), (1, 1)),
                bias: true,
            },
            ConvCase {
                x: [1, 6, 9, 7],
                w: [5, 6, 3, 3],
                p: params((2, 2), (0, 0), (1, 1)),
                bias: false,
            },
            // Stride 2 with padding in both axes, positions not a multiple of the 128 tile, more
            // than 128 output channels (two cube M tiles) and K > 64 (several K steps).
            ConvCase {
                x: [1, 9, 23, 29],
                w: [130, 9, 3, 3],
                p: params((2, 2), (1, 1), (1, 1)),
                bias: true,
            },
            // Dilation, asymmetric kernel, padding larger than the dilated tap offset.
            ConvCase {
                x: [1, 3, 11, 17],
                w: [4, 3, 2, 5],
                p: params((1, 3), (2, 3), (2, 2)),
                bias: true,
            },
            // 1x1 kernel, one output position.
            ConvCase {
                x: [3, 4, 1, 1],
                w: [2, 4, 1, 1],
                p: params((1, 1), (0, 0), (1, 1)),
                bias: true,
            },
        ];
        for (i, c) in cases.iter().enumerate() {
            check_conv(c, 300 + i as u64)?;
        }
        Ok(())
    }

    #[test]
    fn ascend_conv1d_with_long_rows_matches_the_cpu() -> Result<()> {
        // Several 128-position tiles and a ragged last one (L = 301 → 151 outputs at stride 2).
        let (cpu, dev) = (cpu_device(), sim());
        let mut rng = Rng::new(41);
        let (n, c, l, o, k) = (1, 16, 301, 24, 3);
        let (x, w, b) = (
            random(&mut rng, n * c * l),
            random(&mut rng, o * c * k),
            random(&mut rng, o),
        );
        for stride in [1, 2] {
            let run = |d: &Arc<dyn Device>, x: &[f32], w: &[f32], b: &[f32]| -> Result<Vec<f32>> {
                Tensor::from_vec(x.to_vec(), &[n, c, l], d)?
                    .conv1d(
                        &Tensor::from_vec(w.to_vec(), &[o, c, k], d)?,
                        Some(&Tensor::from_vec(b.to_vec(), &[o], d)?),
                        stride,
                        1,
                        1,
                    )?
                    .to_vec::<f32>()
            };
            let (got, want) = (run(&dev, &x, &w, &b)?, run(&cpu, &x, &w, &b)?);
            let mag = run(&cpu, &abs(&x), &abs(&w), &abs(&b))?;
            assert_close(&format!("conv1d stride {stride}"), &got, &want, &mag);
        }
        Ok(())
    }

    #[test]
    fn ascend_im2col_is_exact_and_col2im_is_its_adjoint() -> Result<()> {
        let (cpu, dev) = (cpu_device(), sim());
        let mut rng = Rng::new(5);
        for (i, (x, k, p)) in [
            ([2, 3, 7, 9], (3, 3), params((2, 2), (1, 1), (1, 1))),
            ([1, 2, 1, 40], (1, 5), params((1, 3), (0, 2), (1, 2))),
            ([1, 1, 6, 5], (2, 2), params((1, 1), (0, 0), (1, 1))),
        ]
        .into_iter()
        .enumerate()
        {
            let xs = random(&mut rng, x.iter().product());
            let cols = |d: &Arc<dyn Device>| -> Result<Vec<f32>> {
                Tensor::from_vec(xs.clone(), &x, d)?
                    .im2col(k, &p)?
                    .to_vec::<f32>()
            };
            let want = cols(&cpu)?;
            assert_eq!(cols(&dev)?, want, "im2col case {i}");
            // col2im of a random cols matrix: sums of up to KH·KW terms in another order.
            let (oh, ow) = p.output_hw((x[2], x[3]), k).expect("fits");
            let shape = [x[0], x[1] * k.0 * k.1, oh * ow];
            let ys = random(&mut rng, shape.iter().product());
            let fold = |d: &Arc<dyn Device>, v: &[f32]| -> Result<Vec<f32>> {
                Tensor::from_vec(v.to_vec(), &shape, d)?
                    .col2im(x[1], (x[2], x[3]), k, &p)?
                    .to_vec::<f32>()
            };
            let (got, want) = (fold(&dev, &ys)?, fold(&cpu, &ys)?);
            assert_close(
                &format!("col2im case {i}"),
                &got,
                &want,
                &fold(&cpu, &abs(&ys))?,
            );
        }
        Ok(())
    }

    #[test]
    fn ascend_conv2d_kernel_counts_its_cube_work() -> Result<()> {
        use osum::kernels;
        let dev = sim();
        let (n, c, h, w, o) = (2usize, 4usize, 5usize, 33usize, 20usize);
        let p = params((1, 2), (1, 1), (1, 1));
        let x = Tensor::from_vec(vec![0.5f32; n * c * h * w], &[n, c, h, w], &dev)?;
        let wt = Tensor::from_vec(vec![0.25f32; o * c * 9], &[o, c, 3, 3], &dev)?;
        let y = x.conv2d(&wt, None, &p)?;
        let stats = kernels::last_launch_stats();
        let (oh, ow) = p.output_hw((h, w), (3, 3)).expect("fits");
        assert_eq!(y.shape(), [n, o, oh, ow]);
        // Every output element is one dot product of length C·KH·KW on the cube.
        assert_eq!(stats.cube_macs, (n * o * oh * ow * c * 9) as u64);
        assert_eq!(stats.l0c_to_gm_bytes, (n * o * oh * ow * 4) as u64);
        assert!(stats.peak_ub_bytes <= 192 * 1024 - 8448 && stats.peak_l1_bytes <= 512 * 1024);
        Ok(())
    }

    /// lora_linear (rank > 0) or linear/linear_gelu (rank 0) on both devices; magnitude bound
    /// from the same op on |x|, |W|, |b|, |A|, |B|, |s| on the CPU.
    fn check_linear(
        lead: &[usize],
        (inp, out, rank): (usize, usize, usize),
        gelu: bool,
        seed: u64,
    ) -> Result<()> {
        let (cpu, dev) = (cpu_device(), sim());
        let mut rng = Rng::new(seed);
        let rows: usize = lead.iter().product();
        let xshape: Vec<usize> = lead.iter().copied().chain([inp]).collect();
        let x = random(&mut rng, rows * inp);
        let w = random(&mut rng, out * inp);
        let b = random(&mut rng, out);
        let a = random(&mut rng, rank * inp);
        let bm = random(&mut rng, out * rank);
        let scale = -0.75f32;
        let run = |d: &Arc<dyn Device>, v: [&[f32]; 5], s: f32| -> Result<Vec<f32>> {
            let t = |data: &[f32], shape: &[usize]| Tensor::from_vec(data.to_vec(), shape, d);
            let (xt, wt, bt) = (t(v[0], &xshape)?, t(v[1], &[out, inp])?, t(v[2], &[out])?);
            let y = if rank > 0 {
                xt.lora_linear(
                    &wt,
                    Some(&bt),
                    &t(v[3], &[rank, inp])?,
                    &t(v[4], &[out, rank])?,
                    s,
                )?
            } else if gelu {
                // Leaves do not track gradients: the device fuses GELU into the product.
                xt.linear_gelu(&wt, Some(&bt))?
            } else {
                xt.linear(&wt, Some(&bt))?
            };
            y.to_vec::<f32>()
        };
        let got = run(&dev, [&x, &w, &b, &a, &bm], scale)?;
        let want = run(&cpu, [&x, &w, &b, &a, &bm], scale)?;
        // GELU is 1.13-Lipschitz; the magnitude bound of its argument is the linear one.
        let mag = if gelu {
            let t = |data: &[f32], shape: &[usize]| Tensor::from_vec(data.to_vec(), shape, &cpu);
            t(&abs(&x), &xshape)?
                .linear(&t(&abs(&w), &[out, inp])?, Some(&t(&abs(&b), &[out])?))?
                .to_vec::<f32>()?
                .iter()
                .map(|m| 1.2 * m)
                .collect()
        } else {
            run(
                &cpu,
                [&abs(&x), &abs(&w), &abs(&b), &abs(&a), &abs(&bm)],
                scale.abs(),
            )?
        };
        assert_close(
            &format!("linear {lead:?} {inp}->{out} rank {rank} gelu {gelu}"),
            &got,
            &want,
            &mag,
        );
        Ok(())
    }

    /// Leading dims of x and (in, out, rank).
    type LinearCase<'a> = (&'a [usize], (usize, usize, usize));

    #[test]
    fn ascend_lora_linear_matches_the_cpu_at_ranks_1_8_64() -> Result<()> {
        // Rows/features not multiples of the 16-row fractal, the 8-float C0, the 64 K step or
        // the 128 tile; decode (one row); rank wider than the output.
        let shapes: [LinearCase; 6] = [
            (&[1], (70, 33, 1)),
            (&[7], (300, 200, 8)),
            (&[2, 3], (65, 129, 64)),
            (&[130], (17, 40, 8)),
            (&[1], (256, 16, 64)),
            (&[3, 47], (96, 130, 1)),
        ];
        for (i, (lead, dims)) in shapes.into_iter().enumerate() {
            check_linear(lead, dims, false, 400 + i as u64)?;
        }
        Ok(())
    }

    #[test]
    fn ascend_linear_with_bias_and_fused_gelu_matches_the_cpu() -> Result<()> {
        let shapes: [(&[usize], usize, usize); 4] = [
            (&[1], 9, 5),
            (&[5, 31], 64, 200),
            (&[129], 130, 17),
            (&[2], 1, 1),
        ];
        for (i, (lead, inp, out)) in shapes.into_iter().enumerate() {
            check_linear(lead, (inp, out, 0), false, 500 + i as u64)?;
            check_linear(lead, (inp, out, 0), true, 600 + i as u64)?;
        }
        Ok(())
    }

    #[test]
    fn ascend_lora_kernel_never_forms_the_merged_weight() -> Result<()> {
        // Cube work is exactly x·Wᵀ (m·n·k) + x·Aᵀ (m·r·k, once per N group) + H·Bᵀ (m·n·r):
        // forming B·A would add n·r·k.
        use osum::kernels::{self, lora};
        let dev = sim();
        let (m, k, n, r) = (40usize, 96usize, 300usize, 8usize);
        let t = |len: usize, shape: &[usize]| Tensor::from_vec(vec![0.125f32; len], shape, &dev);
        let y = t(m * k, &[m, k])?.lora_linear(
            &t(n * k, &[n, k])?,
            None,
            &t(r * k, &[r, k])?,
            &t(n * r, &[n, r])?,
            2.0,
        )?;
        let stats = kernels::last_launch_stats();
        let (_, tiling) = lora::lora_linear_tiling(&lora::LoraShape {
            m,
            n,
            k,
            rank: r,
            scale: 2.0,
            bias: false,
            act: lora::Activation::None,
        })
        .expect("tiling");
        let groups = tiling.n_groups as usize;
        assert_eq!(
            stats.cube_macs,
            (m * n * k + groups * m * r * k + m * n * r) as u64
        );
        // 0.125² · 96 + 2 · (0.125² · 96) · 0.125 · 8 = 1.5 + 3 = 4.5 everywhere.
        assert!(y.to_vec::<f32>()?.iter().all(|&v| (v - 4.5).abs() < 1e-5));
        Ok(())
    }

    #[test]
    fn ascend_unary_ops_match_the_cpu() -> Result<()> {
        // The simulator evaluates exp/erf/tanh/… with the C library, the CPU with its own f32
        // approximations (erf within 4e-7): |ascend − cpu| ≤ 2e-6 + 2e-6·|cpu|.
        use osum::engine::UnaryOp as U;
        let (cpu, dev) = (cpu_device(), sim());
        let mut rng = Rng::new(77);
        let n = 1037; // not a multiple of the 8-float block or the tile
        let any: Vec<f32> = (0..n).map(|_| 3.0 * rng.normal()).collect();
        let positive: Vec<f32> = any.iter().map(|x| x.abs() + 0.05).collect();
        let ops = [
            U::Neg,
            U::Exp,
            U::Log,
            U::Sqrt,
            U::Recip,
            U::Abs,
            U::Sqr,
            U::Tanh,
            U::Sigmoid,
            U::Relu,
            U::Gelu,
            U::Silu,
            U::Sin,
            U::Cos,
            U::Step,
            U::GeluDeriv,
            U::SiluDeriv,
            U::Affine {
                mul: -1.5,
                add: 0.25,
            },
            U::Powf(1.7),
        ];
        for op in ops {
            let input = match op {
                U::Log | U::Sqrt | U::Recip | U::Powf(_) => &positive,
                _ => &any,
            };
            let run = |d: &Arc<dyn Device>| -> Result<Vec<f32>> {
                Tensor::from_vec(input.clone(), &[n], d)?
                    .unary(op)?
                    .to_vec::<f32>()
            };
            let (got, want) = (run(&dev)?, run(&cpu)?);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 2e-6 + 2e-6 * w.abs(),
                    "{} at {i} (x = {}): ascend-sim {g} vs cpu {w}",
                    op.name(),
                    input[i]
                );
            }
        }
        Ok(())
    }

    #[test]
    fn ascend_cast_rounds_like_the_cpu_both_ways() -> Result<()> {
        // Round to nearest even on both devices: bit-identical, including a strided source.
        use osum::engine::DType;
        let (cpu, dev) = (cpu_device(), sim());
        let mut rng = Rng::new(9);
        let mut x: Vec<f32> = (0..517).map(|_| 100.0 * rng.normal()).collect();
        x.extend([0.0, -0.0, 65504.0, 70000.0, 1e-8, f32::INFINITY, 3.0e38]);
        let n = x.len();
        for dtype in [DType::F16, DType::BF16] {
            let run = |d: &Arc<dyn Device>| -> Result<(Vec<f32>, Vec<f32>)> {
                let t = Tensor::from_vec(x.clone(), &[n], d)?;
                let round = t.to_dtype(dtype)?.to_dtype(DType::F32)?.to_vec::<f32>()?;
                // A transposed source goes through the gather kernel first.
                let m = Tensor::from_vec(x[..512].to_vec(), &[16, 32], d)?.t()?;
                let strided = m.to_dtype(dtype)?.to_dtype(DType::F32)?.to_vec::<f32>()?;
                Ok((round, strided))
            };
            let (got, want) = (run(&dev)?, run(&cpu)?);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got.0), bits(&want.0), "{dtype:?} round trip");
            assert_eq!(bits(&got.1), bits(&want.1), "{dtype:?} strided round trip");
        }
        Ok(())
    }

    #[test]
    fn ascend_strided_copies_and_concat_are_exact() -> Result<()> {
        let (cpu, dev) = (cpu_device(), sim());
        let mut rng = Rng::new(13);
        let x = random(&mut rng, 2 * 3 * 5 * 7);
        let y = random(&mut rng, 2 * 3 * 4 * 7);
        let run = |d: &Arc<dyn Device>| -> Result<Vec<Vec<f32>>> {
            let xt = Tensor::from_vec(x.clone(), &[2, 3, 5, 7], d)?;
            let yt = Tensor::from_vec(y.clone(), &[2, 3, 4, 7], d)?;
            Ok(vec![
                xt.permute(&[3, 1, 0, 2])?.contiguous()?.to_vec::<f32>()?,
                xt.narrow(2, 1, 3)?.contiguous()?.to_vec::<f32>()?,
                xt.narrow(3, 2, 4)?
                    .transpose(0, 3)?
                    .contiguous()?
                    .to_vec::<f32>()?,
                Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3, 1], d)?
                    .broadcast_as(&[3, 9])?
                    .contiguous()?
                    .to_vec::<f32>()?,
                Tensor::cat(&[xt.clone(), yt.clone()], 2)?.to_vec::<f32>()?,
                Tensor::cat(&[xt.t()?, yt.t()?], 3)?.to_vec::<f32>()?,
            ])
        };
        assert_eq!(run(&dev)?, run(&cpu)?);
        Ok(())
    }

    #[test]
    fn ascend_copy_into_appends_like_a_kv_cache() -> Result<()> {
        let (cpu, dev) = (cpu_device(), sim());
        let run = |d: &Arc<dyn Device>| -> Result<Vec<f32>> {
            let buf = Tensor::zeros(&[2, 6, 3], osum::engine::DType::F32, d)?;
            let new = Tensor::from_vec((0..12).map(|v| v as f32).collect(), &[2, 3, 2], d)?;
            // Write a transposed [2, 2, 3] view into rows 3..5 of the middle dimension.
            buf.write_slice(1, 3, &new.transpose(1, 2)?)?;
            buf.to_vec::<f32>()
        };
        assert_eq!(run(&dev)?, run(&cpu)?);
        Ok(())
    }

    #[test]
    fn ascend_matmul_takes_every_operand_layout() -> Result<()> {
        // Backward-style products: plain rhs (dY·W), transposed lhs (Xᵀ·dY), both, batched and
        // broadcast; rearranged by the copy kernel, then the same cube path (bound as above).
        let (cpu, dev) = (cpu_device(), sim());
        let mut rng = Rng::new(21);
        let (b, m, k, n) = (2usize, 19usize, 70usize, 33usize);
        let a = random(&mut rng, b * m * k);
        let c = random(&mut rng, b * k * n);
        let run = |d: &Arc<dyn Device>, a: &[f32], c: &[f32]| -> Result<Vec<Vec<f32>>> {
            let at = Tensor::from_vec(a.to_vec(), &[b, m, k], d)?;
            let ct = Tensor::from_vec(c.to_vec(), &[b, k, n], d)?;
            let a2 = Tensor::from_vec(a[..m * k].to_vec(), &[k, m], d)?;
            Ok(vec![
                at.matmul(&ct)?.to_vec::<f32>()?,
                a2.t()?
                    .matmul(&ct.narrow(0, 0, 1)?.squeeze(0)?)?
                    .to_vec::<f32>()?,
                ct.transpose(1, 2)?
                    .matmul(&at.transpose(1, 2)?)?
                    .to_vec::<f32>()?,
                at.matmul(&ct.narrow(0, 1, 1)?.broadcast_as(&[b, k, n])?)?
                    .to_vec::<f32>()?,
            ])
        };
        let (got, want) = (run(&dev, &a, &c)?, run(&cpu, &a, &c)?);
        let mag = run(&cpu, &abs(&a), &abs(&c))?;
        for (i, ((g, w), m)) in got.iter().zip(&want).zip(&mag).enumerate() {
            assert_close(&format!("matmul layout case {i}"), g, w, m);
        }
        Ok(())
    }
}
