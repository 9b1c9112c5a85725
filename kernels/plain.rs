//! Host side of the plain vector kernels: `osum_copy_strided` (copy.cpp), `osum_cast`
//! (cast.cpp) and `osum_unary_f32` (unary.cpp). Tiling structs mirror
//! `kernels/ascend/plain_tiling.h` field for field.

use super::{
    elementwise_tiling, launched, tiling_error, BinaryKernelOp, Gm, GmF32, KernelResult,
    LaunchStats, AIV_CORES,
};
use crate::ffi::{DeviceMemory, Stream};
use std::ffi::c_void;

/// Most dimensions `osum_copy_strided` takes.
pub const COPY_MAX_RANK: usize = 8;

/// Mirror of `CopyTiling`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyTiling {
    /// Dimensions used.
    pub rank: u32,
    /// Shape.
    pub shape: [u32; COPY_MAX_RANK],
    /// Source strides (elements).
    pub src_stride: [u32; COPY_MAX_RANK],
    /// Destination strides (elements).
    pub dst_stride: [u32; COPY_MAX_RANK],
    /// Source offset.
    pub src_offset: u32,
    /// Destination offset.
    pub dst_offset: u32,
    /// Source elements the kernel may touch.
    pub src_len: u32,
    /// Destination elements the kernel may touch.
    pub dst_len: u32,
    /// Innermost rows.
    pub rows: u32,
    /// Element size (2, 4, 8).
    pub elem_bytes: u32,
    /// Elements per UB chunk.
    pub chunk: u32,
}

/// Mirror of `CastTiling`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CastTiling {
    /// Elements in all.
    pub total_length: u32,
    /// Elements per block.
    pub block_length: u32,
    /// Elements per UB tile.
    pub tile_length: u32,
    /// Source [`FloatKind`].
    pub src: u32,
    /// Destination [`FloatKind`].
    pub dst: u32,
}

/// Mirror of `UnaryTiling`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnaryTiling {
    /// Elements in all.
    pub total_length: u32,
    /// Elements per block.
    pub block_length: u32,
    /// Elements per UB tile.
    pub tile_length: u32,
    /// [`UnaryKernelOp`] code.
    pub op: u32,
    /// First parameter (affine: mul; powf: exponent).
    pub p0: f32,
    /// Second parameter (affine: add).
    pub p1: f32,
}

/// Float formats `osum_cast` converts between (one side is always f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatKind {
    /// f32
    F32 = 0,
    /// IEEE binary16
    F16 = 1,
    /// bfloat16
    BF16 = 2,
}

/// Functions of `osum_unary_f32` (the `op` code; same order as the engine's `UnaryOp`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnaryKernelOp {
    /// −x
    Neg,
    /// eˣ
    Exp,
    /// ln x
    Log,
    /// √x
    Sqrt,
    /// 1/x
    Recip,
    /// |x|
    Abs,
    /// x²
    Sqr,
    /// tanh
    Tanh,
    /// σ(x)
    Sigmoid,
    /// max(x, 0)
    Relu,
    /// x·Φ(x)
    Gelu,
    /// x·σ(x)
    Silu,
    /// sin
    Sin,
    /// cos
    Cos,
    /// x > 0
    Step,
    /// gelu′
    GeluDeriv,
    /// silu′
    SiluDeriv,
    /// x·mul + add
    Affine(f32, f32),
    /// xᵉ
    Powf(f32),
}

impl UnaryKernelOp {
    fn code_and_params(self) -> (u32, f32, f32) {
        use UnaryKernelOp::*;
        match self {
            Neg => (0, 0.0, 0.0),
            Exp => (1, 0.0, 0.0),
            Log => (2, 0.0, 0.0),
            Sqrt => (3, 0.0, 0.0),
            Recip => (4, 0.0, 0.0),
            Abs => (5, 0.0, 0.0),
            Sqr => (6, 0.0, 0.0),
            Tanh => (7, 0.0, 0.0),
            Sigmoid => (8, 0.0, 0.0),
            Relu => (9, 0.0, 0.0),
            Gelu => (10, 0.0, 0.0),
            Silu => (11, 0.0, 0.0),
            Sin => (12, 0.0, 0.0),
            Cos => (13, 0.0, 0.0),
            Step => (14, 0.0, 0.0),
            GeluDeriv => (15, 0.0, 0.0),
            SiluDeriv => (16, 0.0, 0.0),
            Affine(m, a) => (17, m, a),
            Powf(e) => (18, e, 0.0),
        }
    }
}

extern "C" {
    fn aclrtlaunch_osum_copy_strided(
        blocks: u32,
        stream: *mut c_void,
        src: Gm,
        dst: Gm,
        tiling: CopyTiling,
    ) -> u32;
    fn aclrtlaunch_osum_cast(
        blocks: u32,
        stream: *mut c_void,
        x: Gm,
        y: Gm,
        tiling: CastTiling,
    ) -> u32;
    fn aclrtlaunch_osum_unary_f32(
        blocks: u32,
        stream: *mut c_void,
        x: Gm,
        y: Gm,
        tiling: UnaryTiling,
    ) -> u32;
}

/// One side of a strided copy: a whole device block read through (shape, strides, offset).
#[derive(Debug, Clone, Copy)]
pub struct StridedSide<'a> {
    /// The device block (the kernel may touch any element the layout reaches).
    pub mem: &'a DeviceMemory,
    /// Strides in elements.
    pub strides: &'a [usize],
    /// Offset in elements.
    pub offset: usize,
}

