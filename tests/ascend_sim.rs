//! The Ascend device on the simulator (`ascend-sim`): our AscendC kernels against the CPU
//! device, the simulator's rule enforcement (deliberately broken kernels), and the named errors
//! of ops without a kernel. Everything here runs on the CPU simulator — a simulation, not an NPU.
//!
//! Tolerances: add/mul/sub/max are the same f32 operation on both devices, so results must be
//! bit-identical. Matmul accumulates in a different order (K tiles of 64 on the cube vs the CPU
//! GEMM's blocking), so |ascend − cpu| ≤ 1e-5·(1 + Σ|a·b|) per element, Σ|a·b| being the
//! magnitude sum of the dot product (the f32 rounding bound of both orders).

mod ascend_sim {
    use osum::engine::{
        cpu_device, device_named, AttentionParams, BinaryOp, DType, Device, Error, Result, Rng,
        Tensor,
    };
    use osum::ffi::{DeviceContext, DeviceMemory, Runtime, Stream};
    use osum::kernels::broken::{self, BrokenKernel};
    use osum::kernels::{self, BinaryKernelOp, GmF32, KernelError};
    use std::sync::Arc;

    fn sim() -> Arc<dyn Device> {
        device_named("ascend-sim").expect("ascend-sim device")
    }

    fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.normal()).collect()
    }

    /// A raw device buffer and stream, for launching kernels directly.
    fn raw_setup() -> (Stream, DeviceMemory) {
        let rt = Runtime::shared().expect("aclInit");
        let ctx = Arc::new(DeviceContext::new(rt, 0).expect("device 0"));
        let mem = DeviceMemory::new(ctx.clone(), 64 * 4).expect("malloc");
        mem.write(0, &[0u8; 256]).expect("h2d");
        (Stream::new(ctx).expect("stream"), mem)
    }

    fn violation(kind: BrokenKernel, blocks: u32) -> String {
        let (stream, mem) = raw_setup();
        let err = broken::launch(kind, blocks, &stream, &mem)
            .expect_err("the simulator must refuse a broken kernel");
        let KernelError::Acl(acl) = &err else {
            panic!("expected an ACL error, got {err}");
        };
        assert_eq!(acl.code, 500002, "{err}");
        // The failure is also reported again at the stream's synchronisation, as on the NPU.
        let sync = stream
            .synchronize()
            .expect_err("sync reports the failed kernel");
        assert_eq!(sync.code, 500002);
        acl.message.clone()
    }

    #[test]
    fn ub_over_capacity_is_caught_with_kernel_and_block() {
        let msg = violation(BrokenKernel::UbOverflow, 2);
        assert!(msg.contains("osum_broken_ub_overflow block 0"), "{msg}");
        assert!(msg.contains("UB") && msg.contains("usable bytes"), "{msg}");
    }

    #[test]
    fn misaligned_copy_is_caught_in_the_block_that_does_it() {
        let msg = violation(BrokenKernel::MisalignedCopy, 3);
        assert!(
            msg.contains("osum_broken_misaligned_copy block 1 of 3"),
            "{msg}"
        );
        assert!(msg.contains("28 bytes is not a multiple of 32"), "{msg}");
    }

    #[test]
    fn queue_discipline_and_gm_bounds_are_enforced() {
        let msg = violation(BrokenKernel::DequeueEmpty, 1);
        assert!(msg.contains("DeQue: queue is empty"), "{msg}");
        let msg = violation(BrokenKernel::Leak, 1);
        assert!(msg.contains("FreeTensor missing"), "{msg}");
        let msg = violation(BrokenKernel::GmOverrun, 1);
        assert!(msg.contains("outside the 56-element GlobalTensor"), "{msg}");
    }

    #[test]
    fn binary_ops_equal_the_cpu_on_ragged_lengths() -> Result<()> {
        let (cpu, dev) = (cpu_device(), sim());
        let mut rng = Rng::new(7);
        // Lengths around the 8-float block, the 4096-float tile and the 2048-per-block split.
        for n in [1usize, 7, 9, 4095, 4097, 2049 * 3 + 5, 100_003] {
            let (a, b) = (random(&mut rng, n), random(&mut rng, n));
            let (ca, cb) = (
                Tensor::from_vec(a.clone(), &[n], &cpu)?,
                Tensor::from_vec(b.clone(), &[n], &cpu)?,
            );
            let (da, db) = (
                Tensor::from_vec(a, &[n], &dev)?,
                Tensor::from_vec(b, &[n], &dev)?,
            );
            assert_eq!(
                da.add(&db)?.to_vec::<f32>()?,
                ca.add(&cb)?.to_vec::<f32>()?,
                "add {n}"
            );
            assert_eq!(
                da.mul(&db)?.to_vec::<f32>()?,
                ca.mul(&cb)?.to_vec::<f32>()?,
                "mul {n}"
            );
            assert_eq!(
                da.sub(&db)?.to_vec::<f32>()?,
                ca.sub(&cb)?.to_vec::<f32>()?,
                "sub {n}"
            );
            assert_eq!(
                da.maximum(&db)?.to_vec::<f32>()?,
                ca.maximum(&cb)?.to_vec::<f32>()?,
                "maximum {n}"
            );
            // Division and minimum are single f32 operations too; comparisons are exact.
            for op in [BinaryOp::Div, BinaryOp::Minimum] {
                assert_eq!(
                    da.binary(op, &db)?.to_vec::<f32>()?,
                    ca.binary(op, &cb)?.to_vec::<f32>()?,
                    "{op:?} {n}"
                );
            }
            for op in [BinaryOp::Lt, BinaryOp::Ge, BinaryOp::Eq, BinaryOp::Ne] {
                let mask = da.binary(op, &db)?;
                assert_eq!(
                    mask.to_vec::<u32>()?,
                    ca.binary(op, &cb)?.to_vec::<u32>()?,
                    "{op:?} {n}"
                );
                assert_eq!(
                    mask.where_cond(&da, &db)?.to_vec::<f32>()?,
                    ca.binary(op, &cb)?.where_cond(&ca, &cb)?.to_vec::<f32>()?,
                    "where after {op:?} {n}"
                );
            }
        }
        Ok(())
    }

    /// f32 → bf16/f16 rounds to nearest even on both devices, including values just above a
    /// tie (f32 0x3db0_8001 → bf16 0x3db1), which half's `bf16::from_f64` rounds down: the
    /// reference is half's f32 converters, which are correctly rounded.
    #[test]
    fn half_casts_round_to_nearest_even_on_both_devices() -> Result<()> {
        let bits: Vec<u32> = vec![
            0x3db0_8001,
            0x3db0_8000,
            0x3db1_8000,
            0x3db1_7fff,
            0xbf80_8001,
            0x4049_0fdb,
            0x3f80_0fff,
            0x3f80_1001,
        ];
        let x: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
        let want_bf16: Vec<u16> = x
            .iter()
            .map(|&v| half::bf16::from_f32(v).to_bits())
            .collect();
        let want_f16: Vec<u16> = x
            .iter()
            .map(|&v| half::f16::from_f32(v).to_bits())
            .collect();
        assert_eq!(
            want_bf16[0], 0x3db1,
            "the reference itself rounds the near-tie up"
        );
        for dev in [cpu_device(), sim()] {
            let t = Tensor::from_vec(x.clone(), &[x.len()], &dev)?;
            let b: Vec<u16> = t
                .to_dtype(DType::BF16)?
                .to_vec::<half::bf16>()?
                .iter()
                .map(|h| h.to_bits())
                .collect();
            let f: Vec<u16> = t
                .to_dtype(DType::F16)?
                .to_vec::<half::f16>()?
                .iter()
                .map(|h| h.to_bits())
                .collect();
            assert_eq!(b, want_bf16, "bf16 on {}", dev.name());
            assert_eq!(f, want_f16, "f16 on {}", dev.name());
        }
        Ok(())
    }

    /// Comparisons, selection and casts of the integer and special values the vector and
    /// scalar paths must agree with the CPU on: NaN, ±inf, saturating float → int, u32 above
    /// 2³¹, negative i64, and half data selected bit for bit.
    #[test]
    fn compare_where_and_integer_casts_equal_the_cpu_on_special_values() -> Result<()> {
        let (cpu, dev) = (cpu_device(), sim());
        let f = vec![
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -1.5,
            -0.0,
            0.0,
            3.7,
            4.5e9,
            -2.0e19,
            2.0e19,
            16_777_217.0,
        ];
        let u: Vec<u32> = vec![
            0,
            1,
            2_147_483_648,
            u32::MAX,
            7,
            3_000_000_000,
            5,
            9,
            0,
            1,
            2,
        ];
        let i: Vec<i64> = vec![-5, 0, i64::MAX, i64::MIN, 7, -1, 1 << 40, 3, 0, -9, 2];
        let n = f.len();
        let both = |dev: &Arc<dyn Device>| -> Result<(Tensor, Tensor, Tensor)> {
            Ok((
                Tensor::from_vec(f.clone(), &[n], dev)?,
                Tensor::from_vec(u.clone(), &[n], dev)?,
                Tensor::from_vec(i.clone(), &[n], dev)?,
            ))
        };
        let (cf, cu, ci) = both(&cpu)?;
        let (df, du, di) = both(&dev)?;
        for dt in [DType::U32, DType::I64, DType::F16, DType::BF16] {
            for (c, d) in [(&cf, &df), (&cu, &du), (&ci, &di)] {
                let (x, y) = (c.to_dtype(dt)?.to_dtype(DType::F32)?, d.to_dtype(dt)?);
                let y = y.to_dtype(DType::F32)?;
                let (xv, yv) = (x.to_vec::<f32>()?, y.to_vec::<f32>()?);
                let same = xv
                    .iter()
                    .zip(&yv)
                    .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
                assert!(
                    same,
                    "{:?} -> {dt:?}: cpu {xv:?}, ascend-sim {yv:?}",
                    c.dtype()
                );
            }
        }
        for op in [
            BinaryOp::Lt,
            BinaryOp::Le,
            BinaryOp::Eq,
            BinaryOp::Ne,
            BinaryOp::Gt,
        ] {
            for (c, d) in [(&cf, &df), (&cu, &du), (&ci, &di)] {
                let (c2, d2) = (c.narrow(0, 1, n - 1)?, d.narrow(0, 1, n - 1)?);
                let (c1, d1) = (c.narrow(0, 0, n - 1)?, d.narrow(0, 0, n - 1)?);
                assert_eq!(
                    d1.binary(op, &d2)?.to_vec::<u32>()?,
                    c1.binary(op, &c2)?.to_vec::<u32>()?,
                    "{op:?} on {:?}",
                    c.dtype()
                );
            }
        }
        let cond_c = cu.ne(&Tensor::zeros(&[n], DType::U32, &cpu)?)?;
        let cond_d = du.ne(&Tensor::zeros(&[n], DType::U32, &dev)?)?;
        let (hc, hd) = (cf.to_dtype(DType::BF16)?, df.to_dtype(DType::BF16)?);
        let (zc, zd) = (
            Tensor::zeros(&[n], DType::BF16, &cpu)?,
            Tensor::zeros(&[n], DType::BF16, &dev)?,
        );
        assert_eq!(
            cond_d.where_cond(&hd, &zd)?.to_vec::<half::bf16>()?,
            cond_c.where_cond(&hc, &zc)?.to_vec::<half::bf16>()?
        );
        assert_eq!(
            cond_d
                .where_cond(&di, &du.to_dtype(DType::I64)?)?
                .to_vec::<i64>()?,
            cond_c
                .where_cond(&ci, &cu.to_dtype(DType::I64)?)?
                .to_vec::<i64>()?
        );
        Ok(())
    }

    #[test]
    fn binary_kernel_counts_its_traffic() {
        let (stream, _) = raw_setup();
        let rt = Runtime::shared().expect("aclInit");
        let ctx = Arc::new(DeviceContext::new(rt, 0).expect("device 0"));
        let n = 5000usize;
        let mem = |v: f32| {
            let m = DeviceMemory::new(ctx.clone(), n * 4).expect("malloc");
            let bytes: Vec<u8> = std::iter::repeat_n(v.to_le_bytes(), n).flatten().collect();
            m.write(0, &bytes).expect("h2d");
            m
        };
        let (x, y, z) = (mem(1.5), mem(2.0), mem(0.0));
        let g = |m| GmF32::new("test", m, 0, n).expect("range");
        let stats =
            kernels::binary_f32(&stream, BinaryKernelOp::Mul, g(&x), g(&y), g(&z)).expect("launch");
        let mut out = vec![0u8; n * 4];
        z.read(0, &mut out).expect("d2h");
        assert!(out
            .chunks(4)
            .all(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) == 3.0));
        // 5000 elements: 3 blocks of 1672 (the last 1656); every element in twice, out once.
        assert_eq!(stats.blocks, 3);
        assert_eq!(stats.gm_to_ub_bytes, 2 * n as u64 * 4);
        assert_eq!(stats.ub_to_gm_bytes, n as u64 * 4);
        assert_eq!(stats.cube_macs, 0);
        assert!(stats.vector_elems >= n as u64 && stats.peak_ub_bytes > 0);
    }

    /// `x·Wᵀ` with W `[n, k]`: both devices, compared within the stated bound.
    fn check_linear(m: usize, k: usize, n: usize, seed: u64) -> Result<()> {
        let (cpu, dev) = (cpu_device(), sim());
        let mut rng = Rng::new(seed);
        let (x, w) = (random(&mut rng, m * k), random(&mut rng, n * k));
        let want = Tensor::from_vec(x.clone(), &[m, k], &cpu)?
            .matmul(&Tensor::from_vec(w.clone(), &[n, k], &cpu)?.t()?)?
            .to_vec::<f32>()?;
        let got = Tensor::from_vec(x.clone(), &[m, k], &dev)?
            .matmul(&Tensor::from_vec(w.clone(), &[n, k], &dev)?.t()?)?
            .to_vec::<f32>()?;
        for i in 0..m {
            for j in 0..n {
                let mag: f32 = (0..k).map(|p| (x[i * k + p] * w[j * k + p]).abs()).sum();
                let (g, c) = (got[i * n + j], want[i * n + j]);
                assert!(
                    (g - c).abs() <= 1e-5 * (1.0 + mag),
                    "{m}x{k}x{n} at ({i},{j}): ascend-sim {g} vs cpu {c}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn matmul_matches_the_cpu_on_odd_shapes() -> Result<()> {
        // Not multiples of 16 (fractal rows), 8 (f32 C0), 64 (K step) or 128 (tile).
        for (i, &(m, k, n)) in [
            (1, 1, 1),
            (3, 5, 7),
            (17, 9, 33),
            (130, 65, 129),
            (257, 200, 31),
            (5, 300, 260),
        ]
        .iter()
        .enumerate()
        {
            check_linear(m, k, n, 100 + i as u64)?;
        }
        Ok(())
    }

    #[test]
    fn batched_matmul_q_kt_matches_the_cpu() -> Result<()> {
        let (cpu, dev) = (cpu_device(), sim());
        let mut rng = Rng::new(3);
        let (b, h, t, d) = (2, 3, 19, 24);
        let (q, k) = (
            random(&mut rng, b * h * t * d),
            random(&mut rng, b * h * t * d),
        );
        let run = |dev: &Arc<dyn Device>| -> Result<Vec<f32>> {
            let q = Tensor::from_vec(q.clone(), &[b, h, t, d], dev)?;
            let k = Tensor::from_vec(k.clone(), &[b, h, t, d], dev)?;
            q.matmul(&k.transpose(-2, -1)?)?.to_vec::<f32>()
        };
        let (got, want) = (run(&dev)?, run(&cpu)?);
        assert_eq!(got.len(), want.len());
        for (g, c) in got.iter().zip(&want) {
            assert!((g - c).abs() <= 1e-4 * (1.0 + c.abs()), "{g} vs {c}");
        }
        Ok(())
    }

    #[test]
    fn matmul_kernel_counts_cube_work() {
        let rt = Runtime::shared().expect("aclInit");
        let ctx = Arc::new(DeviceContext::new(rt, 0).expect("device 0"));
        let stream = Stream::new(ctx.clone()).expect("stream");
        let (m, k, n) = (130usize, 70usize, 40usize);
        let alloc = |len: usize| {
            let mem = DeviceMemory::new(ctx.clone(), len * 4).expect("malloc");
            mem.zero(len * 4).expect("memset");
            mem
        };
        let (a, bt, c) = (alloc(m * k), alloc(n * k), alloc(m * n));
        let shape = kernels::MatmulShape {
            m,
            n,
            k,
            lda: k,
            ldb: k,
            ldc: n,
        };
        let stats = kernels::matmul_f32(
            &stream,
            &shape,
            GmF32::new("t", &a, 0, m * k).unwrap(),
            GmF32::new("t", &bt, 0, n * k).unwrap(),
            GmF32::new("t", &c, 0, m * n).unwrap(),
        )
        .expect("launch");
        assert_eq!(stats.cube_macs, (m * n * k) as u64);
        assert_eq!(stats.l0c_to_gm_bytes, (m * n * 4) as u64);
        // A is read once per N tile (1 here), Bt once per M tile (2 here).
        assert_eq!(stats.gm_to_l1_bytes, ((m * k + 2 * n * k) * 4) as u64);
        assert!(stats.peak_l0a_bytes <= 64 * 1024 && stats.peak_l0c_bytes <= 128 * 1024);
        assert_eq!(stats.vector_elems, 0);
    }

    /// Attention on both devices; |ascend − cpu| ≤ 1e-5 + 1e-4·|cpu| (f32 online softmax in key
    /// blocks of 64 vs the CPU's own tiling: different summation order only).
    fn check_attention(
        (b, hq, hkv, tq, tk, d): (usize, usize, usize, usize, usize, usize),
        causal: bool,
        seed: u64,
    ) -> Result<()> {
        let (cpu, dev) = (cpu_device(), sim());
        let mut rng = Rng::new(seed);
        let q = random(&mut rng, b * hq * tq * d);
        let k = random(&mut rng, b * hkv * tk * d);
        let v = random(&mut rng, b * hkv * tk * d);
        let p = AttentionParams {
            scale: 1.0 / (d as f32).sqrt(),
            causal,
        };
        let run = |dev: &Arc<dyn Device>| -> Result<Vec<f32>> {
            let q = Tensor::from_vec(q.clone(), &[b, hq, tq, d], dev)?;
            let k = Tensor::from_vec(k.clone(), &[b, hkv, tk, d], dev)?;
            let v = Tensor::from_vec(v.clone(), &[b, hkv, tk, d], dev)?;
            q.attention(&k, &v, None, &p)?.to_vec::<f32>()
        };
        let (got, want) = (run(&dev)?, run(&cpu)?);
        assert_eq!(got.len(), want.len());
        for (i, (g, c)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - c).abs() <= 1e-5 + 1e-4 * c.abs(),
                "{:?} causal={causal} at {i}: ascend-sim {g} vs cpu {c}",
                (b, hq, hkv, tq, tk, d)
            );
        }
        Ok(())
    }

    #[test]
    fn flash_attention_matches_the_cpu_on_edge_shapes() -> Result<()> {
        // Lengths not multiples of the 64-row/64-key tiles, odd head dims, GQA ratios 1, 2, 3,
        // decode (one query over a long cache) and prefill with the causal mask.
        let cases = [
            ((1, 2, 2, 5, 5, 8), false),
            ((1, 2, 2, 5, 5, 8), true),
            ((2, 4, 2, 37, 101, 40), false),
            ((2, 4, 2, 37, 101, 40), true),
            ((1, 6, 2, 130, 130, 24), true),
            ((1, 3, 1, 1, 200, 7), true),
            ((1, 2, 1, 70, 65, 128), false),
        ];
        for (i, (dims, causal)) in cases.into_iter().enumerate() {
            check_attention(dims, causal, 200 + i as u64)?;
        }
        Ok(())
    }

    /// Half-precision Q/K/V for [`check_half_attention`]: the kernel's element type.
    #[derive(Debug, Clone, Copy)]
    enum Half {
        F16,
        Bf16,
    }

    impl Half {
        /// Unit roundoff of the type (2⁻¹¹ f16, 2⁻⁸ bf16): the relative error of rounding P.
        fn unit_roundoff(self) -> f32 {
            match self {
                Half::F16 => 2f32.powi(-11),
                Half::Bf16 => 2f32.powi(-8),
            }
        }
        /// `x` rounded to the type (round to nearest even) and widened back to f32.
        fn round(self, x: &[f32]) -> Vec<f32> {
            x.iter()
                .map(|&v| match self {
                    Half::F16 => half::f16::from_f32(v).to_f32(),
                    Half::Bf16 => half::bf16::from_f32(v).to_f32(),
                })
                .collect()
        }
        /// A tensor of the type on `dev` holding `x` (already representable).
        fn tensor(self, x: &[f32], shape: &[usize], dev: &Arc<dyn Device>) -> Result<Tensor> {
            match self {
                Half::F16 => Tensor::from_vec(
                    x.iter().map(|&v| half::f16::from_f32(v)).collect(),
                    shape,
                    dev,
                ),
                Half::Bf16 => Tensor::from_vec(
                    x.iter().map(|&v| half::bf16::from_f32(v)).collect(),
                    shape,
                    dev,
                ),
            }
        }
    }

    /// Attention with f16/bf16 q/k/v on ascend-sim (`osum_flash_attention_f16/_bf16`: half
    /// operands on the cube, f32 accumulate and softmax, P rounded to the half type for P·V,
    /// f32 output) against the CPU device on the same values. The CPU device takes f32 q/k/v
    /// only, so its reference runs on the half inputs widened to f32 (exactly the same numbers).
    ///
    /// Tolerance: S = Q·Kᵀ is exact products summed in f32 on both sides, so the kernel's only
    /// extra rounding is P → half before P·V (the row sum l uses the f32 P). Each term p_j·v_j
    /// then carries a relative error ≤ u (the unit roundoff), so |ΔO| ≤ u·Σ_j (p_j/l)|v_j| ≤
    /// u·max|v|; f16 also flushes p_j < 2⁻¹⁴ to subnormals with absolute error ≤ 2⁻²⁵, adding at
    /// most Tk·2⁻²⁵·max|v| (l ≥ 1). On top, the f32 tolerance of [`check_attention`]. For
    /// unit-normal v (max|v| ≈ 4) this is ≈ 2e-3 (f16) and ≈ 1.6e-2 (bf16). Returns the largest
    /// |ascend − cpu| seen.
    fn check_half_attention(
        dtype: Half,
        (b, hq, hkv, tq, tk, d): (usize, usize, usize, usize, usize, usize),
        (causal, masked): (bool, bool),
        seed: u64,
    ) -> Result<f32> {
        let (cpu, dev) = (cpu_device(), sim());
        let mut rng = Rng::new(seed);
        let q = dtype.round(&random(&mut rng, b * hq * tq * d));
        let k = dtype.round(&random(&mut rng, b * hkv * tk * d));
        let v = dtype.round(&random(&mut rng, b * hkv * tk * d));
        let p = AttentionParams {
            scale: 1.0 / (d as f32).sqrt(),
            causal,
        };
        let (qs, kvs) = ([b, hq, tq, d], [b, hkv, tk, d]);
        // Optional f32 key-padding mask `[B, 1, 1, Tk]` broadcast over heads and queries: every
        // third key hidden (−∞), the others biased by random values (f32 on both devices).
        let mask_vals: Vec<f32> = random(&mut rng, b * tk)
            .iter()
            .enumerate()
            .map(|(i, x)| {
                if i % 3 == 1 {
                    f32::NEG_INFINITY
                } else {
                    0.5 * x
                }
            })
            .collect();
        let mask_on = |dev: &Arc<dyn Device>| -> Result<Option<Tensor>> {
            if !masked {
                return Ok(None);
            }
            let m = Tensor::from_vec(mask_vals.clone(), &[b, 1, 1, tk], dev)?;
            Ok(Some(m.broadcast_as(&[b, hq, tq, tk])?))
        };
        let (dev_mask, cpu_mask) = (mask_on(&dev)?, mask_on(&cpu)?);
        let (qh, kh, vh) = (
            dtype.tensor(&q, &qs, &dev)?,
            dtype.tensor(&k, &kvs, &dev)?,
            dtype.tensor(&v, &kvs, &dev)?,
        );
        let (buf, launches) = kernels::collect_launches(|| {
            let (qr, kr, vr) = (qh.read(), kh.read(), vh.read());
            let mr = dev_mask.as_ref().map(|m| m.read());
            let mv = mr.as_ref().map(|r| r.view());
            dev.attention(qr.view(), kr.view(), vr.view(), mv, &p)
        });
        // One launch of the half kernel: no cast or copy launch converts the inputs first.
        let name = match dtype {
            Half::F16 => "osum_flash_attention_f16",
            Half::Bf16 => "osum_flash_attention_bf16",
        };
        assert_eq!(
            launches.iter().map(|l| l.kernel).collect::<Vec<_>>(),
            [name]
        );
        // The cube is fed 2-byte operands: the same MACs as the f32 kernel on the same shape,
        // half of its GM -> L1 bytes, and no more L1 -> L0 bytes (whole 512-byte fractals move:
        // 16 x 16 half vs 16 x 8 f32, so a K that is not a multiple of 16 pads the half ones).
        let (f32_out, f32_launches) = kernels::collect_launches(|| {
            let t = |x: &[f32], sh: &[usize]| Tensor::from_vec(x.to_vec(), sh, &dev);
            t(&q, &qs)?.attention(&t(&k, &kvs)?, &t(&v, &kvs)?, dev_mask.as_ref(), &p)
        });
        f32_out?;
        let (h, f) = (launches[0].stats, f32_launches[0].stats);
        assert_eq!(f32_launches[0].kernel, "osum_flash_attention_f32");
        assert_eq!(h.cube_macs, f.cube_macs);
        assert_eq!(2 * h.gm_to_l1_bytes, f.gm_to_l1_bytes);
        assert!(h.l1_to_l0_bytes <= f.l1_to_l0_bytes, "{h:?} vs {f:?}");
        let got_t = Tensor::from_buffer(buf?, &qs, &dev)?;
        assert_eq!(got_t.dtype(), DType::F32, "half attention returns f32");
        let got = got_t.to_vec::<f32>()?;
        let want = Tensor::from_vec(q, &qs, &cpu)?
            .attention(
                &Tensor::from_vec(k, &kvs, &cpu)?,
                &Tensor::from_vec(v.clone(), &kvs, &cpu)?,
                cpu_mask.as_ref(),
                &p,
            )?
            .to_vec::<f32>()?;
        let vmax = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        let subnormal = match dtype {
            Half::F16 => tk as f32 * 2f32.powi(-25),
            Half::Bf16 => 0.0,
        };
        let half_tol = (dtype.unit_roundoff() + subnormal) * vmax;
        assert_eq!(got.len(), want.len());
        let mut max_err = 0f32;
        for (i, (g, c)) in got.iter().zip(&want).enumerate() {
            let err = (g - c).abs();
            max_err = max_err.max(err);
            assert!(
                err <= half_tol + 1e-5 + 1e-4 * c.abs(),
                "{dtype:?} {:?} causal={causal} masked={masked} at {i}: ascend-sim {g} vs cpu {c} (tol {half_tol})",
                (b, hq, hkv, tq, tk, d)
            );
        }
        Ok(max_err)
    }

    #[test]
    fn half_flash_attention_matches_the_cpu_within_the_rounding_of_p() -> Result<()> {
        // The f32 test's edge shapes: lengths not multiples of the 64-row/64-key tiles, odd head
        // dim 7, GQA ratios 1, 2, 3, decode, causal and not, head dim 128 (largest L0 tiles).
        // Plus a broadcast additive mask with GQA 2, causal and not.
        let cases = [
            ((1, 2, 2, 5, 5, 8), (false, false)),
            ((1, 2, 2, 5, 5, 8), (true, false)),
            ((2, 4, 2, 37, 101, 40), (false, false)),
            ((2, 4, 2, 37, 101, 40), (true, false)),
            ((1, 6, 2, 130, 130, 24), (true, false)),
            ((1, 3, 1, 1, 200, 7), (true, false)),
            ((1, 2, 1, 70, 65, 128), (false, false)),
            ((2, 4, 2, 37, 101, 40), (false, true)),
            ((2, 4, 2, 37, 101, 40), (true, true)),
        ];
        for dtype in [Half::F16, Half::Bf16] {
            let mut worst = 0f32;
            for (i, (dims, flags)) in cases.into_iter().enumerate() {
                worst = worst.max(check_half_attention(dtype, dims, flags, 300 + i as u64)?);
            }
            eprintln!("{dtype:?} attention: max |ascend-sim - cpu| = {worst:e}");
        }
        Ok(())
    }

    #[test]
    fn half_attention_with_mixed_dtypes_is_a_named_error() -> Result<()> {
        let dev = sim();
        let p = AttentionParams {
            scale: 1.0,
            causal: false,
        };
        let q = Tensor::zeros(&[1, 1, 2, 8], DType::F16, &dev)?;
        let k = Tensor::zeros(&[1, 1, 2, 8], DType::F32, &dev)?;
        let (qr, kr) = (q.read(), k.read());
        let err = dev.attention(qr.view(), kr.view(), kr.view(), None, &p);
        match err {
            Err(e @ Error::UnsupportedCase { .. }) => {
                assert!(e.to_string().contains("attention"), "{e}")
            }
            other => panic!("expected a named error, got {:?}", other.map(|_| ())),
        }
        Ok(())
    }

    #[test]
    fn softmax_matches_the_cpu_on_ragged_and_long_rows() -> Result<()> {
        // Same f32 formula, different summation order for the row sum (the kernel sums chunks
        // of up to 8192 sequentially): |ascend − cpu| ≤ 1e-7 + (1e-6 + cols·2⁻²⁴)·|cpu|, the
        // worst-case relative error of an f32 sum of `cols` positive terms.
        let (cpu, dev) = (cpu_device(), sim());
        let mut rng = Rng::new(11);
        for (rows, cols) in [(1usize, 1usize), (3, 7), (45, 100), (2, 8193), (1, 49_152)] {
            let x: Vec<f32> = random(&mut rng, rows * cols)
                .iter()
                .map(|v| 4.0 * v)
                .collect();
            let want = Tensor::from_vec(x.clone(), &[rows, cols], &cpu)?
                .softmax()?
                .to_vec::<f32>()?;
            let got = Tensor::from_vec(x, &[rows, cols], &dev)?
                .softmax()?
                .to_vec::<f32>()?;
            for (g, c) in got.iter().zip(&want) {
                let rel = 1e-6 + cols as f32 * f32::EPSILON / 2.0;
                assert!(
                    (g - c).abs() <= 1e-7 + rel * c.abs(),
                    "{rows}x{cols}: {g} vs {c}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn attention_cases_without_a_kernel_are_named() -> Result<()> {
        let dev = sim();
        let t = |shape: &[usize]| Tensor::zeros(shape, osum::engine::DType::F32, &dev);
        let p = AttentionParams {
            scale: 1.0,
            causal: false,
        };
        let err =
            t(&[1, 1, 2, 200])?.attention(&t(&[1, 1, 2, 200])?, &t(&[1, 1, 2, 200])?, None, &p);
        assert!(matches!(err, Err(Error::UnsupportedCase { .. })), "{err:?}");
        Ok(())
    }

    #[test]
    fn cases_without_a_kernel_are_named_errors() -> Result<()> {
        let dev = sim();
        let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2], &dev)?;
        let named = |r: Result<Tensor>, op: &str| match r {
            Err(e @ (Error::Unsupported { .. } | Error::UnsupportedCase { .. })) => {
                let msg = e.to_string();
                assert!(msg.contains(op) && msg.contains("ascend-sim"), "{msg}");
            }
            other => panic!("{op}: expected a named unsupported error, got {other:?}"),
        };
        // The strided-copy kernel takes up to 8 dims.
        let deep = Tensor::zeros(&[2; 9], osum::engine::DType::F32, &dev)?.transpose(0, 8)?;
        named(deep.contiguous(), "copy");
        // Former gaps, now kernels: strided softmax (copy first), div, casts to u32.
        assert_eq!(
            x.t()?.softmax()?.to_vec::<f32>()?,
            x.t()?.contiguous()?.softmax()?.to_vec::<f32>()?
        );
        assert_eq!(x.div(&x)?.to_vec::<f32>()?, vec![1.0; 4]);
        assert_eq!(
            x.to_dtype(osum::engine::DType::U32)?.to_vec::<u32>()?,
            vec![1, 2, 3, 4]
        );
        // Strided and broadcast operands are made dense by the device's copy kernel first.
        assert_eq!(x.add(&x.t()?)?.to_vec::<f32>()?, vec![2.0, 5.0, 5.0, 8.0]);
        let row = Tensor::from_vec(vec![10.0f32, 20.0], &[1, 2], &dev)?;
        assert_eq!(
            x.add(&row.broadcast_as(&[2, 2])?)?.to_vec::<f32>()?,
            vec![11.0, 22.0, 13.0, 24.0]
        );
        // Memory ops work: upload, strided download, zeros.
        assert_eq!(x.t()?.to_vec::<f32>()?, vec![1.0, 3.0, 2.0, 4.0]);
        assert_eq!(
            Tensor::zeros(&[3], osum::engine::DType::F32, &dev)?.to_vec::<f32>()?,
            vec![0.0; 3]
        );
        Ok(())
    }

    #[test]
    fn tensors_on_ascend_sim_and_cpu_do_not_mix() -> Result<()> {
        let x = Tensor::from_vec(vec![1.0f32; 4], &[4], &sim())?;
        let y = Tensor::from_vec(vec![1.0f32; 4], &[4], &cpu_device())?;
        assert!(matches!(x.add(&y), Err(Error::DeviceMismatch { .. })));
        Ok(())
    }
}
