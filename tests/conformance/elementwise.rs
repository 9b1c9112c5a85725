//! Conformance cases: creation, host round-trips, views, casts, elementwise ops, reductions,
//! and the autograd contract (accumulation, no_grad, detach, frozen tensors, missing backward).

use super::*;
use osum::engine::{BinaryOp, DType, Error, ReduceOp, UnaryOp};

macro_rules! elementwise_cases {
    ($dev:path) => {
        conformance_cases!(
            $dev,
            elementwise,
            [
                host_round_trip_and_creation,
                views_share_storage_and_contiguous_copies_only_when_needed,
                casts_round_to_nearest_and_round_trip,
                unary_ops_match_reference_on_strided_input,
                unary_ops_accept_half_inputs,
                binary_ops_broadcast_like_numpy,
                comparisons_and_where_select_elements,
                reductions_match_reference_on_every_axis,
                grad_unary_ops,
                grad_binary_ops_reduce_to_broadcast_inputs,
                grad_reductions,
                grad_views_and_cat,
                grad_where_and_cast,
                gradient_accumulates_when_a_tensor_is_used_twice,
                no_grad_and_detach_record_nothing,
                frozen_tensors_never_get_a_gradient,
                op_without_backward_errors_on_tracked_input,
                mismatches_name_the_op_and_both_shapes,
                write_slice_updates_storage_in_place,
            ]
        );
    };
}

pub fn host_round_trip_and_creation(dev: &Dev) -> Result<()> {
    let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], dev)?;
    assert_eq!(t.shape(), &[2, 3]);
    assert_eq!(t.to_vec::<f32>()?, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert!(
        t.to_vec::<u32>().is_err(),
        "to_vec with the wrong type must fail"
    );
    assert!(Tensor::from_vec(vec![1.0f32; 5], &[2, 3], dev).is_err());
    assert_eq!(
        Tensor::zeros(&[2, 2], DType::F32, dev)?.to_vec::<f32>()?,
        vec![0.0; 4]
    );
    assert_eq!(
        Tensor::ones(&[3], DType::U32, dev)?.to_vec::<u32>()?,
        vec![1; 3]
    );
    assert_eq!(
        Tensor::full(2.5, &[2], DType::F32, dev)?.to_vec::<f32>()?,
        vec![2.5; 2]
    );
    assert_eq!(
        Tensor::arange(2, 6, DType::I64, dev)?.to_vec::<i64>()?,
        vec![2, 3, 4, 5]
    );
    assert_eq!(
        Tensor::arange(0, 3, DType::F32, dev)?.to_vec::<f32>()?,
        vec![0.0, 1.0, 2.0]
    );
    let ids = Tensor::from_vec(vec![7u32, 8, 9], &[3], dev)?;
    assert_eq!(ids.to_vec::<u32>()?, vec![7, 8, 9]);
    let (mut r1, mut r2) = (Rng::new(5), Rng::new(5));
    let a = Tensor::randn(&[64], 0.0, 1.0, &mut r1, dev)?.to_vec::<f32>()?;
    let b = Tensor::randn(&[64], 0.0, 1.0, &mut r2, dev)?.to_vec::<f32>()?;
    assert_eq!(a, b, "randn with the same seed must repeat");
    let s = Tensor::from_vec(vec![3.5f32], &[], dev)?;
    assert_eq!(s.to_scalar_f32()?, 3.5);
    Ok(())
}