/// `dst = src` element by element for `shape` (2-, 4- or 8-byte elements).
pub fn copy_strided(
    stream: &Stream,
    shape: &[usize],
    elem_bytes: usize,
    src: StridedSide,
    dst: StridedSide,
) -> KernelResult<LaunchStats> {
    const KERNEL: &str = "osum_copy_strided";
    let u =
        |v: usize| u32::try_from(v).map_err(|_| tiling_error(KERNEL, format!("{v} exceeds u32")));
    if !matches!(elem_bytes, 2 | 4 | 8) {
        return Err(tiling_error(KERNEL, format!("{elem_bytes}-byte elements")));
    }
    if shape.is_empty() || shape.len() > COPY_MAX_RANK || shape.contains(&0) {
        return Err(tiling_error(
            KERNEL,
            format!("shape {shape:?} (rank 1..=8, no zero dims)"),
        ));
    }
    let mut t = CopyTiling {
        rank: u(shape.len())?,
        shape: [1; COPY_MAX_RANK],
        src_stride: [0; COPY_MAX_RANK],
        dst_stride: [0; COPY_MAX_RANK],
        src_offset: u(src.offset)?,
        dst_offset: u(dst.offset)?,
        src_len: 0,
        dst_len: 0,
        rows: u(shape[..shape.len() - 1].iter().product())?,
        elem_bytes: elem_bytes as u32,
        // 2 × 32 KiB of UB.
        chunk: u(32 * 1024 / elem_bytes)?,
    };
    for (i, &d) in shape.iter().enumerate() {
        t.shape[i] = u(d)?;
        t.src_stride[i] = u(src.strides[i])?;
        t.dst_stride[i] = u(dst.strides[i])?;
    }
    // The element one past the last reached, checked against each block.
    let reach = |side: &StridedSide| -> KernelResult<usize> {
        let last: usize = shape
            .iter()
            .zip(side.strides)
            .map(|(&d, &s)| (d - 1) * s)
            .sum();
        let end = side.offset + last + 1;
        if end * elem_bytes > side.mem.bytes() {
            return Err(tiling_error(
                KERNEL,
                format!(
                    "layout reaches element {end}, past a {}-byte block",
                    side.mem.bytes()
                ),
            ));
        }
        Ok(end)
    };
    t.src_len = u(reach(&src)?)?;
    t.dst_len = u(reach(&dst)?)?;
    let blocks = t.rows.clamp(1, AIV_CORES);
    // SAFETY: both layouts stay inside their live blocks (checked above); signature as in
    // kernels/sim/launch_plain.cpp.
    let code = unsafe {
        aclrtlaunch_osum_copy_strided(
            blocks,
            stream.raw(),
            src.mem.ptr().cast(),
            dst.mem.ptr().cast(),
            t,
        )
    };
    launched("aclrtlaunch_osum_copy_strided", code)
}

/// Convert `n` contiguous elements of `src` (`from`) at element `src_off` into `dst` (`to`)
/// from its start; one of the two kinds must be f32.
pub fn cast(
    stream: &Stream,
    n: usize,
    (src, src_off, from): (&DeviceMemory, usize, FloatKind),
    (dst, to): (&DeviceMemory, FloatKind),
) -> KernelResult<LaunchStats> {
    const KERNEL: &str = "osum_cast";
    if (from == FloatKind::F32) == (to == FloatKind::F32) {
        return Err(tiling_error(
            KERNEL,
            format!("{from:?} -> {to:?} (one side must be f32)"),
        ));
    }
    let size = |k: FloatKind| if k == FloatKind::F32 { 4 } else { 2 };
    if (src_off + n) * size(from) > src.bytes() || n * size(to) > dst.bytes() {
        return Err(tiling_error(KERNEL, "ranges exceed their blocks"));
    }
    let (blocks, e) = elementwise_tiling(n, BinaryKernelOp::Add)?;
    // Tiles of a multiple of 16 elements (whole 32-byte blocks of the half-width side).
    let t = CastTiling {
        total_length: e.total_length,
        block_length: e.block_length,
        tile_length: e.tile_length.div_ceil(16) * 16,
        src: from as u32,
        dst: to as u32,
    };
    let sp = src.ptr().cast::<u8>().wrapping_add(src_off * size(from));
    // SAFETY: ranges checked against the live blocks; signature as in launch_plain.cpp.
    let code = unsafe { aclrtlaunch_osum_cast(blocks, stream.raw(), sp, dst.ptr().cast(), t) };
    launched("aclrtlaunch_osum_cast", code)
}

/// `y = op(x)` over `x.len` contiguous f32.
pub fn unary_f32(
    stream: &Stream,
    op: UnaryKernelOp,
    x: GmF32,
    y: GmF32,
) -> KernelResult<LaunchStats> {
    if x.len != y.len {
        return Err(tiling_error("osum_unary_f32", "x and y lengths differ"));
    }
    let (blocks, e) = elementwise_tiling(x.len, BinaryKernelOp::Add)?;
    let (code, p0, p1) = op.code_and_params();
    let t = UnaryTiling {
        total_length: e.total_length,
        block_length: e.block_length,
        tile_length: e.tile_length,
        op: code,
        p0,
        p1,
    };
    // SAFETY: ranges checked (GmF32::new) and equal; signature as in launch_plain.cpp.
    let rc = unsafe { aclrtlaunch_osum_unary_f32(blocks, stream.raw(), x.ptr(), y.ptr(), t) };
    launched("aclrtlaunch_osum_unary_f32", rc)
}
