//! Host side of the norm, rope, reduce, index, loss and optimizer kernels
//! (`kernels/ascend/{norm,rope,reduce,index,log_softmax,cross_entropy,adamw}.cpp`): tiling
//! (mirrors of `kernels/ascend/tiling_nn.h`) and launch wrappers over their `aclrtlaunch_*`
//! entries. UB budgets follow the 910B figures in ASCEND.md (192 KiB, ≥ 8.25 KiB left to the
//! runtime); the simulator enforces them on every launch.

use super::{
    attention_tiling, launched, need_f32, need_len, set_attention_mask, tiling_error,
    AttentionMask, AttentionShape, AttentionTiling, Gm, GmF32, KernelResult, LaunchStats,
    AIC_CORES, AIV_CORES,
};
use crate::engine::device::AdamWParams;
use crate::ffi::{DeviceMemory, Stream};
use std::ffi::c_void;

/// Elements per UB chunk for the row kernels: 8192 f32 = 32 KiB per buffer (softmax-like
/// kernels hold 2 queues × 2 buffers = 128 KiB of the 184 KiB usable UB).
const ROW_CHUNK: usize = 8192;
/// The norm kernel holds 7 chunk buffers (3 queues × 2 + scratch): 4096 f32 = 16 KiB each,
/// 112 KiB in all (8192 would need 224 KiB, which the simulator refuses).
const NORM_CHUNK: usize = 4096;
/// Most dimensions `osum_gather` / `osum_scatter_add_f32` address.
pub const GATHER_MAX_RANK: usize = 6;

/// Mirror of `NormTiling`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormTiling {
    /// Rows.
    pub rows: u32,
    /// Features per row.
    pub cols: u32,
    /// Elements per UB chunk (multiple of 8).
    pub chunk_len: u32,
    /// 1: RMSNorm.
    pub rms: u32,
    /// 1: layer norm adds a bias.
    pub has_bias: u32,
    /// Variance epsilon.
    pub eps: f32,
}

/// Mirror of `RopeTiling`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RopeTiling {
    /// Rows of D elements.
    pub rows: u32,
    /// Positions (row r is at r % t).
    pub t: u32,
    /// D / 2.
    pub half: u32,
    /// `half` rounded up to 8.
    pub half_pad: u32,
    /// 1: pairs (2i, 2i+1).
    pub interleaved: u32,
}

/// Mirror of `ReduceTiling`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReduceTiling {
    /// Product of the dims before the reduced one.
    pub outer: u32,
    /// Size of the reduced dim.
    pub n: u32,
    /// Product of the dims after it.
    pub inner: u32,
    /// [`ReduceKernelOp`] code.
    pub op: u32,
    /// Elements per UB chunk (multiple of 8).
    pub chunk_len: u32,
    /// ceil(inner / chunk_len).
    pub inner_chunks: u32,
}

/// Reductions of `osum_reduce_f32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceKernelOp {
    /// Σ
    Sum = 0,
    /// max
    Max = 1,
    /// min
    Min = 2,
    /// index of the first maximum (u32 out)
    Argmax = 3,
}

/// Mirror of `IndexTiling`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexTiling {
    /// Product of the dims before the indexed one.
    pub outer: u32,
    /// Size of the indexed dim in the data tensor.
    pub size: u32,
    /// Product of the dims after it.
    pub inner: u32,
    /// Number of ids.
    pub n: u32,
    /// 16-bit words per row of `inner` elements (index_select).
    pub row_units: u32,
    /// Units per UB chunk.
    pub chunk_len: u32,
    /// ceil(inner / chunk_len) (index_add).
    pub inner_chunks: u32,
}

/// Mirror of `GatherTiling`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatherTiling {
    /// Elements of the index tensor.
    pub total: u32,
    /// Rank of all three tensors.
    pub rank: u32,
    /// The indexed dim.
    pub dim: u32,
    /// 16-bit words per element (gather).
    pub units_per_elem: u32,
    /// Index elements per UB chunk.
    pub chunk_len: u32,
    /// Shape of the index tensor (first `rank` entries).
    pub idx_shape: [u32; GATHER_MAX_RANK],
    /// Row-major strides of the data tensor (src for gather, dst for scatter_add).
    pub data_strides: [u32; GATHER_MAX_RANK],
    /// Row-major strides of scatter_add's src.
    pub src_strides: [u32; GATHER_MAX_RANK],
}

