//! Conformance cases: conv_attention (to be filled by the op-family work).
#![allow(unused_imports)]
use super::*;

macro_rules! conv_attention_cases {
    ($dev:path) => {
        conformance_cases!($dev, conv_attention, []);
    };
}
