//! Training: data manifests ([`data`]), the optimizer and learning-rate schedule ([`optim`]),
//! atomic file writes for checkpoints and manifests ([`atomic`]), evaluation ([`eval`]) and the engine's training demo.

pub mod atomic;
pub mod data;
pub mod demo;
pub mod eval;
pub mod optim;
