//! Training: data manifests ([`data`]), the optimizer and learning-rate schedule ([`optim`]),
//! atomic file writes for checkpoints and manifests ([`atomic`]), evaluation ([`eval`]), the
//! engine's toy training run ([`toy`]), the three-stage OSUM trainer ([`stages`] with [`batch`],
//! [`ctc`], [`attributes`], [`features`], [`checkpoint`], [`log`]), packing its result for
//! shipping ([`ship`]), and the per-layer pooled encoder features behind the linear probes
//! ([`probe`]).

pub mod atomic;
pub mod attributes;
pub mod batch;
pub mod checkpoint;
pub mod ctc;
pub mod data;
pub mod eval;
pub mod features;
pub mod log;
pub mod optim;
pub mod probe;
pub mod ship;
pub mod stages;
pub mod toy;