pub fn views_share_storage_and_contiguous_copies_only_when_needed(dev: &Dev) -> Result<()> {
    let t = Tensor::from_vec((0..24).map(|v| v as f32).collect(), &[2, 3, 4], dev)?;
    let tt = t.transpose(0, 2)?;
    assert!(tt.same_storage(&t) && !tt.layout().is_contiguous());
    assert_eq!(tt.shape(), &[4, 3, 2]);
    assert_eq!(values(&tt)?[..4], [0.0, 12.0, 4.0, 16.0]);
    let p = t.permute(&[1, 2, 0])?;
    assert_eq!(p.shape(), &[3, 4, 2]);
    assert_eq!(values(&p)?[..4], [0.0, 12.0, 1.0, 13.0]);
    let n = t.narrow(2, 1, 2)?;
    assert!(n.same_storage(&t));
    assert_eq!(values(&n)?[..4], [1.0, 2.0, 5.0, 6.0]);
    let b = Tensor::from_vec(vec![1.0f32, 2.0], &[2, 1], dev)?.broadcast_as(&[3, 2, 4])?;
    assert_eq!(b.layout().strides(), &[0, 1, 0]);
    assert_eq!(
        values(&b)?[..9],
        [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 1.0]
    );
    let u = t.unsqueeze(1)?;
    assert_eq!(u.shape(), &[2, 1, 3, 4]);
    assert_eq!(u.squeeze(1)?.shape(), &[2, 3, 4]);
    assert!(u.squeeze(0).is_err(), "squeezing a non-unit dim must fail");
    let r = t.reshape(&[6, usize::MAX])?;
    assert!(r.same_storage(&t) && r.shape() == [6, 4]);
    assert!(
        t.contiguous()?.same_storage(&t),
        "contiguous() on contiguous data must not copy"
    );
    let c = tt.contiguous()?;
    assert!(!c.same_storage(&t) && c.layout().is_contiguous());
    assert_eq!(values(&c)?, values(&tt)?);
    let rr = tt.reshape(&[24])?;
    assert_eq!(values(&rr)?, values(&tt)?);
    assert!(t.reshape(&[5, 5]).is_err());
    Ok(())
}

pub fn casts_round_to_nearest_and_round_trip(dev: &Dev) -> Result<()> {
    let x = vec![1.0f32, -2.5, 0.1, 65504.0, 1.2345];
    let t = Tensor::from_vec(x.clone(), &[5], dev)?;
    for dt in [DType::F16, DType::BF16] {
        let back = t.to_dtype(dt)?.to_dtype(DType::F32)?.to_vec::<f32>()?;
        let tol = if dt == DType::F16 { 1e-3 } else { 8e-3 };
        for (a, b) in x.iter().zip(&back) {
            assert!((a - b).abs() <= tol * a.abs(), "{dt:?}: {a} -> {b}");
        }
    }
    let h = t.to_dtype(DType::F16)?.to_vec::<half::f16>()?;
    assert_eq!(h[2], half::f16::from_f32(0.1));
    let ids = Tensor::from_vec(vec![3.7f32, 0.0, 12.0], &[3], dev)?.to_dtype(DType::U32)?;
    assert_eq!(ids.to_vec::<u32>()?, vec![3, 0, 12]);
    let i64s = ids.to_dtype(DType::I64)?;
    assert_eq!(i64s.to_vec::<i64>()?, vec![3, 0, 12]);
    let nc = noncontig(&Tensor::from_vec(
        vec![1.0f32, 2.0, 3.0, 4.0],
        &[2, 2],
        dev,
    )?)?;
    assert_eq!(
        nc.to_dtype(DType::BF16)?
            .to_dtype(DType::F32)?
            .to_vec::<f32>()?,
        vec![1.0, 2.0, 3.0, 4.0]
    );
    Ok(())
}

fn unary_reference(op: UnaryOp, x: f64) -> f64 {
    let sig = 1.0 / (1.0 + (-x).exp());
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Recip => 1.0 / x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Sqr => x * x,
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => sig,
        UnaryOp::Relu => x.max(0.0),
        UnaryOp::Gelu => 0.5 * x * (1.0 + erf64(x / 2f64.sqrt())),
        UnaryOp::Silu => x * sig,
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        UnaryOp::Step => (x > 0.0) as u8 as f64,
        UnaryOp::GeluDeriv => {
            0.5 * (1.0 + erf64(x / 2f64.sqrt()))
                + x * (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
        }
        UnaryOp::SiluDeriv => sig * (1.0 + x * (1.0 - sig)),
        UnaryOp::Affine { mul, add } => x * mul as f64 + add as f64,
        UnaryOp::Powf(e) => x.powf(e as f64),
    }
}

const ALL_UNARY: [UnaryOp; 19] = [
    UnaryOp::Neg,
    UnaryOp::Exp,
    UnaryOp::Log,
    UnaryOp::Sqrt,
    UnaryOp::Recip,
    UnaryOp::Abs,
    UnaryOp::Sqr,
    UnaryOp::Tanh,
    UnaryOp::Sigmoid,
    UnaryOp::Relu,
    UnaryOp::Gelu,
    UnaryOp::Silu,
    UnaryOp::Sin,
    UnaryOp::Cos,
    UnaryOp::Step,
    UnaryOp::GeluDeriv,
    UnaryOp::SiluDeriv,
    UnaryOp::Affine {
        mul: -1.5,
        add: 0.25,
    },
    UnaryOp::Powf(1.7),
];

