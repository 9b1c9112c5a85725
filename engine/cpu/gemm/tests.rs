//! Every instruction set (forced through `gemm_with`) against an f64 reference: ragged tile
//! edges, K beyond KC, transposed and strided operands, half-precision rhs, the GEMV paths.

use super::*;

/// Deterministic values in [-1, 1).
fn vals(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Which layout an operand is stored in.
#[derive(Clone, Copy, Debug)]
enum Store {
    RowMajor,
    Transposed,
    /// Row-major inside a wider buffer (row stride = cols + 3), offset by 2.
    Narrowed,
}

/// A `[rows, cols]` matrix with values `v` (row-major) stored as `st`: (buffer, rs, cs).
fn store(v: &[f32], rows: usize, cols: usize, st: Store) -> (Vec<f32>, usize, usize) {
    match st {
        Store::RowMajor => (v.to_vec(), cols, 1),
        Store::Transposed => {
            let mut t = vec![0.0; v.len()];
            for i in 0..rows {
                for j in 0..cols {
                    t[j * rows + i] = v[i * cols + j];
                }
            }
            (t, 1, rows)
        }
        Store::Narrowed => {
            let mut t = vec![f32::NAN; rows * (cols + 3) + 2];
            for i in 0..rows {
                t[2 + i * (cols + 3)..2 + i * (cols + 3) + cols]
                    .copy_from_slice(&v[i * cols..][..cols]);
            }
            (t[2..].to_vec(), cols + 3, 1)
        }
    }
}

/// What C starts as (mirrors [`Start`], whose bias row the check owns).
#[derive(Clone, Copy, Debug)]
enum C0 {
    Zero,
    Keep,
    Bias,
}

impl C0 {
    /// One of the three, cycling with `i`.
    fn nth(i: usize) -> C0 {
        [C0::Zero, C0::Keep, C0::Bias][i % 3]
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    F32,
    Bf16,
    F16,
}

#[allow(clippy::too_many_arguments)]
fn check(
    isa: Isa,
    shape: (usize, usize, usize),
    sa: Store,
    sb: Store,
    kind: Kind,
    c0: C0,
    parallel: bool,
) {
    check_in(isa, Precision::F32, shape, sa, sb, kind, c0, parallel);
}

/// [`check`] in a given precision: for bf16 the reference multiplies the operands rounded to
/// bf16 (what the kernel multiplies), so the same f32-accumulation tolerance applies.
#[allow(clippy::too_many_arguments)]
fn check_in(
    isa: Isa,
    precision: Precision,
    (m, k, n): (usize, usize, usize),
    sa: Store,
    sb: Store,
    kind: Kind,
    c0: C0,
    parallel: bool,
) {
    let a_in = vals(m * k, 1 + m as u64);
    let mut bv = vals(k * n, 2 + n as u64);
    // The reference sees exactly the values the half types hold.
    match kind {
        Kind::F32 => {}
        Kind::Bf16 => bv
            .iter_mut()
            .for_each(|x| *x = half::bf16::from_f32(*x).to_f32()),
        Kind::F16 => bv
            .iter_mut()
            .for_each(|x| *x = half::f16::from_f32(*x).to_f32()),
    }
    let (a, a_rs, a_cs) = store(&a_in, m, k, sa);
    let round = |x: &mut f32| *x = half::bf16::from_f32(*x).to_f32();
    let mut av = a_in.clone();
    if precision == Precision::Bf16 {
        av.iter_mut().for_each(round);
    }
    let (b, b_rs, b_cs) = store(&bv, k, n, sb);
    let (bh, bf): (Vec<half::bf16>, Vec<half::f16>) = (
        b.iter().map(|&x| half::bf16::from_f32(x)).collect(),
        b.iter().map(|&x| half::f16::from_f32(x)).collect(),
    );
    let b_gemm = b.clone();
    if precision == Precision::Bf16 {
        bv.iter_mut().for_each(round);
    }
    let elems = match kind {
        Kind::F32 => Weights::F32(&b_gemm),
        Kind::Bf16 => Weights::BF16(&bh),
        Kind::F16 => Weights::F16(&bf),
    };
    let c_rs = n + 1;
    let (before, bias) = (c0, vals(n, 4));
    let c0 = vals(m * c_rs, 3);
    let mut c = c0.clone();
    let rhs = Rhs {
        elems,
        rs: b_rs,
        cs: b_cs,
    };
    let start = match before {
        C0::Zero => Start::Zero,
        C0::Keep => Start::Keep,
        C0::Bias => Start::Row(&bias),
    };
    gemm_with(
        isa,
        precision,
        m,
        k,
        n,
        &a,
        a_rs,
        a_cs,
        rhs,
        &mut c,
        c_rs,
        (start, Finish::None),
        parallel,
    );
    for i in 0..m {
        for j in 0..n {
            let dot: f64 = (0..k)
                .map(|p| av[i * k + p] as f64 * bv[p * n + j] as f64)
                .sum();
            let want = dot
                + match before {
                    C0::Zero => 0.0,
                    C0::Keep => c0[i * c_rs + j] as f64,
                    C0::Bias => bias[j] as f64,
                };
            let scale: f64 = (0..k)
                .map(|p| (av[i * k + p] as f64 * bv[p * n + j] as f64).abs())
                .sum::<f64>()
                + 1.0;
            let got = c[i * c_rs + j] as f64;
            assert!(
                (got - want).abs() <= 1e-5 * scale,
                "{isa:?} {m}x{k}x{n} {sa:?} {sb:?} {kind:?} {before:?}: ({i},{j}) got {got} want {want}"
            );
        }
        // The padding column between rows is never touched.
        assert_eq!(c[i * c_rs + n], c0[i * c_rs + n]);
    }
}

#[test]
fn every_isa_matches_f64_on_ragged_shapes_and_layouts() {
    let shapes = [
        (1, 1, 1),
        (13, 7, 33),
        (25, 300, 65),
        (37, 520, 17),
        (9, 33, 100),
        (50, 64, 1),
        (300, 20, 50),
        (400, 40, 70),
        (397, 600, 9),
        (9, 3, 4200),
        // A rank-sized depth, width (skinny.rs) and height, large enough to run in parallel.
        (700, 8, 300),
        (600, 200, 8),
        (12, 300, 700),
    ];
    let stores = [Store::RowMajor, Store::Transposed, Store::Narrowed];
    for isa in Isa::available() {
        for &shape in &shapes {
            for (t, &sa) in stores.iter().enumerate() {
                let sb = stores[(t + shape.0) % 3];
                check(isa, shape, sa, sb, Kind::F32, C0::nth(t), true);
                check(isa, shape, sb, sa, Kind::F32, C0::nth(t + 1), false);
            }
            check(
                isa,
                shape,
                Store::RowMajor,
                Store::Transposed,
                Kind::Bf16,
                C0::Bias,
                true,
            );
            check(
                isa,
                shape,
                Store::Transposed,
                Store::RowMajor,
                Kind::F16,
                C0::Keep,
                true,
            );
        }
    }
}

#[test]
fn bf16_products_match_f64_on_bf16_rounded_operands() {
    if !Precision::Bf16.supported() {
        eprintln!("skipped: this CPU has no AVX512_BF16");
        return;
    }
    // Blocked shapes only (M > GEMV_MAX_M, N > skinny::SKINNY): odd K (a zero-padded last
    // pair), K beyond KC, ragged tiles, the wide (M ≤ 384) and tall drivers, every layout.
    let shapes = [
        (13, 7, 33),
        (25, 301, 65),
        (37, 1030, 17),
        (300, 20, 50),
        (397, 600, 70),
        (9, 3, 4200),
    ];
    let stores = [Store::RowMajor, Store::Transposed, Store::Narrowed];
    // Both bf16 kernels where the CPU has AMX (the AMX one is then the default).
    let kernels: &[bool] = if super::kernel_amx_bf16::available() {
        &[false, true]
    } else {
        &[true]
    };
    for &avoid_amx in kernels {
        super::blocked::AVOID_AMX.with(|a| a.set(avoid_amx));
        for &shape in &shapes {
            for (t, &sa) in stores.iter().enumerate() {
                let sb = stores[(t + shape.0) % 3];
                for kind in [Kind::F32, Kind::Bf16, Kind::F16] {
                    let isa = Isa::Avx512;
                    check_in(isa, Precision::Bf16, shape, sa, sb, kind, C0::nth(t), true);
                }
            }
        }
    }
    super::blocked::AVOID_AMX.with(|a| a.set(false));
}

#[test]
fn narrow_products_stay_f32_in_bf16_precision() {
    if !Precision::Bf16.supported() {
        eprintln!("skipped: this CPU has no AVX512_BF16");
        return;
    }
    // Both skinny cases: A by rows and by columns.
    let cases = [
        ((300, 200, 8), Store::RowMajor),
        ((300, 200, 8), Store::Transposed),
    ];
    for ((m, k, n), sa) in cases {
        let (a, a_rs, a_cs) = store(&vals(m * k, 5), m, k, sa);
        let (b, b_rs, b_cs) = store(&vals(k * n, 6), k, n, Store::RowMajor);
        let run = |precision| {
            let mut c = vec![0f32; m * n];
            let rhs = Rhs {
                elems: Weights::F32(&b),
                rs: b_rs,
                cs: b_cs,
            };
            let ends = (Start::Zero, Finish::None);
            gemm_precision(
                precision, m, k, n, &a, a_rs, a_cs, rhs, &mut c, n, ends, true,
            );
            c
        };
        assert_eq!(
            run(Precision::Bf16),
            run(Precision::F32),
            "{m}x{k}x{n} {sa:?}: a narrow product was rounded to bf16"
        );
    }
}

#[test]
fn gemv_paths_match_f64_for_every_weight_type_and_isa() {
    // M ≤ 8 with W stored [N, K] (x·Wᵀ); K with and without a vector-width tail; N with a tail
    // of single rows and enough rows to split across threads.
    for isa in Isa::available() {
        for &(m, k, n) in &[(1, 64, 300), (3, 37, 9), (8, 130, 131), (5, 1, 4)] {
            for kind in [Kind::F32, Kind::Bf16, Kind::F16] {
                check(
                    isa,
                    (m, k, n),
                    Store::Narrowed,
                    Store::Transposed,
                    kind,
                    C0::nth(m),
                    true,
                );
                check(
                    isa,
                    (m, k, n),
                    Store::Transposed,
                    Store::Transposed,
                    kind,
                    C0::nth(m + 2),
                    false,
                );
            }
        }
    }
}

#[test]
fn k_zero_clears_keeps_or_sets_c_to_the_bias() {
    let mut c = vec![5.0; 6];
    sgemm(2, 0, 3, &[], 0, 1, &[], 3, 1, &mut c, 3, true, false);
    assert_eq!(c, vec![5.0; 6]);
    sgemm(2, 0, 3, &[], 0, 1, &[], 3, 1, &mut c, 3, false, false);
    assert_eq!(c, vec![0.0; 6]);
    let none = Rhs {
        elems: Weights::F32(&[]),
        rs: 3,
        cs: 1,
    };
    let bias = [1.0, 2.0, 3.0];
    let (f32_, row) = (Precision::F32, Start::Row(&bias));
    gemm_precision(
        f32_,
        2,
        0,
        3,
        &[],
        0,
        1,
        none,
        &mut c,
        3,
        (row, Finish::None),
        false,
    );
    assert_eq!(c, [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
}
