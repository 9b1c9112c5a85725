//! Host side of our AscendC kernels: tiling (computed here, passed by value) and launch wrappers
//! over the `aclrtlaunch_<kernel>` entries.
//!
//! The kernel sources are `kernels/ascend/*.cpp`; in this build they run on the simulator
//! (`kernels/sim/`), which checks 910B capacities, alignment and queue discipline and counts the
//! work of every launch ([`LaunchStats`], simulation counters, not NPU measurements).
//! Tiling structs mirror `kernels/ascend/tiling.h` field for field.
//!
//! Used only by `engine::ascend` (and tests).

pub mod nn;

use crate::ffi::{AclError, DeviceMemory, Stream};
use std::ffi::c_void;

pub mod conv;
pub mod lora;
pub mod plain;
pub mod roofline;

/// AI cube cores of the simulated SoC (Ascend910B3: 20 AIC / 40 AIV, ASCEND.md roofline table).
pub const AIC_CORES: u32 = 20;
/// AI vector cores of the simulated SoC.
pub const AIV_CORES: u32 = 40;

/// A kernel that could not be tiled or whose launch failed.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The launch entry or the runtime returned an error (the simulator names kernel, block
    /// and the broken rule in the message).
    #[error(transparent)]
    Acl(#[from] AclError),
    /// The arguments cannot be tiled for this kernel.
    #[error("kernel {kernel}: {msg}")]
    Tiling {
        /// Kernel name.
        kernel: &'static str,
        /// What does not fit.
        msg: String,
    },
}

/// Result of a host-side kernel call.
pub type KernelResult<T> = std::result::Result<T, KernelError>;

fn tiling_error(kernel: &'static str, msg: impl Into<String>) -> KernelError {
    KernelError::Tiling {
        kernel,
        msg: msg.into(),
    }
}

/// Mirror of `ElementwiseTiling` (kernels/ascend/tiling.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElementwiseTiling {
    /// Elements in all.
    pub total_length: u32,
    /// Elements per block (a multiple of 8).
    pub block_length: u32,
    /// Elements per UB tile (a multiple of 8).
    pub tile_length: u32,
    /// [`BinaryKernelOp`] code.
    pub op: u32,
}

/// Mirror of `MatmulTiling` (kernels/ascend/tiling.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatmulTiling {
    /// Rows of A and C.
    pub m: u32,
    /// Rows of Bt, columns of C.
    pub n: u32,
    /// Shared inner dimension.
    pub k: u32,
    /// Row stride of A (elements).
    pub lda: u32,
    /// Row stride of Bt.
    pub ldb: u32,
    /// Row stride of C.
    pub ldc: u32,
    /// Output tile rows (multiple of 16).
    pub base_m: u32,
    /// Output tile columns (multiple of 16).
    pub base_n: u32,
    /// K step (multiple of 8).
    pub base_k: u32,
    /// Tiles along M.
    pub tiles_m: u32,
    /// Tiles along N.
    pub tiles_n: u32,
}

/// Mirror of `AttentionTiling` (kernels/ascend/tiling.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionTiling {
    /// Batch size.
    pub batch: u32,
    /// Query heads.
    pub heads_q: u32,
    /// Key/value heads (divides `heads_q`).
    pub heads_kv: u32,
    /// Query length.
    pub tq: u32,
    /// Key length.
    pub tk: u32,
    /// Head dimension.
    pub d: u32,
    /// `d` rounded up to 16.
    pub d_pad: u32,
    /// Query rows per tile (multiple of 16).
    pub block_q: u32,
    /// Keys per block (multiple of 16).
    pub block_k: u32,
    /// Query tiles per head.
    pub tiles_q: u32,
    /// 1: query i sees keys j ≤ i + (tk − tq).
    pub causal: u32,
    /// Workspace floats per block.
    pub ws_per_block: u32,
    /// Multiplies q·kᵀ.
    pub scale: f32,
    /// 1: an additive mask is passed.
    pub has_mask: u32,
    /// Element strides of the mask viewed as `[batch, heads_q, tq, tk]` (0 = broadcast).
    pub mask_strides: [u32; 4],
    /// Mask elements readable from the mask pointer.
    pub mask_elems: u32,
}

/// Mirror of `SoftmaxTiling` (kernels/ascend/tiling.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftmaxTiling {
    /// Rows.
    pub rows: u32,
    /// Elements per row (the softmax dimension).
    pub cols: u32,
    /// Elements per UB chunk (a multiple of 8).
    pub chunk_len: u32,
}