/// Mirror of `RowLossTiling`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowLossTiling {
    /// Rows.
    pub rows: u32,
    /// Elements per row.
    pub cols: u32,
    /// Elements per UB chunk (multiple of 8).
    pub chunk_len: u32,
    /// Contiguous rows per block (cross-entropy).
    pub rows_per_block: u32,
    /// Losses buffered in UB per copy-out (multiple of 8).
    pub out_chunk: u32,
}

/// Mirror of `AdamWTiling`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWTiling {
    /// Elements.
    pub total: u32,
    /// Elements per block (multiple of 8).
    pub block_length: u32,
    /// Elements per UB tile (multiple of 8).
    pub tile_length: u32,
    /// 1 − lr·weight_decay.
    pub decay: f32,
    /// β₁.
    pub b1: f32,
    /// β₂.
    pub b2: f32,
    /// 1 / (1 − β₁ᵗ).
    pub inv_bc1: f32,
    /// 1 / (1 − β₂ᵗ).
    pub inv_bc2: f32,
    /// Learning rate.
    pub lr: f32,
    /// Denominator epsilon.
    pub eps: f32,
}

/// A byte range of device memory (ids, or elements of any dtype), checked against its
/// allocation.
#[derive(Debug, Clone, Copy)]
pub struct GmBytes<'a> {
    mem: &'a DeviceMemory,
    offset: usize,
    len: usize,
}

impl<'a> GmBytes<'a> {
    /// Bytes `offset..offset + len` of `mem`.
    pub fn new(
        kernel: &'static str,
        mem: &'a DeviceMemory,
        offset: usize,
        len: usize,
    ) -> KernelResult<Self> {
        match offset.checked_add(len) {
            Some(end) if end <= mem.bytes() => Ok(GmBytes { mem, offset, len }),
            _ => Err(tiling_error(
                kernel,
                format!(
                    "bytes {offset}..+{len} exceed a {}-byte buffer",
                    mem.bytes()
                ),
            )),
        }
    }
    pub(crate) fn ptr(&self) -> Gm {
        self.mem.ptr().cast::<u8>().wrapping_add(self.offset)
    }
    /// Bytes in the range.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True when the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<'a> From<GmF32<'a>> for GmBytes<'a> {
    /// The same elements as bytes (for kernels whose operand type is a launch parameter).
    fn from(g: GmF32<'a>) -> Self {
        GmBytes {
            mem: g.mem,
            offset: g.offset * 4,
            len: g.len * 4,
        }
    }
}

extern "C" {
    fn aclrtlaunch_osum_norm_f32(
        blocks: u32,
        stream: *mut c_void,
        x: Gm,
        w: Gm,
        b: Gm,
        y: Gm,
        t: NormTiling,
    ) -> u32;
    fn aclrtlaunch_osum_rope_f32(
        blocks: u32,
        stream: *mut c_void,
        x: Gm,
        cos: Gm,
        sin: Gm,
        y: Gm,
        t: RopeTiling,
    ) -> u32;
    fn aclrtlaunch_osum_reduce_f32(
        blocks: u32,
        stream: *mut c_void,
        x: Gm,
        y: Gm,
        t: ReduceTiling,
    ) -> u32;
    fn aclrtlaunch_osum_index_select(
        blocks: u32,
        stream: *mut c_void,
        src: Gm,
        ids: Gm,
        out: Gm,
        t: IndexTiling,
    ) -> u32;
    fn aclrtlaunch_osum_index_add_f32(
        blocks: u32,
        stream: *mut c_void,
        src: Gm,
        ids: Gm,
        out: Gm,
        t: IndexTiling,
    ) -> u32;
    fn aclrtlaunch_osum_gather(
        blocks: u32,
        stream: *mut c_void,
        src: Gm,
        src_elems: u64,
        idx: Gm,
        out: Gm,
        t: GatherTiling,
    ) -> u32;
    fn aclrtlaunch_osum_scatter_add_f32(
        blocks: u32,
        stream: *mut c_void,
        src: Gm,
        src_elems: u64,
        idx: Gm,
        out: Gm,
        out_elems: u64,
        t: GatherTiling,
    ) -> u32;
    fn aclrtlaunch_osum_log_softmax_f32(
        blocks: u32,
        stream: *mut c_void,
        x: Gm,
        y: Gm,
        t: RowLossTiling,
    ) -> u32;
    fn aclrtlaunch_osum_cross_entropy_f32(
        blocks: u32,
        stream: *mut c_void,
        logits: Gm,
        targets: Gm,
        loss: Gm,
        t: RowLossTiling,
    ) -> u32;
    fn aclrtlaunch_osum_cross_entropy_bwd_f32(
        blocks: u32,
        stream: *mut c_void,
        logits: Gm,
        targets: Gm,
        grad: Gm,
        dlogits: Gm,
        t: RowLossTiling,
    ) -> u32;
    fn aclrtlaunch_osum_flash_attention_bwd_f32(
        blocks: u32,
        stream: *mut c_void,
        q: Gm,
        k: Gm,
        v: Gm,
        dout: Gm,
        dq: Gm,
        dk: Gm,
        dv: Gm,
        workspace: Gm,
        mask: Gm,
        t: AttentionTiling,
    ) -> u32;
    fn aclrtlaunch_osum_adamw_f32(
        blocks: u32,
        stream: *mut c_void,
        param: Gm,
        grad: Gm,
        m: Gm,
        v: Gm,
        t: AdamWTiling,
    ) -> u32;
}

