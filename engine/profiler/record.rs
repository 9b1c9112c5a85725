//! What the profiler keeps: one [`OpRecord`] per device call, per-op totals, and the two
//! outputs made from them — a Chrome trace (JSON "trace event format", opens in Perfetto or
//! chrome://tracing) and a summary table.

use super::launches::{self, LaunchTotals};
use crate::engine::device::View;
use crate::engine::dtype::DType;
use crate::kernels::KernelLaunch;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Shape and dtype of one op operand.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
}

impl TensorInfo {
    /// Shape and dtype of a view.
    pub fn of(v: &View) -> Self {
        TensorInfo {
            shape: v.shape().to_vec(),
            dtype: v.dtype(),
        }
    }
    /// E.g. `f32[2, 3]`.
    pub fn describe(&self) -> String {
        format!("{}{:?}", dtype_name(self.dtype), self.shape)
    }
}

/// Lower-case dtype name as in the bench output (`f32`, `bf16`, …).
pub fn dtype_name(d: DType) -> String {
    format!("{d:?}").to_lowercase()
}

/// One profiled device call.
#[derive(Debug, Clone)]
pub struct OpRecord {
    /// Device name.
    pub device: Arc<str>,
    /// Op name (as in errors: `matmul`, `add`, `attention`, …).
    pub op: &'static str,
    /// Operands as the op saw them (broadcast shapes included).
    pub inputs: Vec<TensorInfo>,
    /// Results (for in-place ops: the buffers written).
    pub outputs: Vec<TensorInfo>,
    /// Start, µs since the recorder was created.
    pub start_us: f64,
    /// Wall time, µs.
    pub dur_us: f64,
    /// Floating-point operations ([`super::cost`]).
    pub flops: u64,
    /// Bytes read plus bytes written ([`super::cost`]).
    pub bytes: u64,
    /// Small per-process id of the calling thread.
    pub thread: u64,
    /// Kernel launches the call made (ascend-sim: with simulator counters; empty on the CPU).
    pub launches: Vec<KernelLaunch>,
}

/// Totals of one (op, device) pair.
#[derive(Debug, Clone, PartialEq)]
pub struct OpSummary {
    /// Op name.
    pub op: &'static str,
    /// Device name.
    pub device: Arc<str>,
    /// Number of calls.
    pub calls: u64,
    /// Summed wall time, µs.
    pub total_us: f64,
    /// Summed FLOPs.
    pub flops: u64,
    /// Summed bytes moved.
    pub bytes: u64,
    /// Summed simulator counters and predicted time of the calls' kernel launches.
    pub launches: LaunchTotals,
}

impl OpSummary {
    /// Achieved GFLOP/s over the op's total time (0 when it did no arithmetic or took no time).
    pub fn gflops(&self) -> f64 {
        per_us(self.flops, self.total_us) / 1e3
    }
    /// Achieved GB/s (10⁹ bytes per second) over the op's total time.
    pub fn gbps(&self) -> f64 {
        per_us(self.bytes, self.total_us) / 1e3
    }
}

fn per_us(count: u64, us: f64) -> f64 {
    if us > 0.0 {
        count as f64 / us
    } else {
        0.0
    }
}

#[derive(Default)]
struct State {
    events: Vec<OpRecord>,
    dropped: u64,
    totals: HashMap<(&'static str, Arc<str>), OpSummary>,
    kernels: HashMap<&'static str, LaunchTotals>,
}

/// Collects [`OpRecord`]s from any number of threads.
pub struct Recorder {
    origin: Instant,
    max_events: usize,
    state: Mutex<State>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("max_events", &self.max_events)
            .finish_non_exhaustive()
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// Events kept for the trace; beyond this only the totals grow (a long training run would
    /// otherwise hold gigabytes of events and write a trace no viewer opens).
    pub const DEFAULT_MAX_EVENTS: usize = 2_000_000;

    /// An empty recorder whose clock starts now.
    pub fn new() -> Self {
        Self::with_max_events(Self::DEFAULT_MAX_EVENTS)
    }

    /// An empty recorder that keeps at most `max_events` trace events.
    pub fn with_max_events(max_events: usize) -> Self {
        Recorder {
            origin: Instant::now(),
            max_events,
            state: Mutex::new(State::default()),
        }
    }

