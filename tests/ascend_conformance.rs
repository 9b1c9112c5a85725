//! The device conformance suite on `ascend-sim` (our AscendC kernels on the CPU simulator — a
//! simulation, not an NPU).
#[macro_use]
mod conformance;

fn ascend_sim() -> conformance::Dev {
    osum::engine::device_named("ascend-sim").expect("ascend-sim device")
}

device_suite!(crate::ascend_sim);
