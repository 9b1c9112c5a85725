//! Host side of the plain vector kernels: `osum_copy_strided` (copy.cpp), `osum_cast`
//! (cast.cpp), `osum_unary_f32` (unary.cpp), `osum_compare` (compare.cpp) and `osum_where`
//! (where.cpp). Tiling structs mirror
//! `kernels/ascend/plain_tiling.h` field for field.

use super::nn::GmBytes;
use super::{
    elementwise_tiling, launched, tiling_error, BinaryKernelOp, ElementwiseTiling, Gm, GmF32,
    KernelResult, LaunchStats, AIV_CORES,
};
use crate::engine::device::UnaryOp;
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
    /// Source [`ElemKind`].
    pub src: u32,
    /// Destination [`ElemKind`].
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
    /// [`unary_code`] code.
    pub op: u32,
    /// First parameter (affine: mul; powf: exponent).
    pub p0: f32,
    /// Second parameter (affine: add).
    pub p1: f32,
}

/// Mirror of `CompareTiling`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompareTiling {
    /// Elements in all.
    pub total_length: u32,
    /// Elements per block.
    pub block_length: u32,
    /// Elements per UB tile (a multiple of 128).
    pub tile_length: u32,
    /// Operand [`ElemKind`] (f32, u32 or i64).
    pub kind: u32,
    /// [`CompareKernelOp`] code.
    pub mode: u32,
}

/// Mirror of `WhereTiling`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhereTiling {
    /// Elements in all.
    pub total_length: u32,
    /// Elements per block.
    pub block_length: u32,
    /// Elements per UB tile (a multiple of 128).
    pub tile_length: u32,
    /// Bytes per element of the selected data (2, 4 or 8).
    pub elem_bytes: u32,
}

/// Element types of the kernels' operands (the codes of `CastTiling` and `CompareTiling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemKind {
    /// f32
    F32 = 0,
    /// IEEE binary16
    F16 = 1,
    /// bfloat16
    BF16 = 2,
    /// u32
    U32 = 3,
    /// i64
    I64 = 4,
}

impl ElemKind {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            ElemKind::F16 | ElemKind::BF16 => 2,
            ElemKind::F32 | ElemKind::U32 => 4,
            ElemKind::I64 => 8,
        }
    }
    fn is_half(self) -> bool {
        matches!(self, ElemKind::F16 | ElemKind::BF16)
    }
}

/// Comparisons of `osum_compare` (the `mode` code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareKernelOp {
    /// x == y
    Eq = 0,
    /// x != y
    Ne = 1,
    /// x < y
    Lt = 2,
    /// x <= y
    Le = 3,
    /// x > y
    Gt = 4,
    /// x >= y
    Ge = 5,
}