    /// The instant trace timestamps count from.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Add one call.
    pub fn record(&self, rec: OpRecord) {
        // A poisoned lock only means another thread panicked while pushing; the data is intact.
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let st = &mut *guard;
        let key = (rec.op, rec.device.clone());
        let t = st.totals.entry(key).or_insert_with(|| OpSummary {
            op: rec.op,
            device: rec.device.clone(),
            calls: 0,
            total_us: 0.0,
            flops: 0,
            bytes: 0,
            launches: LaunchTotals::default(),
        });
        t.calls += 1;
        t.launches.merge(&LaunchTotals::of(&rec.launches));
        for l in &rec.launches {
            st.kernels.entry(l.kernel).or_default().add(l);
        }
        t.total_us += rec.dur_us;
        t.flops = t.flops.saturating_add(rec.flops);
        t.bytes = t.bytes.saturating_add(rec.bytes);
        if st.events.len() < self.max_events {
            st.events.push(rec);
        } else {
            st.dropped += 1;
        }
    }

    /// Everything recorded so far, leaving the recorder empty.
    pub fn take(&self) -> Profile {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let st = std::mem::take(&mut *st);
        let mut summary: Vec<OpSummary> = st.totals.into_values().collect();
        summary.sort_by(|a, b| {
            b.total_us
                .total_cmp(&a.total_us)
                .then_with(|| a.op.cmp(b.op))
        });
        let mut kernels: Vec<(&'static str, LaunchTotals)> = st.kernels.into_iter().collect();
        kernels.sort_by(|a, b| {
            b.1.predicted_us
                .total_cmp(&a.1.predicted_us)
                .then_with(|| a.0.cmp(b.0))
        });
        Profile {
            events: st.events,
            dropped: st.dropped,
            summary,
            kernels,
        }
    }
}

/// A finished recording.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Trace events in record order.
    pub events: Vec<OpRecord>,
    /// Calls counted in `summary` but not kept as events (over the recorder's limit).
    pub dropped: u64,
    /// Per (op, device) totals, most total time first.
    pub summary: Vec<OpSummary>,
    /// Per kernel totals of the launches (ascend-sim), most predicted time first.
    pub kernels: Vec<(&'static str, LaunchTotals)>,
}

impl Profile {
    /// Summed op wall time, µs (overlapping calls from several threads add up).
    pub fn total_us(&self) -> f64 {
        self.summary.iter().map(|s| s.total_us).sum()
    }

    /// Number of calls.
    pub fn calls(&self) -> u64 {
        self.summary.iter().map(|s| s.calls).sum()
    }

    /// Write the Chrome trace: `{"traceEvents": [...]}` with one complete ("X") event per call,
    /// `ts`/`dur` in µs, and the operands, dtype, FLOPs and bytes under `args`.
    pub fn write_chrome_trace(&self, w: &mut impl Write) -> io::Result<()> {
        let pid = std::process::id();
        w.write_all(b"{\"traceEvents\":[\n")?;
        let meta = serde_json::json!({
            "name": "process_name", "ph": "M", "pid": pid, "tid": 0,
            "args": {"name": "osum"}
        });
        serde_json::to_writer(&mut *w, &meta)?;
        for e in &self.events {
            let names = |ts: &[TensorInfo]| ts.iter().map(|t| t.describe()).collect::<Vec<_>>();
            let dtype = e.inputs.first().or(e.outputs.first()).map(|t| t.dtype);
            let mut ev = serde_json::json!({
                "name": e.op,
                "cat": &*e.device,
                "ph": "X",
                "ts": e.start_us,
                "dur": e.dur_us,
                "pid": pid,
                "tid": e.thread,
                "args": {
                    "device": &*e.device,
                    "inputs": names(&e.inputs),
                    "outputs": names(&e.outputs),
                    "dtype": dtype.map(dtype_name),
                    "flops": e.flops,
                    "bytes": e.bytes,
                },
            });
            if !e.launches.is_empty() {
                ev["args"]["launches"] = e.launches.iter().map(launches::launch_json).collect();
            }
            w.write_all(b",\n")?;
            serde_json::to_writer(&mut *w, &ev)?;
        }
        let other = serde_json::json!({"tool": "osum profiler", "dropped_events": self.dropped});
        w.write_all(b"\n],\"displayTimeUnit\":\"ms\",\"otherData\":")?;
        serde_json::to_writer(&mut *w, &other)?;
        w.write_all(b"}\n")?;
        Ok(())
    }

