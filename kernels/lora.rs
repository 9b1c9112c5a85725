//! Host side of `osum_lora_linear_f32` (kernels/ascend/lora_linear.cpp): the fused LoRA linear
//! layer `y = act(x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ)` and, at rank 0, the plain linear layer. The tiling
//! struct mirrors `kernels/ascend/lora_tiling.h` field for field.

use super::{launched, need_f32, tiling_error, Gm, GmF32, KernelResult, LaunchStats, AIC_CORES};
use crate::ffi::Stream;
use std::ffi::c_void;

/// Mirror of `LoraLinearTiling`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoraLinearTiling {
    /// Rows of x and y.
    pub m: u32,
    /// Output features.
    pub n: u32,
    /// Input features.
    pub k: u32,
    /// LoRA rank (0: plain linear).
    pub rank: u32,
    /// Rows per tile.
    pub base_m: u32,
    /// Output columns per tile.
    pub base_n: u32,
    /// N capacity of the cube tile.
    pub cube_n: u32,
    /// Cube K step.
    pub base_k: u32,
    /// Tiles along M.
    pub tiles_m: u32,
    /// Tiles along N.
    pub tiles_n: u32,
    /// N groups per M tile.
    pub n_groups: u32,
    /// Row stride of H in the workspace.
    pub rank_pad: u32,
    /// 1 when a bias is added.
    pub has_bias: u32,
    /// [`Activation`] code.
    pub act: u32,
    /// Workspace floats per block.
    pub ws_per_block: u32,
    /// LoRA scale s.
    pub scale: f32,
}

/// Activation applied by the kernel's epilogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// None.
    None = 0,
    /// GELU, erf form.
    Gelu = 1,
}

extern "C" {
    fn aclrtlaunch_osum_lora_linear_f32(
        blocks: u32,
        stream: *mut c_void,
        x: Gm,
        w: Gm,
        b: Gm,
        a: Gm,
        bm: Gm,
        y: Gm,
        workspace: Gm,
        tiling: LoraLinearTiling,
    ) -> u32;
}

/// Sizes of one call: x `[m, k]`, W `[n, k]`, A `[rank, k]`, B `[n, rank]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoraShape {
    /// Rows of x.
    pub m: usize,
    /// Output features.
    pub n: usize,
    /// Input features.
    pub k: usize,
    /// LoRA rank (0: plain linear).
    pub rank: usize,
    /// s (ignored at rank 0).
    pub scale: f32,
    /// Bias present.
    pub bias: bool,
    /// Epilogue activation.
    pub act: Activation,
}

/// Largest LoRA rank the kernel takes (the rank product shares the 128-column cube tile).
pub const LORA_MAX_RANK: usize = 128;

/// Tiling: tiles of up to 128×128, K steps of 64 (f32: L0A/L0B 32 KiB, L0C 64 KiB, L1 128 KiB
/// double-buffered); units (M tile, N group) up to [`AIC_CORES`] blocks, N split into groups
/// only when there are fewer M tiles than cores. Returns (blocks, tiling).
pub fn lora_linear_tiling(s: &LoraShape) -> KernelResult<(u32, LoraLinearTiling)> {
    const KERNEL: &str = "osum_lora_linear_f32";
    if s.m == 0 || s.n == 0 || s.k == 0 {
        return Err(tiling_error(KERNEL, format!("empty product {s:?}")));
    }
    if s.rank > LORA_MAX_RANK {
        return Err(tiling_error(
            KERNEL,
            format!("rank {} > {LORA_MAX_RANK}", s.rank),
        ));
    }
    // Nd2NzParams takes 16-bit row strides.
    if s.k > 65535 {
        return Err(tiling_error(
            KERNEL,
            format!("{} input features > 65535", s.k),
        ));
    }
    let u =
        |v: usize| u32::try_from(v).map_err(|_| tiling_error(KERNEL, format!("{v} exceeds u32")));
    u(s.m
        .checked_mul(s.n.max(s.k))
        .ok_or_else(|| tiling_error(KERNEL, "size overflows"))?)?;
    let round = |v: usize, a: usize| v.div_ceil(a) * a;
    let base_m = round(s.m, 16).min(128);
    let base_n = round(s.n, 16).min(128);
    let cube_n = base_n.max(round(s.rank, 16));
    let tiles_m = s.m.div_ceil(base_m);
    let tiles_n = s.n.div_ceil(base_n);
    let n_groups = tiles_n.min((AIC_CORES as usize / tiles_m).max(1));
    let rank_pad = round(s.rank, 8).max(8);
    Ok((
        u(tiles_m * n_groups)?.min(AIC_CORES),
        LoraLinearTiling {
            m: u(s.m)?,
            n: u(s.n)?,
            k: u(s.k)?,
            rank: u(s.rank)?,
            base_m: u(base_m)?,
            base_n: u(base_n)?,
            cube_n: u(cube_n)?,
            base_k: u(round(s.k.max(s.rank), 8).min(64))?,
            tiles_m: u(tiles_m)?,
            tiles_n: u(tiles_n)?,
            n_groups: u(n_groups)?,
            rank_pad: u(rank_pad)?,
            has_bias: u32::from(s.bias),
            act: s.act as u32,
            ws_per_block: u(if s.rank > 0 { base_m * rank_pad } else { 0 })?,
            scale: s.scale,
        },
    ))
}