/// Mirror of `OsumSimLaunchStats` (kernels/sim/osum_sim.h): what one launch did on the
/// simulator, summed over its blocks. Simulation counters, not hardware measurements.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaunchStats {
    /// Blocks launched.
    pub blocks: u64,
    /// GM → UB bytes (MTE2).
    pub gm_to_ub_bytes: u64,
    /// UB → GM bytes (MTE3).
    pub ub_to_gm_bytes: u64,
    /// UB → UB bytes.
    pub ub_to_ub_bytes: u64,
    /// GM → L1 bytes.
    pub gm_to_l1_bytes: u64,
    /// L1 → L0A/L0B bytes (MTE1).
    pub l1_to_l0_bytes: u64,
    /// L0C → GM bytes (FixPipe).
    pub l0c_to_gm_bytes: u64,
    /// 256-byte vector repeats.
    pub vector_repeats: u64,
    /// Elements through vector instructions.
    pub vector_elems: u64,
    /// Cube multiply-accumulates.
    pub cube_macs: u64,
    /// Largest UB footprint of a block.
    pub peak_ub_bytes: u64,
    /// Largest L1 footprint.
    pub peak_l1_bytes: u64,
    /// Largest L0A footprint.
    pub peak_l0a_bytes: u64,
    /// Largest L0B footprint.
    pub peak_l0b_bytes: u64,
    /// Largest L0C footprint.
    pub peak_l0c_bytes: u64,
}

/// Elementwise binary ops of `osum_binary_f32` (the `op` code in its tiling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryKernelOp {
    /// x + y
    Add = 0,
    /// x · y
    Mul = 1,
    /// x − y
    Sub = 2,
    /// max(x, y)
    Max = 3,
    /// x / y
    Div = 4,
    /// min(x, y)
    Min = 5,
}

type Gm = *mut u8;

extern "C" {
    fn aclrtlaunch_osum_binary_f32(
        blocks: u32,
        stream: *mut c_void,
        x: Gm,
        y: Gm,
        z: Gm,
        tiling: ElementwiseTiling,
    ) -> u32;
    fn aclrtlaunch_osum_matmul_f32(
        blocks: u32,
        stream: *mut c_void,
        a: Gm,
        bt: Gm,
        c: Gm,
        tiling: MatmulTiling,
    ) -> u32;
    fn aclrtlaunch_osum_flash_attention_f32(
        blocks: u32,
        stream: *mut c_void,
        q: Gm,
        k: Gm,
        v: Gm,
        out: Gm,
        workspace: Gm,
        mask: Gm,
        tiling: AttentionTiling,
    ) -> u32;
    fn aclrtlaunch_osum_flash_attention_f16(
        blocks: u32,
        stream: *mut c_void,
        q: Gm,
        k: Gm,
        v: Gm,
        out: Gm,
        workspace: Gm,
        mask: Gm,
        tiling: AttentionTiling,
    ) -> u32;
    fn aclrtlaunch_osum_flash_attention_bf16(
        blocks: u32,
        stream: *mut c_void,
        q: Gm,
        k: Gm,
        v: Gm,
        out: Gm,
        workspace: Gm,
        mask: Gm,
        tiling: AttentionTiling,
    ) -> u32;
    fn aclrtlaunch_osum_softmax_f32(
        blocks: u32,
        stream: *mut c_void,
        x: Gm,
        y: Gm,
        tiling: SoftmaxTiling,
    ) -> u32;
    fn osum_sim_last_launch_stats(out: *mut LaunchStats);
}

/// Counters of the last launch on this thread (simulation).
pub fn last_launch_stats() -> LaunchStats {
    let mut s = LaunchStats::default();
    // SAFETY: `s` is a valid out-pointer of the layout the simulator writes (checked by a test).
    unsafe { osum_sim_last_launch_stats(&mut s) };
    s
}

/// A range of f32 elements in device memory, checked against its allocation.
#[derive(Debug, Clone, Copy)]
pub struct GmF32<'a> {
    mem: &'a DeviceMemory,
    offset: usize,
    len: usize,
}

impl<'a> GmF32<'a> {
    /// Elements `offset..offset + len` of `mem` viewed as f32.
    pub fn new(
        kernel: &'static str,
        mem: &'a DeviceMemory,
        offset: usize,
        len: usize,
    ) -> KernelResult<Self> {
        let end = offset
            .checked_add(len)
            .and_then(|e| e.checked_mul(4))
            .ok_or_else(|| tiling_error(kernel, "element range overflows"))?;
        if end > mem.bytes() {
            return Err(tiling_error(
                kernel,
                format!(
                    "elements {offset}..{} exceed a {}-byte buffer",
                    offset + len,
                    mem.bytes()
                ),
            ));
        }
        Ok(GmF32 { mem, offset, len })
    }
    fn ptr(&self) -> Gm {
        // In bounds: checked in `new` (the address is only passed to the launch entry).
        self.mem.ptr().cast::<u8>().wrapping_add(self.offset * 4)
    }
}