fn u32_of(kernel: &'static str, v: usize) -> KernelResult<u32> {
    u32::try_from(v).map_err(|_| tiling_error(kernel, format!("{v} exceeds u32")))
}

/// An error naming `kernel` and the operand unless `g` holds at least `want` bytes.
pub(crate) fn need_bytes(
    kernel: &'static str,
    what: &str,
    g: &GmBytes,
    want: usize,
) -> KernelResult<()> {
    need_len(kernel, what, g.len, want, "bytes")
}

/// Blocks for `units` independent units of work on the vector cores.
fn vector_blocks(units: usize) -> u32 {
    units.clamp(1, AIV_CORES as usize) as u32
}

/// A chunk length (multiple of 8 f32) for rows of `cols`, at most [`ROW_CHUNK`].
fn row_chunk(cols: usize) -> usize {
    (cols.div_ceil(8) * 8).clamp(8, ROW_CHUNK)
}

/// Layer norm (`bias` optional) or RMS norm (`rms`, no bias) of `x` (`rows × cols`) into `y`.
#[allow(clippy::too_many_arguments)] // one launch: every operand is a kernel argument
pub fn norm_f32(
    stream: &Stream,
    rows: usize,
    cols: usize,
    eps: f32,
    rms: bool,
    x: GmF32,
    w: GmF32,
    b: Option<GmF32>,
    y: GmF32,
) -> KernelResult<LaunchStats> {
    const K: &str = "osum_norm_f32";
    let n = rows * cols;
    need_f32(K, "x", &x, n)?;
    need_f32(K, "y", &y, n)?;
    need_f32(K, "weight", &w, cols)?;
    if let Some(b) = &b {
        need_f32(K, "bias", b, cols)?;
    }
    if rms && b.is_some() {
        return Err(tiling_error(K, "rms norm takes no bias"));
    }
    let t = NormTiling {
        rows: u32_of(K, rows)?,
        cols: u32_of(K, cols)?,
        chunk_len: u32_of(K, row_chunk(cols).min(NORM_CHUNK))?,
        rms: u32::from(rms),
        has_bias: u32::from(b.is_some()),
        eps,
    };
    let bptr = b.map_or(std::ptr::null_mut(), |b| b.ptr());
    // SAFETY: ranges checked against live allocations and the shape; the signature matches
    // kernels/sim/launch_entries_nn.cpp.
    let code = unsafe {
        aclrtlaunch_osum_norm_f32(
            vector_blocks(rows),
            stream.raw(),
            x.ptr(),
            w.ptr(),
            bptr,
            y.ptr(),
            t,
        )
    };
    launched("aclrtlaunch_osum_norm_f32", code)
}

/// Largest head dim `osum_rope_f32` takes (its UB row buffers are sized by D).
pub const ROPE_MAX_DIM: usize = 8192;

