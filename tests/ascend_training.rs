//! Training on `ascend-sim` follows training on the CPU: the engine's toy training loop
//! (train/toy.rs — token and position embeddings, RMSNorm, rotary GQA attention, SwiGLU
//! linears, cross-entropy with ignored positions and its backward, global-norm clipping,
//! warmup-cosine AdamW) runs a few optimizer steps from the same seed on both devices, and the
//! per-step losses and gradient norms agree. On ascend-sim every op of the forward, backward and
//! optimizer step runs in our AscendC kernels on the CPU simulator (an op without a kernel
//! would fail the run: the device has no CPU fallback) — a simulation, not an NPU.
//!
//! Tolerance: both devices compute in f32 but sum in different orders (the cube's K tiles vs
//! the CPU GEMM's blocking; row reductions of softmax, norms and the loss), so gradients differ
//! by ~1e-6 relative. AdamW divides the first moment by √v, so such an error changes an update
//! by about 1e-6 of the learning rate (3e-3 here), and after 5 steps the loss (≈ 2.3) can only
//! drift by ~1e-7–1e-6. We allow |Δloss| ≤ 1e-5 · max(1, loss) (measured: ≤ 4.8e-7, i.e. 2 ulp)
//! and a relative 1e-4 on the gradient norm (a sum of squares over all parameters).

use osum::engine::{device_named, Result};
use osum::train::toy::{train_reversal, StepLog, TinyConfig, TrainOptions};

#[test]
fn toy_training_steps_on_ascend_sim_match_cpu_losses() -> Result<()> {
    let opts = TrainOptions {
        steps: 5,
        batch: 8,
        lr: 3e-3,
        seed: 11,
    };
    let run = |name: &str| -> Result<Vec<StepLog>> {
        let dev = device_named(name)?;
        Ok(train_reversal(TinyConfig::default(), opts, &dev, |_| {})?.log)
    };
    let (cpu, sim) = (run("cpu")?, run("ascend-sim")?);
    assert_eq!((cpu.len(), sim.len()), (5, 5));
    for (c, s) in cpu.iter().zip(&sim) {
        eprintln!(
            "step {}: loss cpu {} ascend-sim {} |Δ| {:e}; grad norm cpu {} ascend-sim {}",
            c.step,
            c.loss,
            s.loss,
            (c.loss - s.loss).abs(),
            c.grad_norm,
            s.grad_norm
        );
        assert!(c.loss.is_finite() && s.loss.is_finite());
        assert!(
            (c.loss - s.loss).abs() <= 1e-5 * c.loss.abs().max(1.0),
            "step {}: loss cpu {} vs ascend-sim {}",
            c.step,
            c.loss,
            s.loss
        );
        assert!(
            (c.grad_norm - s.grad_norm).abs() <= 1e-4 * c.grad_norm.abs(),
            "step {}: grad norm cpu {} vs ascend-sim {}",
            c.step,
            c.grad_norm,
            s.grad_norm
        );
    }
    // The steps trained: the parameters moved, so equal losses are not a frozen model's.
    assert_ne!(cpu[0].loss, cpu[4].loss);
    Ok(())
}