/// An error naming `kernel` and the operand unless `g` holds at least `want` floats.
pub(crate) fn need_f32(
    kernel: &'static str,
    what: &str,
    g: &GmF32,
    want: usize,
) -> KernelResult<()> {
    need_len(kernel, what, g.len, want, "floats")
}

/// An error naming `kernel` and the operand unless it holds (`have`) at least `want` `unit`s:
/// the one operand-length check behind [`need_f32`] and `nn::need_bytes`.
pub(crate) fn need_len(
    kernel: &'static str,
    what: &str,
    have: usize,
    want: usize,
    unit: &str,
) -> KernelResult<()> {
    if have < want {
        return Err(tiling_error(
            kernel,
            format!("{what} holds {have} {unit}, needs {want}"),
        ));
    }
    Ok(())
}

fn launched(call: &'static str, code: u32) -> KernelResult<LaunchStats> {
    crate::ffi::check(call, code as i32)?;
    let stats = last_launch_stats();
    LAUNCH_LOG.with(|log| {
        if let Some(v) = log.borrow_mut().as_mut() {
            v.push(KernelLaunch {
                kernel: call.strip_prefix("aclrtlaunch_").unwrap_or(call),
                stats,
            });
        }
    });
    Ok(stats)
}

/// One successful kernel launch: the kernel and its simulator counters (simulation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelLaunch {
    /// Kernel name (`osum_matmul_f32`, …).
    pub kernel: &'static str,
    /// What the launch did on the simulator.
    pub stats: LaunchStats,
}

thread_local! {
    /// The launches of the innermost [`collect_launches`] on this thread (`None` outside one).
    static LAUNCH_LOG: std::cell::RefCell<Option<Vec<KernelLaunch>>> =
        const { std::cell::RefCell::new(None) };
}

/// Run `f` and return, with its result, every kernel launch it made on this thread, in order
/// (the profiler attributes them to the device op `f` is). Launches on the simulator run on
/// the calling thread, so nothing is missed; nested collections also add theirs to the outer
/// one. Outside a collection a launch costs nothing extra.
pub fn collect_launches<T>(f: impl FnOnce() -> T) -> (T, Vec<KernelLaunch>) {
    let outer = LAUNCH_LOG.with(|log| log.borrow_mut().replace(Vec::new()));
    let out = f();
    let mine = LAUNCH_LOG.with(|log| {
        let mut log = log.borrow_mut();
        let mine = log.take().unwrap_or_default();
        if let Some(mut outer) = outer {
            outer.extend_from_slice(&mine);
            *log = Some(outer);
        }
        mine
    });
    (out, mine)
}

/// Tiling of `osum_binary_f32` for `total` elements: up to [`AIV_CORES`] blocks of at least 2048
/// elements, tiles of up to 4096 f32 (3 queues × 2 buffers × 16 KiB = 96 KiB of UB).
pub fn elementwise_tiling(
    total: usize,
    op: BinaryKernelOp,
) -> KernelResult<(u32, ElementwiseTiling)> {
    const KERNEL: &str = "osum_binary_f32";
    let total32 = u32::try_from(total)
        .map_err(|_| tiling_error(KERNEL, format!("{total} elements exceed u32")))?;
    if total32 == 0 {
        return Err(tiling_error(KERNEL, "no elements"));
    }
    let blocks = total32.div_ceil(2048).clamp(1, AIV_CORES);
    let block_length = total32.div_ceil(blocks).div_ceil(8) * 8;
    let blocks = total32.div_ceil(block_length);
    Ok((
        blocks,
        ElementwiseTiling {
            total_length: total32,
            block_length,
            tile_length: block_length.min(4096),
            op: op as u32,
        },
    ))
}