/// Rotary embedding of `x` (`rows × 2·half`, row r at position r % t) with tables `[t, half]`.
#[allow(clippy::too_many_arguments)] // one launch: every operand is a kernel argument
pub fn rope_f32(
    stream: &Stream,
    rows: usize,
    t: usize,
    half: usize,
    interleaved: bool,
    x: GmF32,
    cos: GmF32,
    sin: GmF32,
    y: GmF32,
) -> KernelResult<LaunchStats> {
    const K: &str = "osum_rope_f32";
    if 2 * half > ROPE_MAX_DIM || half == 0 || t == 0 {
        return Err(tiling_error(
            K,
            format!("dim {} outside 2..={ROPE_MAX_DIM}", 2 * half),
        ));
    }
    need_f32(K, "x", &x, rows * 2 * half)?;
    need_f32(K, "y", &y, rows * 2 * half)?;
    need_f32(K, "cos", &cos, t * half)?;
    need_f32(K, "sin", &sin, t * half)?;
    let tiling = RopeTiling {
        rows: u32_of(K, rows)?,
        t: u32_of(K, t)?,
        half: u32_of(K, half)?,
        half_pad: u32_of(K, half.div_ceil(8) * 8)?,
        interleaved: u32::from(interleaved),
    };
    // SAFETY: as in norm_f32.
    let code = unsafe {
        aclrtlaunch_osum_rope_f32(
            vector_blocks(rows),
            stream.raw(),
            x.ptr(),
            cos.ptr(),
            sin.ptr(),
            y.ptr(),
            tiling,
        )
    };
    launched("aclrtlaunch_osum_rope_f32", code)
}

/// Reduce `x` seen as `[outer, n, inner]` over n into `y` (`outer·inner` f32, or u32 for
/// argmax; 4 bytes per element either way). `n` must be ≥ 1.
pub fn reduce_f32(
    stream: &Stream,
    op: ReduceKernelOp,
    (outer, n, inner): (usize, usize, usize),
    x: GmF32,
    y: GmBytes,
) -> KernelResult<LaunchStats> {
    const K: &str = "osum_reduce_f32";
    if n == 0 {
        return Err(tiling_error(K, "reducing an empty dimension"));
    }
    need_f32(K, "x", &x, outer * n * inner)?;
    need_bytes(K, "y", &y, outer * inner * 4)?;
    let chunk = if inner == 1 {
        row_chunk(n)
    } else {
        row_chunk(inner)
    };
    let inner_chunks = inner.div_ceil(chunk);
    let units = if inner == 1 {
        outer
    } else {
        outer * inner_chunks
    };
    let t = ReduceTiling {
        outer: u32_of(K, outer)?,
        n: u32_of(K, n)?,
        inner: u32_of(K, inner)?,
        op: op as u32,
        chunk_len: u32_of(K, chunk)?,
        inner_chunks: u32_of(K, inner_chunks)?,
    };
    // SAFETY: as in norm_f32.
    let code = unsafe {
        aclrtlaunch_osum_reduce_f32(vector_blocks(units), stream.raw(), x.ptr(), y.ptr(), t)
    };
    launched("aclrtlaunch_osum_reduce_f32", code)
}

/// `out[o, j, :] = src[o, ids[j], :]` with src `[outer, size, inner]` of `elem_bytes`-byte
/// elements (2, 4 or 8) and `n` u32 ids already checked to lie in `0..size`.
#[allow(clippy::too_many_arguments)] // one launch: every operand is a kernel argument
pub fn index_select(
    stream: &Stream,
    (outer, size, inner): (usize, usize, usize),
    n: usize,
    elem_bytes: usize,
    src: GmBytes,
    ids: GmBytes,
    out: GmBytes,
) -> KernelResult<LaunchStats> {
    const K: &str = "osum_index_select";
    if ![2, 4, 8].contains(&elem_bytes) {
        return Err(tiling_error(K, format!("{elem_bytes}-byte elements")));
    }
    need_bytes(K, "src", &src, outer * size * inner * elem_bytes)?;
    need_bytes(K, "ids", &ids, n * 4)?;
    need_bytes(K, "out", &out, outer * n * inner * elem_bytes)?;
    let row_units = inner * elem_bytes / 2;
    // 16-bit words per chunk: a multiple of 16 (32 bytes), at most 32 KiB per buffer.
    let chunk = (row_units.div_ceil(16) * 16).clamp(16, 16384);
    let t = IndexTiling {
        outer: u32_of(K, outer)?,
        size: u32_of(K, size)?,
        inner: u32_of(K, inner)?,
        n: u32_of(K, n)?,
        row_units: u32_of(K, row_units)?,
        chunk_len: u32_of(K, chunk)?,
        inner_chunks: 0,
    };
    // SAFETY: as in norm_f32; ids were range-checked by the caller, so every row read lies in src.
    let code = unsafe {
        aclrtlaunch_osum_index_select(
            vector_blocks(outer * n),
            stream.raw(),
            src.ptr(),
            ids.ptr(),
            out.ptr(),
            t,
        )
    };
    launched("aclrtlaunch_osum_index_select", code)
}

