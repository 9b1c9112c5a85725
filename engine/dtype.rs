//! Element types. Values are f32/f16/bf16 (weights may stay half precision and are widened inside
//! kernels); token ids and indices are u32/i64. Accumulation is always f32 or wider.

use half::{bf16, f16};

/// The element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit IEEE float: activations, gradients, optimizer state.
    F32,
    /// 16-bit IEEE float (weights).
    F16,
    /// bfloat16 (weights).
    BF16,
    /// Unsigned 32-bit integer (token ids, masks).
    U32,
    /// Signed 64-bit integer (ids as PyTorch stores them).
    I64,
}

impl DType {
    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::I64 => 8,
        }
    }

    /// True for the value (floating point) types.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16)
    }

    /// True for the id/index types.
    pub fn is_int(self) -> bool {
        !self.is_float()
    }
}

/// A Rust element type that maps to a [`DType`]. Conversions go through f64 so that
/// reference loops in tests and casts share one definition.
pub trait WithDType: Copy + Send + Sync + std::fmt::Debug + PartialOrd + 'static {
    /// The matching dtype.
    const DTYPE: DType;
    /// Widen to f64 (exact for every supported type except i64 beyond 2^53).
    fn to_f64(self) -> f64;
    /// Narrow from f64 (round to nearest; saturating for integers).
    fn from_f64(v: f64) -> Self;
}

impl WithDType for f32 {
    const DTYPE: DType = DType::F32;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}
impl WithDType for f16 {
    const DTYPE: DType = DType::F16;
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn from_f64(v: f64) -> Self {
        f16::from_f64(v)
    }
}
impl WithDType for bf16 {
    const DTYPE: DType = DType::BF16;
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn from_f64(v: f64) -> Self {
        bf16::from_f64(v)
    }
}
impl WithDType for u32 {
    const DTYPE: DType = DType::U32;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as u32
    }
}
impl WithDType for i64 {
    const DTYPE: DType = DType::I64;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as i64
    }
}