/// Floats of workspace the launch needs (at least 8, so the range is never empty).
pub fn lora_workspace_len(blocks: u32, t: &LoraLinearTiling) -> usize {
    (blocks as usize * t.ws_per_block as usize).max(8)
}

/// Operands of [`lora_linear_f32`]: x, W, optional bias, and the LoRA pair (A, B) when rank > 0.
pub struct LoraOperands<'a> {
    /// x `[m, k]`.
    pub x: GmF32<'a>,
    /// W `[n, k]`.
    pub w: GmF32<'a>,
    /// b `[n]`.
    pub b: Option<GmF32<'a>>,
    /// (A `[rank, k]`, B `[n, rank]`).
    pub lora: Option<(GmF32<'a>, GmF32<'a>)>,
}

/// `y = act(x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ)` on `stream` (dense row-major f32 operands).
pub fn lora_linear_f32(
    stream: &Stream,
    s: &LoraShape,
    ops: LoraOperands,
    y: GmF32,
    workspace: GmF32,
) -> KernelResult<LaunchStats> {
    const KERNEL: &str = "osum_lora_linear_f32";
    let (blocks, t) = lora_linear_tiling(s)?;
    if ops.lora.is_some() != (s.rank > 0) || ops.b.is_some() != s.bias {
        return Err(tiling_error(
            KERNEL,
            "operands do not match the shape's rank/bias",
        ));
    }
    let mut need = vec![
        ("x", ops.x, s.m * s.k),
        ("w", ops.w, s.n * s.k),
        ("y", y, s.m * s.n),
        ("workspace", workspace, lora_workspace_len(blocks, &t)),
    ];
    if let Some(b) = ops.b {
        need.push(("b", b, s.n));
    }
    if let Some((a, bm)) = ops.lora {
        need.push(("A", a, s.rank * s.k));
        need.push(("B", bm, s.n * s.rank));
    }
    for (name, g, want) in need {
        need_f32(KERNEL, name, &g, want)?;
    }
    let null = std::ptr::null_mut();
    let (pa, pbm) = ops.lora.map_or((null, null), |(a, bm)| (a.ptr(), bm.ptr()));
    let pb = ops.b.map_or(null, |b| b.ptr());
    // SAFETY: every range was checked against a live allocation and the shape; null pointers
    // are never read (has_bias = 0 / rank = 0); signature as in kernels/sim/launch_lora.cpp.
    let code = unsafe {
        aclrtlaunch_osum_lora_linear_f32(
            blocks,
            stream.raw(),
            ops.x.ptr(),
            ops.w.ptr(),
            pb,
            pa,
            pbm,
            y.ptr(),
            workspace.ptr(),
            t,
        )
    };
    launched("aclrtlaunch_osum_lora_linear_f32", code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lora_tiling_fits_the_cube_buffers_and_spreads_decode() {
        let s = LoraShape {
            m: 1,
            n: 4096,
            k: 4096,
            rank: 64,
            scale: 0.5,
            bias: false,
            act: Activation::None,
        };
        let (blocks, t) = lora_linear_tiling(&s).unwrap();
        // Decode: one M tile, N split over every cube core.
        assert_eq!((blocks, t.tiles_m, t.n_groups), (AIC_CORES, 1, AIC_CORES));
        assert!(t.base_m * t.base_k * 4 <= 64 * 1024 && t.cube_n * t.base_k * 4 <= 64 * 1024);
        assert!(t.base_m * t.cube_n * 4 <= 128 * 1024);
        // Rank wider than the output still fits the cube tile.
        let (_, t) = lora_linear_tiling(&LoraShape { n: 16, ..s }).unwrap();
        assert_eq!(t.cube_n, 64);
        assert!(lora_linear_tiling(&LoraShape { rank: 129, ..s }).is_err());
    }
}