/// `out[o, ids[j], :] += src[o, j, :]` in place (f32), out `[outer, size, inner]`, src
/// `[outer, n, inner]`, ids checked to lie in `0..size`.
pub fn index_add_f32(
    stream: &Stream,
    (outer, size, inner): (usize, usize, usize),
    n: usize,
    src: GmF32,
    ids: GmBytes,
    out: GmF32,
) -> KernelResult<LaunchStats> {
    const K: &str = "osum_index_add_f32";
    need_f32(K, "src", &src, outer * n * inner)?;
    need_bytes(K, "ids", &ids, n * 4)?;
    need_f32(K, "out", &out, outer * size * inner)?;
    let chunk = row_chunk(inner);
    let inner_chunks = inner.div_ceil(chunk);
    let t = IndexTiling {
        outer: u32_of(K, outer)?,
        size: u32_of(K, size)?,
        inner: u32_of(K, inner)?,
        n: u32_of(K, n)?,
        row_units: 0,
        chunk_len: u32_of(K, chunk)?,
        inner_chunks: u32_of(K, inner_chunks)?,
    };
    // SAFETY: as in index_select.
    let code = unsafe {
        aclrtlaunch_osum_index_add_f32(
            vector_blocks(outer * inner_chunks),
            stream.raw(),
            src.ptr(),
            ids.ptr(),
            out.ptr(),
            t,
        )
    };
    launched("aclrtlaunch_osum_index_add_f32", code)
}

fn row_major_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// Tiling shared by gather and scatter_add: index shape, the data tensor's shape (src of gather,
/// dst of scatter_add) and scatter_add's src shape.
fn gather_tiling(
    kernel: &'static str,
    idx_shape: &[usize],
    data_shape: &[usize],
    src_shape: &[usize],
    dim: usize,
    units_per_elem: usize,
) -> KernelResult<GatherTiling> {
    let rank = idx_shape.len();
    if rank == 0 || rank > GATHER_MAX_RANK || dim >= rank {
        return Err(tiling_error(
            kernel,
            format!("rank {rank} (dim {dim}) outside 1..={GATHER_MAX_RANK}"),
        ));
    }
    let mut t = GatherTiling {
        total: u32_of(kernel, idx_shape.iter().product())?,
        rank: rank as u32,
        dim: dim as u32,
        units_per_elem: u32_of(kernel, units_per_elem)?,
        chunk_len: 1024,
        idx_shape: [1; GATHER_MAX_RANK],
        data_strides: [0; GATHER_MAX_RANK],
        src_strides: [0; GATHER_MAX_RANK],
    };
    let (ds, ss) = (row_major_strides(data_shape), row_major_strides(src_shape));
    for d in 0..rank {
        t.idx_shape[d] = u32_of(kernel, idx_shape[d])?;
        t.data_strides[d] = u32_of(kernel, ds[d])?;
        t.src_strides[d] = u32_of(kernel, ss.get(d).copied().unwrap_or(0))?;
    }
    Ok(t)
}

