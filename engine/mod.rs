//! The tensor engine: tensors, layouts, the `Device` trait, autograd and the op set.
//! It knows nothing about speech; `model` and `train` build on it.
//!
//! - [`tensor`]: the `Tensor` handle; [`layout`]: shapes, strides, views; [`dtype`]; [`storage`].
//! - [`device`]: the op set every backend implements; [`cpu`]: the CPU backend; [`ascend`]: the
//!   Ascend backend (`ascend-sim`: our AscendC kernels on the CPU simulator).
//! - [`ops`]: the tensor-level ops (shape checks, broadcasting, autograd rules), one file per family.
//! - [`autograd`]: the tape, `backward`, `no_grad`.
//! - [`profiler`]: per-op timing, FLOPs and bytes (`OSUM_PROFILE=trace.json`).

pub mod ascend;
pub mod autograd;
pub mod cpu;
pub mod device;
pub mod dtype;
pub mod error;
pub mod layout;
pub mod ops;
pub mod profiler;
pub mod rng;
pub mod storage;
pub mod tensor;

pub use autograd::{no_grad, Gradients, NoGradGuard};
pub use device::{
    AdamWParams, AttentionParams, BinaryOp, Buffer, Conv2dParams, Device, ReduceOp, RopeStyle,
    UnaryOp, View,
};
pub use dtype::{DType, WithDType};
pub use error::{Error, Result};
pub use layout::Layout;
pub use ops::attention::KvCache;
pub use rng::Rng;
pub use storage::{
    DeviceBuffer, HostBuffer, HostElem, HostSlice, MappedHost, MappedRegion, SharedBytes,
};
pub use tensor::{Tensor, TensorId};

/// The process-wide CPU device; with profiling on ([`profiler`]), the one profiled wrapper
/// around it (same name, so tensors from either still mix).
pub fn cpu_device() -> std::sync::Arc<dyn Device> {
    if !profiler::enabled() {
        return cpu::CpuDevice::shared();
    }
    static PROFILED: std::sync::OnceLock<std::sync::Arc<dyn Device>> = std::sync::OnceLock::new();
    PROFILED
        .get_or_init(|| profiler::wrap(cpu::CpuDevice::shared()))
        .clone()
}

/// Names [`device_named`] accepts.
pub const DEVICE_NAMES: &[&str] = &["auto", "cpu", "cpu-bf16", "ascend-sim"];

/// The device called `name` (one of [`DEVICE_NAMES`]), profiled like [`cpu_device`] when
/// profiling is on. `cpu-bf16` is an error on a CPU without AVX512_BF16 — never a silent f32;
/// `auto` is `cpu-bf16` on a CPU with it and `cpu` otherwise (the CLI's default).
pub fn device_named(name: &str) -> Result<std::sync::Arc<dyn Device>> {
    match name {
        // The fastest CPU device this machine runs exactly as documented: bf16 products where
        // the CPU multiplies bf16 natively, f32 everywhere else.
        "auto" if cpu::gemm::Precision::Bf16.supported() => device_named("cpu-bf16"),
        "auto" | "cpu" => Ok(cpu_device()),
        "cpu-bf16" => {
            let dev = cpu::CpuDevice::shared_bf16()?;
            if !profiler::enabled() {
                return Ok(dev);
            }
            static PROFILED: std::sync::OnceLock<std::sync::Arc<dyn Device>> =
                std::sync::OnceLock::new();
            Ok(PROFILED.get_or_init(|| profiler::wrap(dev)).clone())
        }
        ascend::SIM_NAME => {
            let dev = ascend::AscendDevice::shared_sim()?;
            if !profiler::enabled() {
                return Ok(dev);
            }
            static PROFILED: std::sync::OnceLock<std::sync::Arc<dyn Device>> =
                std::sync::OnceLock::new();
            Ok(PROFILED.get_or_init(|| profiler::wrap(dev)).clone())
        }
        other => Err(Error::Unsupported {
            op: "device name (known: auto, cpu, cpu-bf16, ascend-sim)",
            device: other.to_string(),
        }),
    }
}
