//! The CPU device runs the whole device conformance suite.
#[macro_use]
mod conformance;

device_suite!(osum::engine::cpu_device);