/// `z = x (op) y` over `x.len` f32 elements on `stream`.
pub fn binary_f32(
    stream: &Stream,
    op: BinaryKernelOp,
    x: GmF32,
    y: GmF32,
    z: GmF32,
) -> KernelResult<LaunchStats> {
    if x.len != y.len || x.len != z.len {
        return Err(tiling_error(
            "osum_binary_f32",
            format!("lengths {} / {} / {} differ", x.len, y.len, z.len),
        ));
    }
    let (blocks, tiling) = elementwise_tiling(x.len, op)?;
    // SAFETY: the three ranges were bounds-checked against live allocations (GmF32::new) and
    // the entry's signature matches kernels/sim/launch_entries.cpp.
    let code = unsafe {
        aclrtlaunch_osum_binary_f32(blocks, stream.raw(), x.ptr(), y.ptr(), z.ptr(), tiling)
    };
    launched("aclrtlaunch_osum_binary_f32", code)
}

/// Shape and strides of one `C = A·Btᵀ` product (row-major, strides in elements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatmulShape {
    /// Rows of A and C.
    pub m: usize,
    /// Rows of Bt, columns of C.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// Row stride of A (≥ k).
    pub lda: usize,
    /// Row stride of Bt (≥ k).
    pub ldb: usize,
    /// Row stride of C (≥ n).
    pub ldc: usize,
}

/// Tiling of `osum_matmul_f32`: output tiles up to 128×128, K steps of up to 64 (f32: L0A/L0B
/// 32 KiB each, L0C 64 KiB, L1 128 KiB with double-buffered A1/B1), one block per tile up to
/// [`AIC_CORES`].
pub fn matmul_tiling(s: &MatmulShape) -> KernelResult<(u32, MatmulTiling)> {
    const KERNEL: &str = "osum_matmul_f32";
    if s.m == 0 || s.n == 0 || s.k == 0 {
        return Err(tiling_error(KERNEL, format!("empty product {s:?}")));
    }
    if s.lda < s.k || s.ldb < s.k || s.ldc < s.n {
        return Err(tiling_error(
            KERNEL,
            format!("row strides smaller than rows: {s:?}"),
        ));
    }
    // Nd2NzParams holds row counts and source strides in 16 bits.
    if s.lda > 65535 || s.ldb > 65535 {
        return Err(tiling_error(
            KERNEL,
            format!(
                "row strides {} / {} exceed the 65535 an Nd2Nz copy takes",
                s.lda, s.ldb
            ),
        ));
    }
    let u =
        |v: usize| u32::try_from(v).map_err(|_| tiling_error(KERNEL, format!("{v} exceeds u32")));
    let round = |v: usize, a: usize| v.div_ceil(a) * a;
    let base_m = round(s.m, 16).min(128);
    let base_n = round(s.n, 16).min(128);
    let base_k = round(s.k, 8).min(64);
    let tiles_m = s.m.div_ceil(base_m);
    let tiles_n = s.n.div_ceil(base_n);
    let tiles = tiles_m
        .checked_mul(tiles_n)
        .ok_or_else(|| tiling_error(KERNEL, "too many tiles"))?;
    let blocks = u(tiles)?.min(AIC_CORES);
    Ok((
        blocks,
        MatmulTiling {
            m: u(s.m)?,
            n: u(s.n)?,
            k: u(s.k)?,
            lda: u(s.lda)?,
            ldb: u(s.ldb)?,
            ldc: u(s.ldc)?,
            base_m: u(base_m)?,
            base_n: u(base_n)?,
            base_k: u(base_k)?,
            tiles_m: u(tiles_m)?,
            tiles_n: u(tiles_n)?,
        },
    ))
}

/// `C = A·Btᵀ` on the cube (f32). The ranges must hold the strided matrices.
pub fn matmul_f32(
    stream: &Stream,
    shape: &MatmulShape,
    a: GmF32,
    bt: GmF32,
    c: GmF32,
) -> KernelResult<LaunchStats> {
    const KERNEL: &str = "osum_matmul_f32";
    let (blocks, tiling) = matmul_tiling(shape)?;
    let need = |rows: usize, ld: usize, cols: usize| (rows - 1) * ld + cols;
    for (name, g, want) in [
        ("A", &a, need(shape.m, shape.lda, shape.k)),
        ("Bt", &bt, need(shape.n, shape.ldb, shape.k)),
        ("C", &c, need(shape.m, shape.ldc, shape.n)),
    ] {
        need_f32(KERNEL, name, g, want)?;
    }
    // SAFETY: ranges checked against live allocations and against the shape above; the entry's
    // signature matches kernels/sim/launch_entries.cpp.
    let code = unsafe {
        aclrtlaunch_osum_matmul_f32(blocks, stream.raw(), a.ptr(), bt.ptr(), c.ptr(), tiling)
    };
    launched("aclrtlaunch_osum_matmul_f32", code)
}

