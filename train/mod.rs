//! Training: the optimizer and learning-rate schedule, and (for now) the engine's training demo.
//! The three OSUM stages, data and checkpoints arrive with issue "three-stage trainer".

pub mod demo;
pub mod optim;
