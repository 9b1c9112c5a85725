//! Conformance cases: whole models learn. A small MLP (linear → LayerNorm → GELU → linear →
//! cross-entropy) separates two concentric rings, and the toy's 2-layer transformer (embedding,
//! RMSNorm, RoPE, GQA causal attention, SwiGLU) learns to reverse digit sequences. Both are seeded,
//! so each bound below is a fixed, repeatable threshold, not a statistical one.

use super::*;
use osum::engine::{DType, Rng};
use osum::train::optim::{AdamW, AdamWConfig};
use osum::train::toy::{train_reversal, TinyConfig, TinyTransformer, TrainOptions};

macro_rules! training_cases {
    ($dev:path) => {
        conformance_cases!(
            $dev,
            training,
            [
                mlp_separates_two_rings_within_200_steps,
                transformer_learns_sequence_reversal,
                training_is_deterministic_for_a_seed,
                transformer_outputs_do_not_depend_on_future_tokens,
            ]
        );
    };
}

/// Points on an inner disc (class 0) and an outer ring (class 1).
fn rings(n: usize, rng: &mut Rng, dev: &Dev) -> Result<(Tensor, Tensor)> {
    let mut xs = Vec::with_capacity(2 * n);
    let mut ys = Vec::with_capacity(n);
    for i in 0..n {
        let class = (i % 2) as u32;
        let r = if class == 0 {
            rng.uniform()
        } else {
            1.5 + rng.uniform()
        };
        let a = rng.uniform() * std::f32::consts::TAU;
        xs.extend([r * a.cos(), r * a.sin()]);
        ys.push(class);
    }
    Ok((
        Tensor::from_vec(xs, &[n, 2], dev)?,
        Tensor::from_vec(ys, &[n], dev)?,
    ))
}

pub fn mlp_separates_two_rings_within_200_steps(dev: &Dev) -> Result<()> {
    let mut rng = Rng::new(3);
    let (x, y) = rings(256, &mut rng, dev)?;
    let w1 = Tensor::randn(&[32, 2], 0.0, 0.5, &mut rng, dev)?.variable();
    let b1 = Tensor::zeros(&[32], DType::F32, dev)?.variable();
    let g1 = Tensor::ones(&[32], DType::F32, dev)?.variable();
    let beta1 = Tensor::zeros(&[32], DType::F32, dev)?.variable();
    let w2 = Tensor::randn(&[2, 32], 0.0, 0.2, &mut rng, dev)?.variable();
    let params = [
        w1.clone(),
        b1.clone(),
        g1.clone(),
        beta1.clone(),
        w2.clone(),
    ];
    let mut opt = AdamW::new(AdamWConfig {
        weight_decay: 0.0,
        ..AdamWConfig::default()
    });
    let mut losses = Vec::new();
    for _ in 0..200 {
        let h = x
            .linear(&w1, Some(&b1))?
            .layer_norm(&g1, Some(&beta1), 1e-5)?
            .gelu()?;
        let loss = h.linear(&w2, None)?.cross_entropy(&y, -100)?;
        let grads = loss.backward()?;
        opt.step(&params, &grads, 0.02, 1.0)?;
        losses.push(loss.to_scalar_f32()?);
    }
    let last = *losses.last().unwrap();
    assert!(losses[0] > 0.5, "starts near chance: {}", losses[0]);
    assert!(last < 0.05, "MLP loss after 200 steps: {last} (bound 0.05)");
    Ok(())
}

fn small_run(dev: &Dev, steps: u64) -> Result<osum::train::toy::TrainReport> {
    let cfg = TinyConfig {
        seq_len: 4,
        d_model: 32,
        ffn: 64,
        ..TinyConfig::default()
    };
    let opts = TrainOptions {
        steps,
        batch: 32,
        lr: 5e-3,
        seed: 7,
    };
    train_reversal(cfg, opts, dev, |_| {})
}

pub fn transformer_learns_sequence_reversal(dev: &Dev) -> Result<()> {
    let report = small_run(dev, 400)?;
    let first = report.log[0].loss;
    let tail: f32 = report.log[report.log.len() - 20..]
        .iter()
        .map(|s| s.loss)
        .sum::<f32>()
        / 20.0;
    assert!(first > 2.0, "starts near chance (ln 10 ≈ 2.30): {first}");
    assert!(
        tail < 0.3,
        "mean loss over the last 20 of 400 steps: {tail} (bound 0.3)"
    );
    assert!(
        report.eval_accuracy > 0.9,
        "held-out accuracy {}",
        report.eval_accuracy
    );
    Ok(())
}

pub fn training_is_deterministic_for_a_seed(dev: &Dev) -> Result<()> {
    let a: Vec<f32> = small_run(dev, 5)?.log.iter().map(|s| s.loss).collect();
    let b: Vec<f32> = small_run(dev, 5)?.log.iter().map(|s| s.loss).collect();
    assert_eq!(a, b, "same seed, same loss trajectory");
    Ok(())
}

pub fn transformer_outputs_do_not_depend_on_future_tokens(dev: &Dev) -> Result<()> {
    // Causality end to end: change only the last input token; every earlier position's logits
    // must be bit-identical, and the last position's must change.
    let cfg = TinyConfig::default();
    let model = TinyTransformer::new(cfg, &mut Rng::new(5), dev)?;
    let t = 2 * cfg.seq_len;
    let a: Vec<u32> = (0..t as u32).map(|i| i % 10).collect();
    let mut b = a.clone();
    b[t - 1] = (b[t - 1] + 3) % 10;
    let la = model
        .forward(&Tensor::from_vec(a, &[1, t], dev)?)?
        .to_vec::<f32>()?;
    let lb = model
        .forward(&Tensor::from_vec(b, &[1, t], dev)?)?
        .to_vec::<f32>()?;
    let v = la.len() / t;
    assert_eq!(
        la[..(t - 1) * v],
        lb[..(t - 1) * v],
        "earlier positions saw the future"
    );
    assert_ne!(
        la[(t - 1) * v..],
        lb[(t - 1) * v..],
        "the last position ignores its own token"
    );
    Ok(())
}