/// Tiling of `osum_softmax_f32` for `rows` rows of `cols`: chunks of up to 8192 f32
/// (2 × 2 queues × 32 KiB = 128 KiB of UB), one row per block at a time up to [`AIV_CORES`].
pub fn softmax_tiling(rows: usize, cols: usize) -> KernelResult<(u32, SoftmaxTiling)> {
    const KERNEL: &str = "osum_softmax_f32";
    if rows == 0 || cols == 0 {
        return Err(tiling_error(
            KERNEL,
            format!("empty softmax {rows} x {cols}"),
        ));
    }
    let u =
        |v: usize| u32::try_from(v).map_err(|_| tiling_error(KERNEL, format!("{v} exceeds u32")));
    u(rows
        .checked_mul(cols)
        .ok_or_else(|| tiling_error(KERNEL, "size overflows"))?)?;
    Ok((
        u(rows)?.min(AIV_CORES),
        SoftmaxTiling {
            rows: u(rows)?,
            cols: u(cols)?,
            chunk_len: u(cols.div_ceil(8) * 8)?.min(8192),
        },
    ))
}

/// Row softmax of `x` (`rows × cols`, contiguous f32) into `y` on `stream`.
pub fn softmax_f32(
    stream: &Stream,
    rows: usize,
    cols: usize,
    x: GmF32,
    y: GmF32,
) -> KernelResult<LaunchStats> {
    let (blocks, tiling) = softmax_tiling(rows, cols)?;
    if x.len < rows * cols || y.len < rows * cols {
        return Err(tiling_error(
            "osum_softmax_f32",
            "x or y shorter than rows x cols",
        ));
    }
    // SAFETY: ranges checked against live allocations and the shape; the signature matches
    // kernels/sim/launch_entries.cpp.
    let code =
        unsafe { aclrtlaunch_osum_softmax_f32(blocks, stream.raw(), x.ptr(), y.ptr(), tiling) };
    launched("aclrtlaunch_osum_softmax_f32", code)
}

/// Shape of one attention call (q `[batch, heads_q, tq, d]`, k/v `[batch, heads_kv, tk, d]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionShape {
    /// Batch size.
    pub batch: usize,
    /// Query heads.
    pub heads_q: usize,
    /// Key/value heads.
    pub heads_kv: usize,
    /// Query length.
    pub tq: usize,
    /// Key length.
    pub tk: usize,
    /// Head dimension.
    pub d: usize,
    /// Causal mask aligned to the end (decode with a KV cache works unchanged).
    pub causal: bool,
    /// Multiplies q·kᵀ.
    pub scale: f32,
}

/// Largest head dimension `osum_flash_attention_f32` takes (L0B holds a 128 × 128 f32 tile).
pub const ATTENTION_MAX_HEAD_DIM: usize = 128;

/// Tiling of `osum_flash_attention_f32`: query tiles of up to 64 rows, key blocks of up to 64
/// (f32: L0A 32 KiB, L0B 64 KiB, L0C 32 KiB, L1 192 KiB, UB ≈ 65 KiB at d = 128), one unit
/// (batch, head, query tile) per block up to [`AIC_CORES`]. Returns (blocks, tiling).
pub fn attention_tiling(s: &AttentionShape) -> KernelResult<(u32, AttentionTiling)> {
    const KERNEL: &str = "osum_flash_attention_f32";
    if s.batch == 0 || s.heads_q == 0 || s.heads_kv == 0 || s.tq == 0 || s.tk == 0 || s.d == 0 {
        return Err(tiling_error(KERNEL, format!("empty attention {s:?}")));
    }
    if !s.heads_q.is_multiple_of(s.heads_kv) {
        return Err(tiling_error(
            KERNEL,
            format!("{} query heads over {} kv heads", s.heads_q, s.heads_kv),
        ));
    }
    if s.d > ATTENTION_MAX_HEAD_DIM {
        return Err(tiling_error(
            KERNEL,
            format!("head dim {} > {ATTENTION_MAX_HEAD_DIM}", s.d),
        ));
    }
    let u =
        |v: usize| u32::try_from(v).map_err(|_| tiling_error(KERNEL, format!("{v} exceeds u32")));
    let round16 = |v: usize| v.div_ceil(16) * 16;
    let (block_q, block_k, d_pad) = (round16(s.tq).min(64), round16(s.tk).min(64), round16(s.d));
    let tiles_q = s.tq.div_ceil(block_q);
    let units = s.batch * s.heads_q * tiles_q;
    let ws = block_q * block_k + d_pad * block_k + block_q * d_pad;
    Ok((
        u(units)?.min(AIC_CORES),
        AttentionTiling {
            batch: u(s.batch)?,
            heads_q: u(s.heads_q)?,
            heads_kv: u(s.heads_kv)?,
            tq: u(s.tq)?,
            tk: u(s.tk)?,
            d: u(s.d)?,
            d_pad: u(d_pad)?,
            block_q: u(block_q)?,
            block_k: u(block_k)?,
            tiles_q: u(tiles_q)?,
            causal: u32::from(s.causal),
            ws_per_block: u(ws)?,
            scale: s.scale,
            has_mask: 0,
            mask_strides: [0; 4],
            mask_elems: 0,
        },
    ))
}

