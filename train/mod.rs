//! Training: data manifests ([`data`]), the optimizer and learning-rate schedule ([`optim`]),
//! atomic file writes for checkpoints and manifests ([`atomic`]), evaluation ([`eval`]), the
//! engine's training demo, and the three-stage OSUM trainer ([`stages`] with [`batch`],
//! [`features`], [`checkpoint`], [`log`]).

pub mod atomic;
pub mod batch;
pub mod checkpoint;
pub mod data;
pub mod demo;
pub mod eval;
pub mod features;
pub mod log;
pub mod optim;
pub mod stages;