/// Positive values away from 0 so log/sqrt/recip/powf are defined; the sign flip in half the
/// cases covers negatives for the others.
fn unary_input(dev: &Dev, op: UnaryOp) -> Result<Tensor> {
    let positive_only = matches!(
        op,
        UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Recip | UnaryOp::Powf(_)
    );
    let v: Vec<f32> = randn_vec(30, 3)
        .into_iter()
        .map(|x| {
            if positive_only {
                0.2 + x.abs()
            } else {
                2.0 * x
            }
        })
        .collect();
    noncontig(&Tensor::from_vec(v, &[5, 6], dev)?)
}

pub fn unary_ops_match_reference_on_strided_input(dev: &Dev) -> Result<()> {
    for op in ALL_UNARY {
        let x = unary_input(dev, op)?;
        let want: Vec<f64> = values(&x)?
            .into_iter()
            .map(|v| unary_reference(op, v))
            .collect();
        assert_tensor_close(&x.unary(op)?, &want, 1e-6, 2e-6, op.name())?;
    }
    Ok(())
}

pub fn unary_ops_accept_half_inputs(dev: &Dev) -> Result<()> {
    let x = Tensor::from_vec(randn_vec(16, 9), &[4, 4], dev)?;
    for dt in [DType::F16, DType::BF16] {
        let h = x.to_dtype(dt)?;
        let y = h.gelu()?;
        assert_eq!(y.dtype(), dt, "unary keeps the input dtype");
        let want: Vec<f64> = values(&h)?
            .into_iter()
            .map(|v| unary_reference(UnaryOp::Gelu, v))
            .collect();
        assert_tensor_close(&y, &want, 1e-2, 1e-2, "half gelu")?;
    }
    Ok(())
}

pub fn binary_ops_broadcast_like_numpy(dev: &Dev) -> Result<()> {
    let a = noncontig(&randn(dev, &[2, 3, 4], 1)?)?; // strided
    let b = randn(dev, &[3, 1], 2)?.affine(1.0, 3.0)?; // broadcast, away from 0 for div
    let (av, bv) = (values(&a)?, values(&b)?);
    type Reference = fn(f64, f64) -> f64;
    let ops: [(BinaryOp, Reference); 6] = [
        (BinaryOp::Add, |x, y| x + y),
        (BinaryOp::Sub, |x, y| x - y),
        (BinaryOp::Mul, |x, y| x * y),
        (BinaryOp::Div, |x, y| x / y),
        (BinaryOp::Maximum, f64::max),
        (BinaryOp::Minimum, f64::min),
    ];
    for (op, f) in ops {
        let y = a.binary(op, &b)?;
        assert_eq!(y.shape(), &[2, 3, 4]);
        let want: Vec<f64> = (0..24)
            .map(|i| {
                let idx = unravel(i, &[2, 3, 4]);
                f(av[i], bv[idx[1]])
            })
            .collect();
        assert_tensor_close(&y, &want, 1e-6, 1e-6, op.name())?;
    }
    // Both sides broadcast: [4,1] ∘ [1,5] → [4,5].
    let c = randn(dev, &[4, 1], 3)?.add(&randn(dev, &[1, 5], 4)?)?;
    assert_eq!(c.shape(), &[4, 5]);
    Ok(())
}

pub fn comparisons_and_where_select_elements(dev: &Dev) -> Result<()> {
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[4], dev)?;
    let b = Tensor::from_vec(vec![2.0f32], &[1], dev)?;
    assert_eq!(a.lt(&b)?.to_vec::<u32>()?, vec![1, 0, 0, 0]);
    assert_eq!(a.le(&b)?.to_vec::<u32>()?, vec![1, 1, 0, 0]);
    assert_eq!(a.gt(&b)?.to_vec::<u32>()?, vec![0, 0, 1, 1]);
    assert_eq!(a.ge(&b)?.to_vec::<u32>()?, vec![0, 1, 1, 1]);
    assert_eq!(a.eq(&b)?.to_vec::<u32>()?, vec![0, 1, 0, 0]);
    assert_eq!(a.ne(&b)?.to_vec::<u32>()?, vec![1, 0, 1, 1]);
    let ids = Tensor::from_vec(vec![5i64, 7, 5], &[3], dev)?;
    let five = Tensor::from_vec(vec![5i64], &[1], dev)?;
    assert_eq!(ids.eq(&five)?.to_vec::<u32>()?, vec![1, 0, 1]);
    let zero = Tensor::zeros(&[], DType::F32, dev)?;
    let w = a.gt(&b)?.where_cond(&a, &zero)?;
    assert_eq!(w.to_vec::<f32>()?, vec![0.0, 0.0, 3.0, 4.0]);
    assert!(a.where_cond(&a, &a).is_err(), "where needs a u32 condition");
    Ok(())
}

