//! Tensor-level ops: argument checks, broadcasting, the device call and the backward rule.
//! One file per op family; each adds methods to [`Tensor`](super::Tensor).

pub mod attention;
pub mod conv;
pub mod elementwise;
pub mod index;
pub mod lora;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod optim;
pub mod reduce;
pub mod rope;
pub mod shape;
