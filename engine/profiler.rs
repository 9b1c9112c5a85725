//! The op profiler: which ops ran, on what shapes, for how long, and how close to the machine's
//! limits (achieved GFLOP/s and GB/s).
//!
//! Turned on by `OSUM_PROFILE=trace.json` (read once, the first time the engine asks) or by
//! [`enable`] (the CLI's global `--profile trace.json`, called before any device exists). When
//! on, [`crate::engine::cpu_device`] returns a [`ProfiledDevice`] around the CPU device, which
//! times every device call. When off there is no wrapper at all: the device is the bare one, so
//! the cost is one already-initialised `OnceLock` read per `cpu_device()` call.
//!
//! At exit [`finish`] writes a Chrome trace (opens in <https://ui.perfetto.dev> or
//! chrome://tracing) and prints the summary table to stderr.
//!
//! FLOP and byte formulas: [`cost`]. Times are wall-clock around the device call, which on the
//! CPU is the whole kernel (CPU ops are synchronous). On ascend-sim each call also carries the
//! kernel launches it made, with the simulator's counters and a predicted 910B time
//! ([`launches`]; predicted from simulated counters, not hardware).

pub mod cost;
mod device;
pub mod launches;
mod record;

pub use device::ProfiledDevice;
pub use record::{dtype_name, OpRecord, OpSummary, Profile, Recorder, TensorInfo};

use crate::engine::device::Device;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The environment variable that turns profiling on; its value is the trace path.
pub const ENV_VAR: &str = "OSUM_PROFILE";

/// Rows in the summary table [`finish`] prints.
pub const SUMMARY_ROWS: usize = 20;

static TRACE_PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
static RECORDER: OnceLock<Arc<Recorder>> = OnceLock::new();

/// Turn profiling on, writing the trace to `path` at [`finish`]. Returns false (and changes
/// nothing) when the choice was already made — by an earlier call, or because the engine
/// already read `OSUM_PROFILE` when a device was created. Call it first thing in `main`.
pub fn enable(path: impl Into<PathBuf>) -> bool {
    TRACE_PATH.set(Some(path.into())).is_ok()
}

/// Where the trace goes, if profiling is on. The first call fixes the choice for the process.
pub fn trace_path() -> Option<&'static Path> {
    TRACE_PATH
        .get_or_init(|| {
            std::env::var_os(ENV_VAR)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .as_deref()
}

/// True when profiling is on.
pub fn enabled() -> bool {
    trace_path().is_some()
}

/// The process-wide recorder every wrapped device writes to.
pub fn recorder() -> &'static Arc<Recorder> {
    RECORDER.get_or_init(|| Arc::new(Recorder::new()))
}

/// `dev` itself when profiling is off; otherwise `dev` wrapped in a [`ProfiledDevice`]
/// recording into the process-wide [`recorder`].
pub fn wrap(dev: Arc<dyn Device>) -> Arc<dyn Device> {
    if enabled() {
        Arc::new(ProfiledDevice::new(dev, recorder().clone()))
    } else {
        dev
    }
}

