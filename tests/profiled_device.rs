//! The profiler's device wrapper must be invisible to numerics: the whole conformance suite runs
//! through a `ProfiledDevice` around the CPU device.
#[macro_use]
mod conformance;

fn profiled_cpu() -> std::sync::Arc<dyn osum::engine::Device> {
    use osum::engine::profiler::{ProfiledDevice, Recorder};
    std::sync::Arc::new(ProfiledDevice::new(
        osum::engine::cpu::CpuDevice::shared(),
        std::sync::Arc::new(Recorder::new()),
    ))
}

device_suite!(crate::profiled_cpu);
