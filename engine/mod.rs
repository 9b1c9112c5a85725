//! The tensor engine: tensors, layouts, the `Device` trait, autograd and the op set.
//! It knows nothing about speech; `model` and `train` build on it.
//!
//! - [`tensor`]: the `Tensor` handle; [`layout`]: shapes, strides, views; [`dtype`]; [`storage`].
//! - [`device`]: the op set every backend implements; [`cpu`]: the CPU backend.
//! - [`ops`]: the tensor-level ops (shape checks, broadcasting, autograd rules), one file per family.
//! - [`autograd`]: the tape, `backward`, `no_grad`.

pub mod autograd;
pub mod cpu;
pub mod device;
pub mod dtype;
pub mod error;
pub mod layout;
pub mod ops;
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
pub use rng::Rng;
pub use storage::{DeviceBuffer, HostBuffer, HostElem};
pub use tensor::{Tensor, TensorId};

/// The process-wide CPU device.
pub fn cpu_device() -> std::sync::Arc<dyn Device> {
    cpu::CpuDevice::shared()
}
