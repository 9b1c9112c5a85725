//! The engine's error type. Every message names the op and what was expected versus found,
//! so a user can tell from the message alone which call went wrong.

use super::dtype::DType;

/// Result alias used throughout the engine.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything the engine can refuse to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Two operands whose shapes do not fit together.
    #[error("{op}: shape mismatch, lhs {lhs:?} vs rhs {rhs:?}")]
    ShapeMismatch {
        op: &'static str,
        lhs: Vec<usize>,
        rhs: Vec<usize>,
    },
    /// An operand whose shape is wrong on its own (rank, divisibility, size).
    #[error("{op}: bad shape {shape:?}: {msg}")]
    BadShape {
        op: &'static str,
        shape: Vec<usize>,
        msg: String,
    },
    /// Two operands with different dtypes where the op needs them equal.
    #[error("{op}: dtype mismatch, lhs {lhs:?} vs rhs {rhs:?}")]
    DTypeMismatch {
        op: &'static str,
        lhs: DType,
        rhs: DType,
    },
    /// Operands on different devices.
    #[error("{op}: device mismatch, lhs on {lhs} vs rhs on {rhs}")]
    DeviceMismatch {
        op: &'static str,
        lhs: String,
        rhs: String,
    },
    /// The device has no kernel for this op with this dtype.
    #[error("{op}: dtype {dtype:?} is not supported on device {device}")]
    UnsupportedDType {
        op: &'static str,
        dtype: DType,
        device: String,
    },
    /// The device does not implement this op at all (never silently emulated).
    #[error("{op}: not supported on device {device}")]
    Unsupported { op: &'static str, device: String },
    /// The device implements the op, but not for this case (layout, broadcast, dtype mix);
    /// the case is named so the missing kernel is obvious (never silently emulated).
    #[error("{op}: {case} is not supported on device {device}")]
    UnsupportedCase {
        op: &'static str,
        case: String,
        device: String,
    },
    /// The device's runtime failed (e.g. an ACL call or a kernel launch), with its own message.
    #[error("{op} on device {device}: {msg}")]
    Backend {
        op: &'static str,
        device: String,
        msg: String,
    },
    /// A dimension index outside the tensor's rank.
    #[error("{op}: dimension {dim} out of range for rank {rank}")]
    DimOutOfRange {
        op: &'static str,
        dim: isize,
        rank: usize,
    },
    /// An index value (gather ids, narrow range, …) outside the valid range.
    #[error("{op}: index {index} out of range for size {size}")]
    IndexOutOfRange {
        op: &'static str,
        index: i64,
        size: usize,
    },
    /// Gradient requested through an op that has no backward.
    #[error("{op}: has no backward, but an input requires a gradient (detach it or use no_grad)")]
    NoBackward { op: &'static str },
    /// Misuse of the autograd API (e.g. backward from a non-scalar).
    #[error("autograd: {0}")]
    Autograd(String),
    /// Host data whose length does not match the requested shape.
    #[error("{op}: {len} elements do not fill shape {shape:?}")]
    ElementCount {
        op: &'static str,
        len: usize,
        shape: Vec<usize>,
    },
    /// Any other invalid argument, with the op named.
    #[error("{op}: {msg}")]
    InvalidArgument { op: &'static str, msg: String },
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            msg: msg.into(),
        }
    }
}
