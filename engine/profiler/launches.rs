//! The profiler's view of kernel launches (ascend-sim): per device op, the simulator's counters
//! of every launch it made and the roofline's predicted 910B time
//! ([`crate::kernels::roofline`]). Every figure here comes from simulated counters — none is a
//! hardware measurement — and is shown under [`PREDICTED_LABEL`].

use crate::kernels::roofline::{self, Bound, ASCEND_910B3};
use crate::kernels::KernelLaunch;
use std::fmt::Write as _;

pub use crate::kernels::roofline::PREDICTED_LABEL;

/// Summed simulator counters of a set of launches, with their predicted 910B time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LaunchTotals {
    /// Kernel launches.
    pub launches: u64,
    /// GM → UB bytes (MTE2).
    pub gm_to_ub_bytes: u64,
    /// UB → GM bytes (MTE3).
    pub ub_to_gm_bytes: u64,
    /// GM → L1 bytes.
    pub gm_to_l1_bytes: u64,
    /// L1 → L0A/L0B bytes.
    pub l1_to_l0_bytes: u64,
    /// L0C → GM bytes (FixPipe).
    pub l0c_to_gm_bytes: u64,
    /// Elements through vector instructions.
    pub vector_elems: u64,
    /// Cube multiply-accumulates.
    pub cube_macs: u64,
    /// Summed predicted time, µs.
    pub predicted_us: f64,
    /// Predicted µs of the launches bound by cube, vector and memory (in that order).
    pub bound_us: [f64; 3],
}

impl LaunchTotals {
    /// Add one launch.
    pub fn add(&mut self, l: &KernelLaunch) {
        let s = &l.stats;
        self.launches += 1;
        self.gm_to_ub_bytes = self.gm_to_ub_bytes.saturating_add(s.gm_to_ub_bytes);
        self.ub_to_gm_bytes = self.ub_to_gm_bytes.saturating_add(s.ub_to_gm_bytes);
        self.gm_to_l1_bytes = self.gm_to_l1_bytes.saturating_add(s.gm_to_l1_bytes);
        self.l1_to_l0_bytes = self.l1_to_l0_bytes.saturating_add(s.l1_to_l0_bytes);
        self.l0c_to_gm_bytes = self.l0c_to_gm_bytes.saturating_add(s.l0c_to_gm_bytes);
        self.vector_elems = self.vector_elems.saturating_add(s.vector_elems);
        self.cube_macs = self.cube_macs.saturating_add(s.cube_macs);
        let p = roofline::predict(&ASCEND_910B3, s);
        self.predicted_us += p.predicted_us;
        self.bound_us[bound_index(p.bound)] += p.predicted_us;
    }

    /// Add another total.
    pub fn merge(&mut self, o: &LaunchTotals) {
        self.launches += o.launches;
        self.gm_to_ub_bytes = self.gm_to_ub_bytes.saturating_add(o.gm_to_ub_bytes);
        self.ub_to_gm_bytes = self.ub_to_gm_bytes.saturating_add(o.ub_to_gm_bytes);
        self.gm_to_l1_bytes = self.gm_to_l1_bytes.saturating_add(o.gm_to_l1_bytes);
        self.l1_to_l0_bytes = self.l1_to_l0_bytes.saturating_add(o.l1_to_l0_bytes);
        self.l0c_to_gm_bytes = self.l0c_to_gm_bytes.saturating_add(o.l0c_to_gm_bytes);
        self.vector_elems = self.vector_elems.saturating_add(o.vector_elems);
        self.cube_macs = self.cube_macs.saturating_add(o.cube_macs);
        self.predicted_us += o.predicted_us;
        for (a, b) in self.bound_us.iter_mut().zip(o.bound_us) {
            *a += b;
        }
    }

    /// The totals of `launches`.
    pub fn of(launches: &[KernelLaunch]) -> Self {
        let mut t = LaunchTotals::default();
        for l in launches {
            t.add(l);
        }
        t
    }

    /// The unit bounding most of the predicted time.
    pub fn bound(&self) -> Bound {
        let units = [Bound::Cube, Bound::Vector, Bound::Memory];
        let mut best = 2;
        for i in 0..3 {
            if self.bound_us[i] > self.bound_us[best] {
                best = i;
            }
        }
        units[best]
    }
}

fn bound_index(b: Bound) -> usize {
    match b {
        Bound::Cube => 0,
        Bound::Vector => 1,
        Bound::Memory => 2,
    }
}

/// One launch as trace-event arguments: counters and prediction, labelled.
pub fn launch_json(l: &KernelLaunch) -> serde_json::Value {
    let s = &l.stats;
    let p = roofline::predict(&ASCEND_910B3, s);
    serde_json::json!({
        "kernel": l.kernel,
        "blocks": s.blocks,
        "gm_to_ub_bytes": s.gm_to_ub_bytes,
        "ub_to_gm_bytes": s.ub_to_gm_bytes,
        "gm_to_l1_bytes": s.gm_to_l1_bytes,
        "l1_to_l0_bytes": s.l1_to_l0_bytes,
        "l0c_to_gm_bytes": s.l0c_to_gm_bytes,
        "vector_elems": s.vector_elems,
        "cube_macs": s.cube_macs,
        "predicted_910b_us": p.predicted_us,
        "bound": p.bound.name(),
        "note": PREDICTED_LABEL,
    })
}

/// A launch table keyed by `key` ("op" or "kernel"): rows of (name, totals), every column
/// labelled as predicted from simulated counters. Empty when no row launched a kernel (a CPU
/// run; only Ascend devices launch kernels).
pub fn table<'a>(key: &str, rows: impl Iterator<Item = (&'a str, &'a LaunchTotals)>) -> String {
    let rows: Vec<_> = rows.filter(|r| r.1.launches > 0).collect();
    if rows.is_empty() {
        return String::new();
    }
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(22);
    let mb = |b: u64| b as f64 / 1e6;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "kernel launches per {key} — every column below is {PREDICTED_LABEL}, for {}:",
        ASCEND_910B3.name
    );
    let _ = writeln!(
        s,
        "{key:<w$} {:>8} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10} {:>11} {:>7}",
        "launches",
        "GM>UB MB",
        "UB>GM MB",
        "GM>L1 MB",
        "L1>L0 MB",
        "L0C>GM MB",
        "vec Melem",
        "cube MMAC",
        "910B µs",
        "bound"
    );
    for (name, t) in rows {
        let _ = writeln!(
            s,
            "{name:<w$} {:>8} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>10.3} {:>10.3} {:>10.3} {:>11.3} {:>7}",
            t.launches,
            mb(t.gm_to_ub_bytes),
            mb(t.ub_to_gm_bytes),
            mb(t.gm_to_l1_bytes),
            mb(t.l1_to_l0_bytes),
            mb(t.l0c_to_gm_bytes),
            t.vector_elems as f64 / 1e6,
            t.cube_macs as f64 / 1e6,
            t.predicted_us,
            t.bound().name()
        );
    }
    s
}
