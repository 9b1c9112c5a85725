//! Conformance cases: training (to be filled by the op-family work).
#![allow(unused_imports)]
use super::*;

macro_rules! training_cases {
    ($dev:path) => {
        conformance_cases!($dev, training, []);
    };
}