/// Element type of the forward attention kernel's Q, K and V (the mask and the output are f32
/// for all of them): the cube is fed this type with f32 accumulation, the softmax runs in f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionElem {
    /// `osum_flash_attention_f32`.
    F32,
    /// `osum_flash_attention_f16`: IEEE binary16 Q/K/V, P rounded to f16 for P·V.
    F16,
    /// `osum_flash_attention_bf16`: bfloat16 Q/K/V, P rounded to bf16 for P·V.
    Bf16,
}

impl AttentionElem {
    /// The kernel's name.
    pub fn kernel(self) -> &'static str {
        match self {
            AttentionElem::F32 => "osum_flash_attention_f32",
            AttentionElem::F16 => "osum_flash_attention_f16",
            AttentionElem::Bf16 => "osum_flash_attention_bf16",
        }
    }
    /// Bytes per Q/K/V element.
    pub fn bytes(self) -> usize {
        match self {
            AttentionElem::F32 => 4,
            AttentionElem::F16 | AttentionElem::Bf16 => 2,
        }
    }
}

/// [`attention_tiling`] for Q/K/V of `elem`: half types need one more workspace region per
/// block, P `[block_q × block_k]` in the half type (the f32 kernel writes P over its f32 scores
/// S; the half kernel writes it beside them), i.e. `block_q·block_k/2` more floats.
pub fn attention_tiling_for(
    s: &AttentionShape,
    elem: AttentionElem,
) -> KernelResult<(u32, AttentionTiling)> {
    let (blocks, mut t) = attention_tiling(s)?;
    if elem != AttentionElem::F32 {
        // block_q and block_k are multiples of 16, so the half P fills whole floats.
        let extra = t.block_q * t.block_k / 2;
        t.ws_per_block = t.ws_per_block.checked_add(extra).ok_or_else(|| {
            tiling_error(elem.kernel(), "workspace per block exceeds u32".to_string())
        })?;
    }
    Ok((blocks, t))
}

/// Floats of workspace `osum_flash_attention_f32` needs for `blocks` blocks of `tiling`.
pub fn attention_workspace_len(blocks: u32, tiling: &AttentionTiling) -> usize {
    blocks as usize * tiling.ws_per_block as usize
}

/// An additive f32 mask for the attention kernels: `gm` starts at the view's first element and
/// `strides` address it as `[batch, heads_q, tq, tk]` (0 = broadcast).
#[derive(Debug, Clone, Copy)]
pub struct AttentionMask<'a> {
    /// The mask elements (from the view's offset to one past its largest index).
    pub gm: GmF32<'a>,
    /// Element strides over `[batch, heads_q, tq, tk]`.
    pub strides: [usize; 4],
}

/// Put `mask` into `tiling` (or leave it maskless); checks the strides reach only `mask.gm`.
pub fn set_attention_mask(
    kernel: &'static str,
    shape: &AttentionShape,
    tiling: &mut AttentionTiling,
    mask: Option<&AttentionMask>,
) -> KernelResult<()> {
    let Some(m) = mask else {
        return Ok(());
    };
    let dims = [shape.batch, shape.heads_q, shape.tq, shape.tk];
    let last: usize = dims
        .iter()
        .zip(m.strides)
        .map(|(&d, s)| d.saturating_sub(1) * s)
        .sum();
    if last >= m.gm.len {
        return Err(tiling_error(
            kernel,
            format!(
                "mask strides {:?} reach element {last} of {}",
                m.strides, m.gm.len
            ),
        ));
    }
    let u =
        |v: usize| u32::try_from(v).map_err(|_| tiling_error(kernel, format!("{v} exceeds u32")));
    tiling.has_mask = 1;
    for (t, s) in tiling.mask_strides.iter_mut().zip(m.strides) {
        *t = u(s)?;
    }
    tiling.mask_elems = u(m.gm.len)?;
    Ok(())
}

