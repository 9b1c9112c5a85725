//! Conformance cases: nn (to be filled by the op-family work).
#![allow(unused_imports)]
use super::*;

macro_rules! nn_cases {
    ($dev:path) => {
        conformance_cases!($dev, nn, []);
    };
}
