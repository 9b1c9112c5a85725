//! Training and evaluation data: the JSONL manifest format shared by `osum synth`, `osum train`
//! and `osum eval`.

pub mod manifest;
pub mod synth;

pub use manifest::{fixed_instruction, Item, Manifest};
