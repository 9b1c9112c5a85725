//! The device conformance suite (tests/conformance) on `ascend-sim` — our AscendC kernels on the
//! CPU simulator; a simulation, not an NPU.
//!
//! Every case of the suite runs here (`device_suite!`, as for the CPU device), with the suite's
//! tolerances unchanged; there is no list of cases this device skips. Every op runs in one of
//! our kernels on the simulator: operands a kernel cannot read directly (strided, broadcast,
//! f16/bf16) are rearranged or widened by the device's own copy and cast kernels, never on the
//! host.
#[macro_use]
mod conformance;

fn ascend_sim() -> conformance::Dev {
    osum::engine::device_named("ascend-sim").expect("ascend-sim device")
}

// Inside a module named for the device, so `cargo test ascend` selects these cases too.
mod ascend_conformance {
    device_suite!(crate::ascend_sim);
}