pub fn reductions_match_reference_on_every_axis(dev: &Dev) -> Result<()> {
    let shape = [3, 4, 5];
    let x = noncontig(&randn(dev, &shape, 11)?)?;
    let xv = values(&x)?;
    for d in 0..3 {
        let mut out_shape = shape.to_vec();
        out_shape[d] = 1;
        let n_out: usize = out_shape.iter().product();
        let fold = |init: f64, f: &dyn Fn(f64, f64) -> f64| -> Vec<f64> {
            (0..n_out)
                .map(|o| {
                    let mut idx = unravel(o, &out_shape);
                    (0..shape[d]).fold(init, |acc, k| {
                        idx[d] = k;
                        f(acc, xv[ravel(&idx, &shape)])
                    })
                })
                .collect()
        };
        let sums = fold(0.0, &|a, b| a + b);
        let maxs = fold(f64::NEG_INFINITY, &f64::max);
        let mins = fold(f64::INFINITY, &f64::min);
        assert_tensor_close(&x.sum_keepdim(d as isize)?, &sums, 1e-5, 1e-5, "sum")?;
        let means: Vec<f64> = sums.iter().map(|s| s / shape[d] as f64).collect();
        assert_tensor_close(&x.mean_keepdim(d as isize)?, &means, 1e-5, 1e-5, "mean")?;
        assert_tensor_close(&x.max_keepdim(d as isize)?, &maxs, 0.0, 0.0, "max")?;
        assert_tensor_close(&x.min_keepdim(d as isize)?, &mins, 0.0, 0.0, "min")?;
        let am = x.argmax(d as isize)?;
        assert_eq!(am.dtype(), DType::U32);
        let amv = am.to_vec::<u32>()?;
        for (o, &k) in amv.iter().enumerate() {
            let mut idx = unravel(o, &out_shape);
            idx[d] = k as usize;
            assert_eq!(xv[ravel(&idx, &shape)], maxs[o], "argmax points at the max");
        }
    }
    assert_eq!(x.sum(-1)?.shape(), &[3, 4]);
    let total: f64 = xv.iter().sum();
    assert_tensor_close(&x.sum_all()?, &[total], 1e-4, 1e-5, "sum_all")?;
    assert!(x.reduce_keepdim(ReduceOp::Sum, 3).is_err());
    Ok(())
}

pub fn grad_unary_ops(dev: &Dev) -> Result<()> {
    for op in ALL_UNARY {
        if matches!(op, UnaryOp::Step | UnaryOp::GeluDeriv | UnaryOp::SiluDeriv) {
            continue; // helpers for backward rules: no backward by design (see the error case)
        }
        // Keep |x| ≥ 0.1 so abs/relu are not probed across their kink.
        let v: Vec<f32> = randn_vec(12, 21)
            .into_iter()
            .map(|x| {
                let m = 0.1 + x.abs();
                match op {
                    UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Recip | UnaryOp::Powf(_) => 0.3 + m,
                    _ => m.copysign(x),
                }
            })
            .collect();
        let x = Tensor::from_vec(v, &[3, 4], dev)?;
        grad_check(
            dev,
            &[x],
            |t| noncontig(&t[0])?.unary(op),
            GradTol::default(),
            op.name(),
        )?;
    }
    Ok(())
}

pub fn grad_binary_ops_reduce_to_broadcast_inputs(dev: &Dev) -> Result<()> {
    let a = randn(dev, &[2, 3, 4], 31)?;
    let b = randn(dev, &[3, 1], 32)?.affine(0.5, 2.0)?;
    for op in [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Maximum,
        BinaryOp::Minimum,
    ] {
        grad_check(
            dev,
            &[a.clone(), b.clone()],
            |t| t[0].binary(op, &t[1]),
            GradTol::default(),
            op.name(),
        )?;
    }
    // Strided lhs, leading-dim broadcast rhs.
    let c = randn(dev, &[4], 33)?;
    grad_check(
        dev,
        &[a, c],
        |t| noncontig(&t[0])?.mul(&t[1]),
        GradTol::default(),
        "mul strided",
    )?;
    Ok(())
}