/// `out[p] = src[p with coordinate dim := idx[p]]` for every position p of the index (shape
/// `idx_shape`, u32 checked against `src_shape[dim]`), elements of `elem_bytes` (2, 4 or 8).
#[allow(clippy::too_many_arguments)] // one launch: every operand is a kernel argument
pub fn gather(
    stream: &Stream,
    src_shape: &[usize],
    idx_shape: &[usize],
    dim: usize,
    elem_bytes: usize,
    src: GmBytes,
    idx: GmBytes,
    out: GmBytes,
) -> KernelResult<LaunchStats> {
    const K: &str = "osum_gather";
    if ![2, 4, 8].contains(&elem_bytes) {
        return Err(tiling_error(K, format!("{elem_bytes}-byte elements")));
    }
    let t = gather_tiling(K, idx_shape, src_shape, &[], dim, elem_bytes / 2)?;
    let src_elems: usize = src_shape.iter().product();
    need_bytes(K, "src", &src, src_elems * elem_bytes)?;
    need_bytes(K, "idx", &idx, t.total as usize * 4)?;
    need_bytes(K, "out", &out, t.total as usize * elem_bytes)?;
    let chunks = (t.total as usize).div_ceil(t.chunk_len as usize);
    // SAFETY: as in index_select.
    let code = unsafe {
        aclrtlaunch_osum_gather(
            vector_blocks(chunks),
            stream.raw(),
            src.ptr(),
            src_elems as u64,
            idx.ptr(),
            out.ptr(),
            t,
        )
    };
    launched("aclrtlaunch_osum_gather", code)
}

/// `out[p with coordinate dim := idx[p]] += src[p]` in place (f32) for every position p of the
/// index (u32, checked against `out_shape[dim]`; `idx_shape` ≤ both shapes elsewhere).
#[allow(clippy::too_many_arguments)] // one launch: every operand is a kernel argument
pub fn scatter_add_f32(
    stream: &Stream,
    out_shape: &[usize],
    idx_shape: &[usize],
    src_shape: &[usize],
    dim: usize,
    src: GmF32,
    idx: GmBytes,
    out: GmF32,
) -> KernelResult<LaunchStats> {
    const K: &str = "osum_scatter_add_f32";
    let t = gather_tiling(K, idx_shape, out_shape, src_shape, dim, 2)?;
    let (src_elems, out_elems) = (
        src_shape.iter().product::<usize>(),
        out_shape.iter().product::<usize>(),
    );
    need_f32(K, "src", &src, src_elems)?;
    need_bytes(K, "idx", &idx, t.total as usize * 4)?;
    need_f32(K, "out", &out, out_elems)?;
    let along = idx_shape[dim].max(1);
    let lines = t.total as usize / along;
    // SAFETY: as in index_select.
    let code = unsafe {
        aclrtlaunch_osum_scatter_add_f32(
            vector_blocks(lines),
            stream.raw(),
            src.ptr(),
            src_elems as u64,
            idx.ptr(),
            out.ptr(),
            out_elems as u64,
            t,
        )
    };
    launched("aclrtlaunch_osum_scatter_add_f32", code)
}

fn row_loss_tiling(
    kernel: &'static str,
    rows: usize,
    cols: usize,
) -> KernelResult<(u32, RowLossTiling)> {
    let blocks = vector_blocks(rows);
    let rows_per_block = rows.div_ceil(blocks as usize).max(1);
    Ok((
        rows.div_ceil(rows_per_block).max(1) as u32,
        RowLossTiling {
            rows: u32_of(kernel, rows)?,
            cols: u32_of(kernel, cols)?,
            chunk_len: u32_of(kernel, row_chunk(cols))?,
            rows_per_block: u32_of(kernel, rows_per_block)?,
            out_chunk: 1024,
        },
    ))
}

/// Row log-softmax of `x` (`rows × cols`) into `y`.
pub fn log_softmax_f32(
    stream: &Stream,
    rows: usize,
    cols: usize,
    x: GmF32,
    y: GmF32,
) -> KernelResult<LaunchStats> {
    const K: &str = "osum_log_softmax_f32";
    need_f32(K, "x", &x, rows * cols)?;
    need_f32(K, "y", &y, rows * cols)?;
    let (_, t) = row_loss_tiling(K, rows, cols)?;
    // SAFETY: as in norm_f32.
    let code = unsafe {
        aclrtlaunch_osum_log_softmax_f32(vector_blocks(rows), stream.raw(), x.ptr(), y.ptr(), t)
    };
    launched("aclrtlaunch_osum_log_softmax_f32", code)
}