/// Flash attention forward (f32, contiguous operands) on `stream`; `workspace` must hold
/// [`attention_workspace_len`] floats for the tiling [`attention_tiling`] gives.
pub fn flash_attention_f32(
    stream: &Stream,
    shape: &AttentionShape,
    q: GmF32,
    k: GmF32,
    v: GmF32,
    out: GmF32,
    workspace: GmF32,
) -> KernelResult<LaunchStats> {
    flash_attention_masked_f32(stream, shape, (q, k, v), None, out, workspace)
}

/// [`flash_attention_f32`] with an optional additive mask.
pub fn flash_attention_masked_f32(
    stream: &Stream,
    shape: &AttentionShape,
    (q, k, v): (GmF32, GmF32, GmF32),
    mask: Option<&AttentionMask>,
    out: GmF32,
    workspace: GmF32,
) -> KernelResult<LaunchStats> {
    flash_attention(
        stream,
        shape,
        AttentionElem::F32,
        (q.into(), k.into(), v.into()),
        mask,
        out,
        workspace,
    )
}

/// Flash attention forward over f32, f16 or bf16 Q/K/V (`elem`, dense `[B, H, T, D]` byte
/// ranges) with an optional f32 additive mask, into f32 `out`; `workspace` must hold
/// [`attention_workspace_len`] floats for the tiling [`attention_tiling_for`] gives. The half
/// kernels read Q/K/V in their half type and feed them to the cube as such (f32 accumulate);
/// there is no conversion launch before them.
/// The signature shared by the three `aclrtlaunch_osum_flash_attention_*` entries.
type AttentionLaunch =
    unsafe extern "C" fn(u32, *mut c_void, Gm, Gm, Gm, Gm, Gm, Gm, AttentionTiling) -> u32;

pub fn flash_attention(
    stream: &Stream,
    shape: &AttentionShape,
    elem: AttentionElem,
    (q, k, v): (nn::GmBytes, nn::GmBytes, nn::GmBytes),
    mask: Option<&AttentionMask>,
    out: GmF32,
    workspace: GmF32,
) -> KernelResult<LaunchStats> {
    let kernel = elem.kernel();
    let (launch, call): (AttentionLaunch, &str) = match elem {
        AttentionElem::F32 => (
            aclrtlaunch_osum_flash_attention_f32,
            "aclrtlaunch_osum_flash_attention_f32",
        ),
        AttentionElem::F16 => (
            aclrtlaunch_osum_flash_attention_f16,
            "aclrtlaunch_osum_flash_attention_f16",
        ),
        AttentionElem::Bf16 => (
            aclrtlaunch_osum_flash_attention_bf16,
            "aclrtlaunch_osum_flash_attention_bf16",
        ),
    };
    let (blocks, mut tiling) = attention_tiling_for(shape, elem)?;
    set_attention_mask(kernel, shape, &mut tiling, mask)?;
    let q_len = shape.batch * shape.heads_q * shape.tq * shape.d;
    let kv_len = shape.batch * shape.heads_kv * shape.tk * shape.d;
    nn::need_bytes(kernel, "q", &q, q_len * elem.bytes())?;
    nn::need_bytes(kernel, "k", &k, kv_len * elem.bytes())?;
    nn::need_bytes(kernel, "v", &v, kv_len * elem.bytes())?;
    need_f32(kernel, "out", &out, q_len)?;
    need_f32(
        kernel,
        "workspace",
        &workspace,
        attention_workspace_len(blocks, &tiling),
    )?;
    // SAFETY: every range was checked against a live allocation and the shape; the signatures
    // match kernels/sim/launch_entries.cpp.
    let code = unsafe {
        launch(
            blocks,
            stream.raw(),
            q.ptr(),
            k.ptr(),
            v.ptr(),
            out.ptr(),
            workspace.ptr(),
            mask.map_or(std::ptr::null_mut(), |m| m.gm.ptr()),
            tiling,
        )
    };
    launched(call, code)
}

/// Kernels that break one hardware rule each, on purpose (kernels/sim/broken_kernels.cpp), so
/// tests can show the simulator catches each bug. Each takes one buffer of ≥ 64 f32.
pub mod broken {
    use super::*;

