//! Conformance cases: linalg_index (to be filled by the op-family work).
#![allow(unused_imports)]
use super::*;

macro_rules! linalg_index_cases {
    ($dev:path) => {
        conformance_cases!($dev, linalg_index, []);
    };
}