/// Per-row NLL of `logits` (`rows × cols`) at u32 `targets` (checked; `u32::MAX` = ignored).
pub fn cross_entropy_f32(
    stream: &Stream,
    rows: usize,
    cols: usize,
    logits: GmF32,
    targets: GmBytes,
    loss: GmF32,
) -> KernelResult<LaunchStats> {
    const K: &str = "osum_cross_entropy_f32";
    need_f32(K, "logits", &logits, rows * cols)?;
    need_bytes(K, "targets", &targets, rows * 4)?;
    need_f32(K, "loss", &loss, rows)?;
    let (blocks, t) = row_loss_tiling(K, rows, cols)?;
    // SAFETY: as in norm_f32; targets were range-checked by the caller.
    let code = unsafe {
        aclrtlaunch_osum_cross_entropy_f32(
            blocks,
            stream.raw(),
            logits.ptr(),
            targets.ptr(),
            loss.ptr(),
            t,
        )
    };
    launched("aclrtlaunch_osum_cross_entropy_f32", code)
}

/// Gradient of [`cross_entropy_f32`] w.r.t. the logits, scaled per row by `grad`.
#[allow(clippy::too_many_arguments)] // one launch: every operand is a kernel argument
pub fn cross_entropy_backward_f32(
    stream: &Stream,
    rows: usize,
    cols: usize,
    logits: GmF32,
    targets: GmBytes,
    grad: GmF32,
    dlogits: GmF32,
) -> KernelResult<LaunchStats> {
    const K: &str = "osum_cross_entropy_bwd_f32";
    need_f32(K, "logits", &logits, rows * cols)?;
    need_bytes(K, "targets", &targets, rows * 4)?;
    need_f32(K, "grad", &grad, rows)?;
    need_f32(K, "dlogits", &dlogits, rows * cols)?;
    let (blocks, t) = row_loss_tiling(K, rows, cols)?;
    // SAFETY: as in cross_entropy_f32.
    let code = unsafe {
        aclrtlaunch_osum_cross_entropy_bwd_f32(
            blocks,
            stream.raw(),
            logits.ptr(),
            targets.ptr(),
            grad.ptr(),
            dlogits.ptr(),
            t,
        )
    };
    launched("aclrtlaunch_osum_cross_entropy_bwd_f32", code)
}

/// One fused AdamW step in place on `param`, `m`, `v` (all `n` f32) with gradient `grad`.
pub fn adamw_f32(
    stream: &Stream,
    hp: &AdamWParams,
    param: GmF32,
    grad: GmF32,
    m: GmF32,
    v: GmF32,
) -> KernelResult<LaunchStats> {
    const K: &str = "osum_adamw_f32";
    let n = param.len;
    for (what, g) in [("grad", &grad), ("m", &m), ("v", &v)] {
        need_f32(K, what, g, n)?;
    }
    if n == 0 {
        return Err(tiling_error(K, "no elements"));
    }
    // Bias corrections in f64 then f32, exactly as engine/cpu/optim.rs.
    let t = hp.step.min(i32::MAX as u64) as i32;
    let bc1 = 1.0 - (hp.beta1 as f64).powi(t);
    let bc2 = 1.0 - (hp.beta2 as f64).powi(t);
    let total = u32_of(K, n)?;
    let blocks = total.div_ceil(2048).clamp(1, AIV_CORES);
    let block_length = total.div_ceil(blocks).div_ceil(8) * 8;
    let blocks = total.div_ceil(block_length);
    let tiling = AdamWTiling {
        total,
        block_length,
        // 7 queues × 2 buffers + 2 scratch tiles of 8 KiB = 128 KiB of UB.
        tile_length: block_length.min(2048),
        decay: 1.0 - hp.lr * hp.weight_decay,
        b1: hp.beta1,
        b2: hp.beta2,
        inv_bc1: (1.0 / bc1) as f32,
        inv_bc2: (1.0 / bc2) as f32,
        lr: hp.lr,
        eps: hp.eps,
    };
    // SAFETY: as in norm_f32.
    let code = unsafe {
        aclrtlaunch_osum_adamw_f32(
            blocks,
            stream.raw(),
            param.ptr(),
            grad.ptr(),
            m.ptr(),
            v.ptr(),
            tiling,
        )
    };
    launched("aclrtlaunch_osum_adamw_f32", code)
}

