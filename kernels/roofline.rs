//! The cost model: a roofline over the simulator's per-launch counters ([`LaunchStats`]) giving
//! a **predicted** Ascend 910B time — predicted from simulated counters, not measured on
//! hardware. Every figure it produces must carry [`PREDICTED_LABEL`].
//!
//! Per launch, three lower bounds on the time (ASCEND.md, "Roofline table"):
//! - cube: `2·cube_macs / (cube peak · used AIC / AIC)`, peak = AIC × 4096 MAC × 2 × clock
//!   (the fp16/bf16 rate; our simulated kernels feed the cube f32, for which the 910B rate is
//!   lower and not in our fact table — the prediction is for the fp16/bf16 form of the kernel);
//! - vector: `vector_repeats / (used AIV × clock)`, one 256-byte repeat per cycle per vector core;
//! - GM: bytes moved between GM and the core (MTE2 GM→UB, GM→L1; MTE3 UB→GM; FixPipe L0C→GM)
//!   over HBM bandwidth (every GM access priced at HBM, i.e. no L2 hits: the pessimistic side;
//!   `l2_us` gives the L2-bandwidth figure for comparison).
//!
//! The prediction is the largest of the three (perfect overlap of the pipes, as a roofline
//! assumes) and the unit that gives it is the bound. Host launch overhead (tens to hundreds of
//! µs on real systems) is not included. Used cores: a launch of `b` blocks keeps
//! `min(b, AIC)` cube cores and `min(2b, AIV)` vector cores busy (one block per AI core, whose
//! two AIVs both work).

use super::{LaunchStats, AIC_CORES, AIV_CORES};

/// The label every predicted figure carries.
pub const PREDICTED_LABEL: &str = "predicted (simulated counters, not hardware)";

/// One SoC row of ASCEND.md's roofline table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Soc {
    /// SoC name.
    pub name: &'static str,
    /// AI cube cores.
    pub aic: u32,
    /// AI vector cores.
    pub aiv: u32,
    /// Clock in GHz.
    pub clock_ghz: f64,
    /// HBM bandwidth, bytes/s.
    pub hbm_bytes_per_s: f64,
    /// L2 bandwidth, bytes/s.
    pub l2_bytes_per_s: f64,
}

/// The simulated SoC: Ascend 910B3 (20 AIC / 40 AIV, 1.8 GHz, HBM ≈ 1.6 TB/s, L2 ≈ 7 TB/s).
pub const ASCEND_910B3: Soc = Soc {
    name: "Ascend910B3",
    aic: AIC_CORES,
    aiv: AIV_CORES,
    clock_ghz: 1.8,
    hbm_bytes_per_s: 1.6e12,
    l2_bytes_per_s: 7.0e12,
};

impl Soc {
    /// Peak cube FLOP/s (fp16/bf16): AIC × 4096 MAC × 2 × clock (≈ 295 TFLOP/s on 910B3).
    pub fn cube_flops(&self) -> f64 {
        self.aic as f64 * 4096.0 * 2.0 * self.clock_ghz * 1e9
    }
}

/// Which unit bounds a launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The cube (matrix) units.
    Cube,
    /// The vector units.
    Vector,
    /// GM (HBM) bandwidth.
    Memory,
}

impl Bound {
    /// Lower-case name for tables and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Bound::Cube => "cube",
            Bound::Vector => "vector",
            Bound::Memory => "memory",
        }
    }
}

/// The roofline of one launch (all times in µs, predicted).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Cube lower bound.
    pub cube_us: f64,
    /// Vector lower bound.
    pub vector_us: f64,
    /// GM traffic at HBM bandwidth.
    pub hbm_us: f64,
    /// GM traffic at L2 bandwidth (optimistic: every access an L2 hit).
    pub l2_us: f64,
    /// max(cube, vector, HBM).
    pub predicted_us: f64,
    /// The unit giving `predicted_us`.
    pub bound: Bound,
    /// FLOPs (2 per cube MAC + 1 per vector element).
    pub flops: f64,
    /// Bytes between GM and the cores.
    pub gm_bytes: f64,
    /// FLOPs per GM byte.
    pub arithmetic_intensity: f64,
}

/// Bytes a launch moved between GM and the cores.
pub fn gm_bytes(s: &LaunchStats) -> u64 {
    s.gm_to_ub_bytes + s.ub_to_gm_bytes + s.gm_to_l1_bytes + s.l0c_to_gm_bytes
}

/// The roofline prediction of one launch on `soc`.
pub fn predict(soc: &Soc, s: &LaunchStats) -> Prediction {
    let blocks = s.blocks.max(1) as f64;
    let aic_used = blocks.min(soc.aic as f64);
    let aiv_used = (2.0 * blocks).min(soc.aiv as f64);
    let clock = soc.clock_ghz * 1e9;
    let cube_flops = 2.0 * s.cube_macs as f64;
    let cube_us = cube_flops / (soc.cube_flops() * aic_used / soc.aic as f64) * 1e6;
    let vector_us = s.vector_repeats as f64 / (aiv_used * clock) * 1e6;
    let bytes = gm_bytes(s) as f64;
    let hbm_us = bytes / soc.hbm_bytes_per_s * 1e6;
    let l2_us = bytes / soc.l2_bytes_per_s * 1e6;
    let (predicted_us, bound) = [
        (cube_us, Bound::Cube),
        (vector_us, Bound::Vector),
        (hbm_us, Bound::Memory),
    ]
    .into_iter()
    .fold(
        (0.0, Bound::Memory),
        |best, c| if c.0 > best.0 { c } else { best },
    );
    let flops = cube_flops + s.vector_elems as f64;
    Prediction {
        cube_us,
        vector_us,
        hbm_us,
        l2_us,
        predicted_us,
        bound,
        flops,
        gm_bytes: bytes,
        arithmetic_intensity: if bytes > 0.0 { flops / bytes } else { 0.0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_matches_the_fact_table_and_bounds_pick_the_slowest_unit() {
        // ASCEND.md: 910B3 ≈ 295 TFLOP/s fp16.
        assert!((ASCEND_910B3.cube_flops() / 1e12 - 294.9).abs() < 0.1);
        // A full-core GEMM of 4096³: 2·4096³ / 294.9e12 s ≈ 466 µs, cube-bound.
        let gemm = LaunchStats {
            blocks: 20,
            cube_macs: 4096u64.pow(3),
            gm_to_l1_bytes: 3 * 4096 * 4096 * 2,
            ..Default::default()
        };
        let p = predict(&ASCEND_910B3, &gemm);
        assert_eq!(p.bound, Bound::Cube);
        assert!((p.predicted_us - 466.0).abs() < 1.0, "{p:?}");
        // A copy of 64 MiB in and out: memory-bound at 1.6 TB/s ≈ 83.9 µs.
        let copy = LaunchStats {
            blocks: 40,
            gm_to_ub_bytes: 64 << 20,
            ub_to_gm_bytes: 64 << 20,
            vector_repeats: 1,
            ..Default::default()
        };
        let p = predict(&ASCEND_910B3, &copy);
        assert_eq!(p.bound, Bound::Memory);
        assert!((p.predicted_us - 83.886).abs() < 0.01, "{p:?}");
        // One block uses one core: 20× slower cube bound than the full launch.
        let one = predict(&ASCEND_910B3, &LaunchStats { blocks: 1, ..gemm });
        assert!((one.cube_us / predict(&ASCEND_910B3, &gemm).cube_us - 20.0).abs() < 1e-9);
    }
}
