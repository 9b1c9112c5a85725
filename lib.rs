//! osum: OSUM-Pangu speech understanding on a from-scratch tensor engine.
//!
//! Layers (one-way dependencies): [`engine`] ← [`model`] ← [`train`] ← the `osum` CLI.
//! See `README.md` for the commands and the design notes.

pub mod engine;
pub mod ffi;
pub mod kernels;
pub mod model;
pub mod train;

/// A fresh scratch folder `<temp dir>/osum-<what>-XXXXXX` for a unit test, removed (with all it
/// holds) when the returned guard drops; the integration tests' twin is
/// `tests/fixtures/mod.rs`.
#[cfg(test)]
pub(crate) fn scratch_dir(what: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("osum-{what}-"))
        .tempdir()
        .expect("create a scratch folder in the temp dir")
}