pub fn grad_reductions(dev: &Dev) -> Result<()> {
    let x = randn(dev, &[3, 4, 5], 41)?;
    for d in 0..3isize {
        grad_check(
            dev,
            std::slice::from_ref(&x),
            |t| noncontig(&t[0])?.sum_keepdim(d),
            GradTol::default(),
            "sum",
        )?;
        grad_check(
            dev,
            std::slice::from_ref(&x),
            |t| t[0].mean(d),
            GradTol::default(),
            "mean",
        )?;
        grad_check(
            dev,
            std::slice::from_ref(&x),
            |t| t[0].max_keepdim(d),
            GradTol::default(),
            "max",
        )?;
        grad_check(
            dev,
            std::slice::from_ref(&x),
            |t| t[0].min_keepdim(d),
            GradTol::default(),
            "min",
        )?;
    }
    grad_check(
        dev,
        &[x],
        |t| t[0].mean_all(),
        GradTol::default(),
        "mean_all",
    )
}

pub fn grad_views_and_cat(dev: &Dev) -> Result<()> {
    let x = randn(dev, &[2, 3, 4], 51)?;
    let tol = GradTol::default();
    grad_check(
        dev,
        std::slice::from_ref(&x),
        |t| t[0].transpose(0, 2),
        tol,
        "transpose",
    )?;
    grad_check(
        dev,
        std::slice::from_ref(&x),
        |t| t[0].permute(&[2, 0, 1]),
        tol,
        "permute",
    )?;
    grad_check(
        dev,
        std::slice::from_ref(&x),
        |t| t[0].narrow(2, 1, 2),
        tol,
        "narrow",
    )?;
    grad_check(
        dev,
        std::slice::from_ref(&x),
        |t| t[0].t()?.reshape(&[6, 4]),
        tol,
        "reshape of strided",
    )?;
    grad_check(
        dev,
        std::slice::from_ref(&x),
        |t| t[0].unsqueeze(1)?.squeeze(1),
        tol,
        "unsqueeze/squeeze",
    )?;
    let y = randn(dev, &[3, 1], 52)?;
    grad_check(
        dev,
        &[y],
        |t| t[0].broadcast_as(&[2, 3, 5]),
        tol,
        "broadcast",
    )?;
    let z = randn(dev, &[2, 2, 4], 53)?;
    grad_check(
        dev,
        &[x, z],
        |t| Tensor::cat(&[t[0].clone(), t[1].clone()], 1),
        tol,
        "cat",
    )
}

pub fn grad_where_and_cast(dev: &Dev) -> Result<()> {
    let cond = Tensor::from_vec(vec![1u32, 0, 0, 1, 1, 0], &[2, 3], dev)?;
    let a = randn(dev, &[2, 3], 61)?;
    let b = randn(dev, &[3], 62)?;
    grad_check(
        dev,
        &[cond, a.clone(), b],
        |t| t[0].where_cond(&t[1], &t[2]),
        GradTol::default(),
        "where",
    )?;
    // f32 → f16 → f32 is differentiable; the rounding inside is far below the tolerance here.
    let tol = GradTol {
        eps: 1e-2,
        atol: 2e-2,
        rtol: 2e-2,
    };
    grad_check(
        dev,
        &[a],
        |t| t[0].to_dtype(DType::F16)?.to_dtype(DType::F32),
        tol,
        "cast",
    )
}

pub fn gradient_accumulates_when_a_tensor_is_used_twice(dev: &Dev) -> Result<()> {
    // L = Σ x·x + Σ x  ⇒  dL/dx = 2x + 1, reached through two uses of x.
    let x = randn(dev, &[5], 71)?.variable();
    let loss = x.mul(&x)?.sum_all()?.add(&x.sum_all()?)?;
    let g = loss.backward()?;
    let want: Vec<f64> = values(&x)?.iter().map(|v| 2.0 * v + 1.0).collect();
    assert_tensor_close(
        g.get(&x).expect("gradient of x"),
        &want,
        1e-6,
        1e-6,
        "accumulated",
    )
}