/// If profiling is on: write the Chrome trace (atomically) and print the summary table to
/// stderr, returning the trace path. Does nothing when profiling is off. Call it once at exit,
/// whether the command succeeded or not; a second call writes the (empty) remainder.
pub fn finish() -> std::io::Result<Option<PathBuf>> {
    let Some(path) = trace_path() else {
        return Ok(None);
    };
    let profile = recorder().take();
    profile.write_trace_file(path).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("writing profile trace {}: {e}", path.display()),
        )
    })?;
    let mut note = String::new();
    if profile.dropped > 0 {
        note = format!(
            " ({} calls over the trace limit are in the table only)",
            profile.dropped
        );
    }
    eprintln!(
        "profile: {} op calls, {:.3} ms in ops; trace written to {}{note}",
        profile.calls(),
        profile.total_us() / 1e3,
        path.display()
    );
    eprint!("{}", profile.summary_table(SUMMARY_ROWS));
    Ok(Some(path.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{cpu::CpuDevice, no_grad, AttentionParams, DType, Error, Tensor};

    fn profiled() -> (Arc<dyn Device>, Arc<Recorder>) {
        let rec = Arc::new(Recorder::new());
        let dev: Arc<dyn Device> = Arc::new(ProfiledDevice::new(CpuDevice::shared(), rec.clone()));
        (dev, rec)
    }

    #[test]
    fn records_ops_with_shapes_flops_and_bytes() -> crate::engine::Result<()> {
        let (dev, rec) = profiled();
        assert_eq!(dev.name(), "cpu");
        let a = Tensor::from_vec(vec![1.0f32; 2 * 3], &[2, 3], &dev)?;
        let b = Tensor::from_vec(vec![2.0f32; 3 * 4], &[3, 4], &dev)?;
        let c = no_grad(|| a.matmul(&b))?;
        assert_eq!(c.to_vec::<f32>()?, vec![6.0; 8]);
        let p = rec.take();
        let mm: Vec<_> = p.events.iter().filter(|e| e.op == "matmul").collect();
        assert_eq!(mm.len(), 1);
        assert_eq!(mm[0].flops, 2 * 2 * 3 * 4);
        assert_eq!(mm[0].bytes, (6 + 12 + 8) * 4);
        assert_eq!(mm[0].inputs[0].shape, vec![2, 3]);
        assert_eq!(mm[0].outputs[0].shape, vec![2, 4]);
        assert_eq!(&*mm[0].device, "cpu");
        assert!(p.events.iter().any(|e| e.op == "from_host"));
        assert!(p.events.iter().any(|e| e.op == "to_host"));
        Ok(())
    }

    #[test]
    fn attention_and_mixed_devices() -> crate::engine::Result<()> {
        let (dev, rec) = profiled();
        let bare = CpuDevice::shared();
        let q = Tensor::ones(&[1, 2, 3, 4], DType::F32, &dev)?;
        // Same name, so a tensor on the bare device mixes with one on the wrapper.
        let k = Tensor::ones(&[1, 1, 5, 4], DType::F32, &bare)?;
        let p = AttentionParams {
            scale: 0.5,
            causal: true,
        };
        let o = no_grad(|| q.attention(&k, &k, None, &p))?;
        assert_eq!(o.shape(), &[1, 2, 3, 4]);
        let prof = rec.take();
        let att = prof.events.iter().find(|e| e.op == "attention").unwrap();
        assert_eq!(att.flops, cost::attention(1, 2, 3, 5, 4, true));
        assert_eq!(att.outputs[0].shape, vec![1, 2, 3, 4]);
        Ok(())
    }

    /// On ascend-sim every op carries its kernel launches; the table adds their simulator
    /// counters and the predicted 910B time under the "predicted" label.
    #[test]
    fn ascend_sim_ops_carry_launch_counters_and_a_labelled_prediction() -> crate::engine::Result<()>
    {
        let rec = Arc::new(Recorder::new());
        let sim = crate::engine::ascend::AscendDevice::shared_sim()?;
        let dev: Arc<dyn Device> = Arc::new(ProfiledDevice::new(sim, rec.clone()));
        let a = Tensor::from_vec(vec![0.5f32; 40 * 70], &[40, 70], &dev)?;
        // A transposed [30, 70] weight: the layout the cube path reads without a copy.
        let b = Tensor::from_vec(vec![0.25f32; 70 * 30], &[30, 70], &dev)?.t()?;
        let c = no_grad(|| {
            a.matmul(&b)?
                .add(&Tensor::ones(&[40, 30], DType::F32, &dev)?)
        })?;
        assert_eq!(c.to_vec::<f32>()?[0], 0.5 * 0.25 * 70.0 + 1.0);
        let p = rec.take();
        let mm = p.events.iter().find(|e| e.op == "matmul").unwrap();
        assert_eq!(mm.launches.len(), 1);
        assert_eq!(mm.launches[0].kernel, "osum_matmul_f32");
        assert_eq!(mm.launches[0].stats.cube_macs, 40 * 70 * 30);
        let add = p.summary.iter().find(|s| s.op == "add").unwrap();
        assert!(add.launches.launches >= 1 && add.launches.vector_elems >= 40 * 30);
        assert!(add.launches.gm_to_ub_bytes >= 2 * 40 * 30 * 4);
        assert!(add.launches.predicted_us > 0.0);
        // Host copies launch nothing.
        let up = p.summary.iter().find(|s| s.op == "from_host").unwrap();
        assert_eq!(up.launches.launches, 0);
        let table = p.summary_table(SUMMARY_ROWS);
        assert!(table.contains(launches::PREDICTED_LABEL), "{table}");
        for col in [
            "launches",
            "GM>UB MB",
            "cube MMAC",
            "vec Melem",
            "910B µs",
            "bound",
        ] {
            assert!(table.contains(col), "{col} missing from {table}");
        }
        let row = table
            .lines()
            .skip_while(|l| !l.contains(launches::PREDICTED_LABEL))
            .find(|l| l.starts_with("matmul "));
        let cells: Vec<&str> = row
            .expect("a matmul launch row")
            .split_whitespace()
            .collect();
        assert_eq!(cells[1], "1", "{table}");
        assert!(
            cells[8].parse::<f64>().unwrap() > 0.0,
            "cube MMAC in {table}"
        );
        // Per kernel too: the matmul kernel's row carries its MACs.
        let krow = table
            .lines()
            .skip_while(|l| !l.starts_with("kernel launches per kernel"))
            .find(|l| l.starts_with("osum_matmul_f32 "))
            .expect("a kernel row");
        assert!(
            krow.contains(&format!("{:.3}", (40 * 70 * 30) as f64 / 1e6)),
            "{krow}"
        );
        // The trace carries each launch with its counters and the label.
        let mut out = Vec::new();
        p.write_chrome_trace(&mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let ev = v["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "matmul")
            .unwrap();
        assert_eq!(ev["args"]["launches"][0]["cube_macs"], 40 * 70 * 30);
        assert_eq!(ev["args"]["launches"][0]["note"], launches::PREDICTED_LABEL);
        Ok(())
    }

    #[test]
    fn cpu_tables_have_no_launch_section() -> crate::engine::Result<()> {
        let (dev, rec) = profiled();
        let a = Tensor::ones(&[4, 4], DType::F32, &dev)?;
        no_grad(|| a.add(&a))?;
        let table = rec.take().summary_table(SUMMARY_ROWS);
        assert!(!table.contains(launches::PREDICTED_LABEL), "{table}");
        Ok(())
    }

    #[test]
    fn errors_pass_through_unrecorded() -> crate::engine::Result<()> {
        let (dev, rec) = profiled();
        let ids = Tensor::from_vec(vec![1u32, 2], &[2], &dev)?;
        rec.take();
        match ids.softmax() {
            Err(Error::UnsupportedDType { device, .. })
            | Err(Error::Unsupported { device, .. }) => {
                assert_eq!(device, "cpu")
            }
            Err(_) => {}
            Ok(_) => panic!("softmax of u32 ids must fail"),
        }
        assert!(rec.take().events.iter().all(|e| e.op != "softmax"));
        assert_eq!(
            dev.unsupported("x").to_string(),
            "x: not supported on device cpu"
        );
        Ok(())
    }
}
