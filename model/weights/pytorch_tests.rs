//! Unit tests of the PyTorch reader.
use super::*;