pub fn no_grad_and_detach_record_nothing(dev: &Dev) -> Result<()> {
    let x = randn(dev, &[4], 81)?.variable();
    let y = no_grad(|| x.exp())?;
    assert!(!y.tracks_grad(), "ops inside no_grad are not recorded");
    assert!(x.exp()?.tracks_grad());
    let d = x.detach();
    assert!(!d.tracks_grad() && d.same_storage(&x));
    // Only the undetached path contributes: L = Σ (x + detach(x)·3) ⇒ dL/dx = 1.
    let loss = x.add(&d.scale(3.0)?)?.sum_all()?;
    let g = loss.backward()?;
    assert_tensor_close(g.get(&x).unwrap(), &[1.0; 4], 0.0, 0.0, "detach")?;
    assert!(matches!(y.sum_all()?.backward(), Err(Error::Autograd(_))));
    assert!(
        matches!(x.exp()?.backward(), Err(Error::Autograd(_))),
        "non-scalar loss"
    );
    Ok(())
}

pub fn frozen_tensors_never_get_a_gradient(dev: &Dev) -> Result<()> {
    let w = randn(dev, &[3], 91)?; // frozen: never made a variable
    let x = randn(dev, &[3], 92)?.variable();
    let g = x.mul(&w)?.sum_all()?.backward()?;
    assert!(g.get(&w).is_none(), "frozen weight must get no gradient");
    assert_eq!(g.len(), 1);
    assert_tensor_close(g.get(&x).unwrap(), &values(&w)?, 0.0, 0.0, "d/dx = w")
}

pub fn op_without_backward_errors_on_tracked_input(dev: &Dev) -> Result<()> {
    let x = randn(dev, &[3], 101)?.variable();
    assert!(matches!(
        x.unary(UnaryOp::Step),
        Err(Error::NoBackward { op: "step" })
    ));
    assert!(matches!(
        x.to_dtype(DType::U32),
        Err(Error::NoBackward { .. })
    ));
    // Without tracking, the same ops are fine.
    x.detach().unary(UnaryOp::Step)?;
    no_grad(|| x.to_dtype(DType::U32))?;
    Ok(())
}

pub fn mismatches_name_the_op_and_both_shapes(dev: &Dev) -> Result<()> {
    let a = randn(dev, &[2, 3], 1)?;
    let b = randn(dev, &[4, 3], 2)?;
    let msg = a.add(&b).unwrap_err().to_string();
    assert!(
        msg.contains("add") && msg.contains("[2, 3]") && msg.contains("[4, 3]"),
        "{msg}"
    );
    let ids = Tensor::from_vec(vec![1u32, 2], &[2], dev)?;
    let msg = a.mul(&ids).unwrap_err().to_string();
    assert!(
        msg.contains("mul") && msg.contains("F32") && msg.contains("U32"),
        "{msg}"
    );
    assert!(a.transpose(0, 5).is_err());
    assert!(a.narrow(1, 2, 5).is_err());
    assert!(a.permute(&[0, 0]).is_err());
    Ok(())
}

pub fn write_slice_updates_storage_in_place(dev: &Dev) -> Result<()> {
    let cache = Tensor::zeros(&[2, 5, 3], DType::F32, dev)?;
    let view = cache.narrow(1, 0, 4)?; // a view taken before the write sees it
    let src = noncontig(&Tensor::from_vec(
        (1..=12).map(|v| v as f32).collect(),
        &[2, 2, 3],
        dev,
    )?)?;
    cache.write_slice(1, 2, &src)?;
    let got = values(&cache)?;
    let srcv = values(&src)?;
    for b in 0..2 {
        for t in 0..5 {
            for d in 0..3 {
                let want = if (2..4).contains(&t) {
                    srcv[(b * 2 + t - 2) * 3 + d]
                } else {
                    0.0
                };
                assert_eq!(got[(b * 5 + t) * 3 + d], want, "at [{b},{t},{d}]");
            }
        }
    }
    assert_eq!(values(&view)?[6..9], srcv[..3]);
    assert!(cache.write_slice(1, 4, &src).is_err(), "past the end");
    assert!(
        cache.write_slice(0, 0, &src).is_err(),
        "other dims must match"
    );
    let tracked = cache.variable();
    assert!(matches!(
        tracked.write_slice(1, 0, &src),
        Err(Error::NoBackward { .. })
    ));
    Ok(())
}