/// Tiling of `osum_flash_attention_bwd_f32`: the forward's query/key blocks (≤ 64) and head
/// dim padding, one unit per (batch, kv head) so a block owns dK/dV of its kv head and dQ of
/// that head's query group; workspace per block for S/P, dP/dS, the five staged transposes and
/// one product tile. Returns (blocks, tiling).
pub fn attention_backward_tiling(s: &AttentionShape) -> KernelResult<(u32, AttentionTiling)> {
    const K: &str = "osum_flash_attention_bwd_f32";
    let (_, mut t) = attention_tiling(s)?;
    let (bq, bk, dp) = (t.block_q as usize, t.block_k as usize, t.d_pad as usize);
    let ws = 4 * bq * bk + dp * bk + 2 * dp * bq + bq.max(bk) * dp;
    t.ws_per_block = u32_of(K, ws)?;
    let units = s.batch * s.heads_kv;
    Ok((units.clamp(1, AIC_CORES as usize) as u32, t))
}

/// Gradients (dq, dk, dv) of flash attention (f32, contiguous operands) on `stream`. `dk` and
/// `dv` must hold zeros; `workspace` [`AttentionTiling::ws_per_block`] floats per block.
#[allow(clippy::too_many_arguments)] // one launch: every operand is a kernel argument
pub fn flash_attention_backward_f32(
    stream: &Stream,
    shape: &AttentionShape,
    (q, k, v, dout): (GmF32, GmF32, GmF32, GmF32),
    mask: Option<&AttentionMask>,
    dq: GmF32,
    dk: GmF32,
    dv: GmF32,
    workspace: GmF32,
) -> KernelResult<LaunchStats> {
    const K: &str = "osum_flash_attention_bwd_f32";
    let (blocks, mut tiling) = attention_backward_tiling(shape)?;
    set_attention_mask(K, shape, &mut tiling, mask)?;
    let q_len = shape.batch * shape.heads_q * shape.tq * shape.d;
    let kv_len = shape.batch * shape.heads_kv * shape.tk * shape.d;
    for (what, g, want) in [
        ("q", &q, q_len),
        ("dout", &dout, q_len),
        ("dq", &dq, q_len),
        ("k", &k, kv_len),
        ("v", &v, kv_len),
        ("dk", &dk, kv_len),
        ("dv", &dv, kv_len),
        (
            "workspace",
            &workspace,
            blocks as usize * tiling.ws_per_block as usize,
        ),
    ] {
        need_f32(K, what, g, want)?;
    }
    // SAFETY: every range checked against a live allocation and the shape; the signature
    // matches kernels/sim/launch_entries_nn.cpp.
    let code = unsafe {
        aclrtlaunch_osum_flash_attention_bwd_f32(
            blocks,
            stream.raw(),
            q.ptr(),
            k.ptr(),
            v.ptr(),
            dout.ptr(),
            dq.ptr(),
            dk.ptr(),
            dv.ptr(),
            workspace.ptr(),
            mask.map_or(std::ptr::null_mut(), |m| m.gm.ptr()),
            tiling,
        )
    };
    launched("aclrtlaunch_osum_flash_attention_bwd_f32", code)
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" {
        fn osum_sim_nn_tiling_sizes(which: u32) -> usize;
    }

    #[test]
    fn ascend_nn_tiling_mirrors_have_the_kernel_layouts() {
        use std::mem::size_of;
        let sizes = [
            size_of::<NormTiling>(),
            size_of::<RopeTiling>(),
            size_of::<ReduceTiling>(),
            size_of::<IndexTiling>(),
            size_of::<GatherTiling>(),
            size_of::<RowLossTiling>(),
            size_of::<AdamWTiling>(),
        ];
        for (i, s) in sizes.into_iter().enumerate() {
            // SAFETY: no pointers; returns a size.
            assert_eq!(
                unsafe { osum_sim_nn_tiling_sizes(i as u32) },
                s,
                "struct {i}"
            );
        }
    }

    #[test]
    fn ascend_row_chunks_are_aligned_and_bounded() {
        for cols in [1usize, 7, 8, 9, 8191, 8193, 150_000] {
            let c = row_chunk(cols);
            assert_eq!(c % 8, 0);
            assert!(c <= ROW_CHUNK && c >= cols.min(8));
        }
    }
}
