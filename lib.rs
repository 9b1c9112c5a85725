//! osum: OSUM-Pangu speech understanding on a from-scratch tensor engine.
//!
//! Layers (one-way dependencies): [`engine`] ← [`model`] ← [`train`] ← the `osum` CLI.
//! See `README.md` for the commands and the design notes.

pub mod engine;
pub mod ffi;
pub mod kernels;
pub mod model;
pub mod train;