    /// Which rule the kernel breaks.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum BrokenKernel {
        /// 2 × 100 KiB of UB.
        UbOverflow,
        /// Block 1 copies 28 bytes with DataCopy.
        MisalignedCopy,
        /// DeQue on an empty queue.
        DequeueEmpty,
        /// AllocTensor never freed.
        Leak,
        /// Reads past its GlobalTensor.
        GmOverrun,
    }

    extern "C" {
        fn aclrtlaunch_osum_broken_ub_overflow(blocks: u32, stream: *mut c_void, x: Gm) -> u32;
        fn aclrtlaunch_osum_broken_misaligned_copy(blocks: u32, stream: *mut c_void, x: Gm) -> u32;
        fn aclrtlaunch_osum_broken_dequeue_empty(blocks: u32, stream: *mut c_void, x: Gm) -> u32;
        fn aclrtlaunch_osum_broken_leak(blocks: u32, stream: *mut c_void, x: Gm) -> u32;
        fn aclrtlaunch_osum_broken_gm_overrun(blocks: u32, stream: *mut c_void, x: Gm) -> u32;
    }

    /// Launch the broken kernel `kind` with `blocks` blocks over `x` (≥ 64 f32).
    pub fn launch(
        kind: BrokenKernel,
        blocks: u32,
        stream: &Stream,
        x: &DeviceMemory,
    ) -> KernelResult<LaunchStats> {
        let g = GmF32::new("broken", x, 0, 64)?;
        let f = match kind {
            BrokenKernel::UbOverflow => aclrtlaunch_osum_broken_ub_overflow,
            BrokenKernel::MisalignedCopy => aclrtlaunch_osum_broken_misaligned_copy,
            BrokenKernel::DequeueEmpty => aclrtlaunch_osum_broken_dequeue_empty,
            BrokenKernel::Leak => aclrtlaunch_osum_broken_leak,
            BrokenKernel::GmOverrun => aclrtlaunch_osum_broken_gm_overrun,
        };
        // SAFETY: `g` is a checked 64-float range of a live allocation; signatures match
        // broken_kernels.cpp.
        let code = unsafe { f(blocks, stream.raw(), g.ptr()) };
        launched("broken kernel launch", code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" {
        fn osum_sim_stats_size() -> usize;
    }

    #[test]
    fn attention_tiling_fits_the_buffers_and_refuses_what_it_cannot_do() {
        let s = AttentionShape {
            batch: 2,
            heads_q: 8,
            heads_kv: 2,
            tq: 100,
            tk: 300,
            d: 128,
            causal: true,
            scale: 0.1,
        };
        let (blocks, t) = attention_tiling(&s).unwrap();
        assert_eq!(
            (blocks, t.block_q, t.block_k, t.tiles_q),
            (AIC_CORES, 64, 64, 2)
        );
        assert!(t.block_q * t.d_pad.max(t.block_k) * 4 <= 64 * 1024);
        assert!(t.d_pad.max(t.block_k) * t.d_pad.max(t.block_k) * 4 <= 64 * 1024);
        assert!(attention_tiling(&AttentionShape { d: 129, ..s }).is_err());
        assert!(attention_tiling(&AttentionShape { heads_kv: 3, ..s }).is_err());
        // Causal with more queries than keys: the first rows see no key (output 0), still tiled.
        assert!(attention_tiling(&AttentionShape { tq: 301, ..s }).is_ok());
    }

    #[test]
    fn launch_stats_mirror_has_the_simulator_layout() {
        // SAFETY: no arguments.
        assert_eq!(
            unsafe { osum_sim_stats_size() },
            std::mem::size_of::<LaunchStats>()
        );
    }

    #[test]
    fn elementwise_tiling_covers_every_element_with_aligned_blocks() {
        for total in [1usize, 7, 8, 2047, 2049, 100_003, 1 << 20] {
            let (blocks, t) = elementwise_tiling(total, BinaryKernelOp::Add).unwrap();
            assert!((1..=AIV_CORES).contains(&blocks));
            assert_eq!(t.block_length % 8, 0);
            assert_eq!(t.tile_length % 8, 0);
            assert!(blocks as usize * t.block_length as usize >= total);
            assert!((blocks as usize - 1) * (t.block_length as usize) < total);
        }
    }

    #[test]
    fn matmul_tiling_respects_l0_capacities() {
        let s = MatmulShape {
            m: 1000,
            n: 777,
            k: 4097,
            lda: 4097,
            ldb: 4097,
            ldc: 777,
        };
        let (blocks, t) = matmul_tiling(&s).unwrap();
        assert_eq!(blocks, AIC_CORES);
        assert!(t.base_m * t.base_k * 4 <= 64 * 1024);
        assert!(t.base_n * t.base_k * 4 <= 64 * 1024);
        assert!(t.base_m * t.base_n * 4 <= 128 * 1024);
        assert_eq!((t.tiles_m, t.tiles_n), (8, 7));
    }
}