/// The `op` code and parameters of `osum_unary_f32` for the engine's [`UnaryOp`] (codes in the
/// enum's declaration order, which unary.cpp's switch follows).
fn unary_code(op: UnaryOp) -> (u32, f32, f32) {
    match op {
        UnaryOp::Neg => (0, 0.0, 0.0),
        UnaryOp::Exp => (1, 0.0, 0.0),
        UnaryOp::Log => (2, 0.0, 0.0),
        UnaryOp::Sqrt => (3, 0.0, 0.0),
        UnaryOp::Recip => (4, 0.0, 0.0),
        UnaryOp::Abs => (5, 0.0, 0.0),
        UnaryOp::Sqr => (6, 0.0, 0.0),
        UnaryOp::Tanh => (7, 0.0, 0.0),
        UnaryOp::Sigmoid => (8, 0.0, 0.0),
        UnaryOp::Relu => (9, 0.0, 0.0),
        UnaryOp::Gelu => (10, 0.0, 0.0),
        UnaryOp::Silu => (11, 0.0, 0.0),
        UnaryOp::Sin => (12, 0.0, 0.0),
        UnaryOp::Cos => (13, 0.0, 0.0),
        UnaryOp::Step => (14, 0.0, 0.0),
        UnaryOp::GeluDeriv => (15, 0.0, 0.0),
        UnaryOp::SiluDeriv => (16, 0.0, 0.0),
        UnaryOp::Affine { mul, add } => (17, mul, add),
        UnaryOp::Powf(e) => (18, e, 0.0),
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
    fn aclrtlaunch_osum_compare(
        blocks: u32,
        stream: *mut c_void,
        x: Gm,
        y: Gm,
        z: Gm,
        tiling: CompareTiling,
    ) -> u32;
    fn aclrtlaunch_osum_where(
        blocks: u32,
        stream: *mut c_void,
        cond: Gm,
        t: Gm,
        f: Gm,
        z: Gm,
        tiling: WhereTiling,
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
/// from its start. Pairs: f32 ↔ f16/bf16, f32 ↔ u32/i64, u32 ↔ i64.
pub fn cast(
    stream: &Stream,
    n: usize,
    (src, src_off, from): (&DeviceMemory, usize, ElemKind),
    (dst, to): (&DeviceMemory, ElemKind),
) -> KernelResult<LaunchStats> {
    const KERNEL: &str = "osum_cast";
    let f32_side = from == ElemKind::F32 || to == ElemKind::F32;
    if from == to || (!f32_side && (from.is_half() || to.is_half())) {
        return Err(tiling_error(
            KERNEL,
            format!("{from:?} -> {to:?} (pairs: f32 <-> f16/bf16/u32/i64, u32 <-> i64)"),
        ));
    }
    if (src_off + n) * from.size() > src.bytes() || n * to.size() > dst.bytes() {
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
    let sp = src.ptr().cast::<u8>().wrapping_add(src_off * from.size());
    // SAFETY: ranges checked against the live blocks; signature as in launch_plain.cpp.
    let code = unsafe { aclrtlaunch_osum_cast(blocks, stream.raw(), sp, dst.ptr().cast(), t) };
    launched("aclrtlaunch_osum_cast", code)
}

/// Blocks and tiles of `osum_compare` / `osum_where` over `n` elements: the elementwise
/// blocking, tiles of at most 2048 elements rounded to a multiple of 128 (whole 256-byte
/// Compare repeats; 2 × 2 × 16 KiB of i64 inputs and the outputs fit the 192 KiB UB).
fn select_tiling(kernel: &'static str, n: usize) -> KernelResult<(u32, ElementwiseTiling)> {
    let (blocks, mut e) = elementwise_tiling(n, BinaryKernelOp::Add).map_err(|e| match e {
        super::KernelError::Tiling { msg, .. } => tiling_error(kernel, msg),
        other => other,
    })?;
    e.tile_length = e.tile_length.min(2048).div_ceil(128) * 128;
    Ok((blocks, e))
}

/// `z[i] = (x[i] op y[i])` as u32 0/1 for `n` contiguous elements of `kind` (f32, u32, i64);
/// `z` holds `n` u32.
pub fn compare(
    stream: &Stream,
    op: CompareKernelOp,
    kind: ElemKind,
    (x, y, z): (GmBytes, GmBytes, GmBytes),
) -> KernelResult<LaunchStats> {
    const KERNEL: &str = "osum_compare";
    if !matches!(kind, ElemKind::F32 | ElemKind::U32 | ElemKind::I64) {
        return Err(tiling_error(KERNEL, format!("{kind:?} operands")));
    }
    let n = x.len() / kind.size();
    if x.len() != y.len() || z.len() != n * 4 || x.len() % kind.size() != 0 {
        return Err(tiling_error(KERNEL, "operand lengths differ"));
    }
    let (blocks, e) = select_tiling(KERNEL, n)?;
    let t = CompareTiling {
        total_length: e.total_length,
        block_length: e.block_length,
        tile_length: e.tile_length,
        kind: kind as u32,
        mode: op as u32,
    };
    // SAFETY: ranges checked against live blocks (GmBytes::new) and against each other;
    // signature as in launch_plain.cpp.
    let rc =
        unsafe { aclrtlaunch_osum_compare(blocks, stream.raw(), x.ptr(), y.ptr(), z.ptr(), t) };
    launched("aclrtlaunch_osum_compare", rc)
}

/// `z[i] = cond[i] != 0 ? t[i] : f[i]` for `cond.len() / 4` elements of `elem_bytes` bytes.
pub fn where_select(
    stream: &Stream,
    elem_bytes: usize,
    (cond, t, f, z): (GmBytes, GmBytes, GmBytes, GmBytes),
) -> KernelResult<LaunchStats> {
    const KERNEL: &str = "osum_where";
    if !matches!(elem_bytes, 2 | 4 | 8) {
        return Err(tiling_error(KERNEL, format!("{elem_bytes}-byte elements")));
    }
    let n = cond.len() / 4;
    let bytes = n * elem_bytes;
    if cond.len() % 4 != 0 || t.len() != bytes || f.len() != bytes || z.len() != bytes {
        return Err(tiling_error(KERNEL, "operand lengths differ"));
    }
    let (blocks, e) = select_tiling(KERNEL, n)?;
    let tl = WhereTiling {
        total_length: e.total_length,
        block_length: e.block_length,
        tile_length: e.tile_length,
        elem_bytes: elem_bytes as u32,
    };
    // SAFETY: ranges checked against live blocks (GmBytes::new) and against each other;
    // signature as in launch_plain.cpp.
    let rc = unsafe {
        aclrtlaunch_osum_where(
            blocks,
            stream.raw(),
            cond.ptr(),
            t.ptr(),
            f.ptr(),
            z.ptr(),
            tl,
        )
    };
    launched("aclrtlaunch_osum_where", rc)
}

/// `y = op(x)` over `x.len` contiguous f32.
pub fn unary_f32(stream: &Stream, op: UnaryOp, x: GmF32, y: GmF32) -> KernelResult<LaunchStats> {
    if x.len != y.len {
        return Err(tiling_error("osum_unary_f32", "x and y lengths differ"));
    }
    let (blocks, e) = elementwise_tiling(x.len, BinaryKernelOp::Add)?;
    let (code, p0, p1) = unary_code(op);
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