    /// Write the Chrome trace to `path` atomically: into a temporary file next to it, then
    /// renamed over it, so a reader never sees half a trace.
    pub fn write_trace_file(&self, path: &Path) -> io::Result<()> {
        let tmp = temp_path(path)?;
        let written = (|| {
            let mut w = io::BufWriter::new(std::fs::File::create(&tmp)?);
            self.write_chrome_trace(&mut w)?;
            w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// The top `top` ops by total time: calls, total ms, share of all op time, achieved
    /// GFLOP/s and GB/s; then, for ops that launched kernels (ascend-sim), the simulator's
    /// counters and predicted 910B time per op and per kernel ([`launches::table`]).
    pub fn summary_table(&self, top: usize) -> String {
        let mut s = self.time_table(top);
        s.push_str(&launches::table(
            "op",
            self.summary.iter().take(top).map(|o| (o.op, &o.launches)),
        ));
        s.push_str(&launches::table(
            "kernel",
            self.kernels.iter().take(top).map(|(k, t)| (*k, t)),
        ));
        s
    }

    fn time_table(&self, top: usize) -> String {
        let total = self.total_us();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<22} {:<8} {:>9} {:>11} {:>7} {:>9} {:>8}",
            "op", "device", "calls", "total ms", "% time", "GFLOP/s", "GB/s"
        );
        for o in self.summary.iter().take(top) {
            let pct = if total > 0.0 {
                100.0 * o.total_us / total
            } else {
                0.0
            };
            let _ = writeln!(
                s,
                "{:<22} {:<8} {:>9} {:>11.3} {:>6.1}% {:>9.2} {:>8.2}",
                o.op,
                &*o.device,
                o.calls,
                o.total_us / 1e3,
                pct,
                o.gflops(),
                o.gbps()
            );
        }
        if self.summary.len() > top {
            let rest = &self.summary[top..];
            let us: f64 = rest.iter().map(|o| o.total_us).sum();
            let _ = writeln!(
                s,
                "… and {} more ops, {:.3} ms in total",
                rest.len(),
                us / 1e3
            );
        }
        s
    }
}

/// `dir/.name.<pid>.tmp` for `dir/name`: same directory, so the rename is atomic.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("profile path {} has no file name", path.display()),
        )
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    Ok(path.with_file_name(tmp_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(op: &'static str, dur_us: f64, flops: u64) -> OpRecord {
        OpRecord {
            device: Arc::from("cpu"),
            op,
            inputs: vec![TensorInfo {
                shape: vec![2, 3],
                dtype: DType::F32,
            }],
            outputs: vec![TensorInfo {
                shape: vec![2, 3],
                dtype: DType::BF16,
            }],
            start_us: 1.5,
            dur_us,
            flops,
            bytes: 36,
            thread: 1,
            launches: Vec::new(),
        }
    }

    #[test]
    fn chrome_trace_is_valid_json_with_complete_events() {
        let r = Recorder::new();
        r.record(rec("matmul", 2000.0, 4_000_000));
        r.record(rec("add \"quoted\"", 10.0, 6));
        let p = r.take();
        let mut out = Vec::new();
        p.write_chrome_trace(&mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let evs = v["traceEvents"].as_array().unwrap();
        let x: Vec<_> = evs.iter().filter(|e| e["ph"] == "X").collect();
        assert_eq!(x.len(), 2);
        assert_eq!(x[0]["name"], "matmul");
        assert_eq!(x[0]["dur"], 2000.0);
        assert_eq!(x[0]["ts"], 1.5);
        assert_eq!(x[0]["args"]["flops"], 4_000_000);
        assert_eq!(x[0]["args"]["bytes"], 36);
        assert_eq!(x[0]["args"]["dtype"], "f32");
        assert_eq!(x[0]["args"]["inputs"][0], "f32[2, 3]");
        assert_eq!(x[0]["args"]["outputs"][0], "bf16[2, 3]");
        assert_eq!(x[1]["name"], "add \"quoted\"");
        // The recorder is empty afterwards.
        assert!(r.take().events.is_empty());
    }

    #[test]
    fn summary_sorts_by_time_and_computes_rates() {
        let r = Recorder::with_max_events(1);
        r.record(rec("add", 10.0, 6));
        r.record(rec("matmul", 1000.0, 2_000_000));
        r.record(rec("matmul", 1000.0, 2_000_000));
        let p = r.take();
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.dropped, 2);
        assert_eq!(p.calls(), 3);
        assert_eq!(p.summary[0].op, "matmul");
        assert_eq!(p.summary[0].calls, 2);
        // 4e6 FLOPs in 2 ms = 2 GFLOP/s; 72 bytes in 2 ms = 3.6e-5 GB/s.
        assert!((p.summary[0].gflops() - 2.0).abs() < 1e-12);
        assert!((p.summary[0].gbps() - 72.0 / 2e-3 / 1e9).abs() < 1e-12);
        let table = p.summary_table(1);
        assert!(
            table.contains("matmul") && table.contains("1 more ops"),
            "{table}"
        );
    }

    #[test]
    fn trace_file_is_written_atomically() {
        let tmp = crate::scratch_dir("profile-test");
        let path = tmp.path().join("trace.json");
        let r = Recorder::new();
        r.record(rec("exp", 3.0, 6));
        r.take().write_trace_file(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(v["traceEvents"].as_array().unwrap().len() == 2);
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(left.len(), 1);
        assert!(temp_path(Path::new("/")).is_err());
    }
}
