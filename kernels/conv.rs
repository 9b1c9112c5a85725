//! Host side of the convolution kernels (kernels/ascend/conv2d.cpp, im2col.cpp, col2im.cpp):
//! tiling for 910B buffer sizes and the launch wrappers. Structs mirror
//! `kernels/ascend/conv_tiling.h` field for field.

use super::{
    launched, need_f32, tiling_error, Gm, GmF32, KernelResult, LaunchStats, AIC_CORES, AIV_CORES,
};
use crate::engine::device::Conv2dParams;
use crate::ffi::Stream;
use std::ffi::c_void;

/// Mirror of `ConvGeometry` (kernels/ascend/conv_tiling.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Images.
    pub n: u32,
    /// Input channels.
    pub c: u32,
    /// Input height.
    pub h: u32,
    /// Input width.
    pub w: u32,
    /// Kernel height.
    pub kh: u32,
    /// Kernel width.
    pub kw: u32,
    /// Output height.
    pub oh: u32,
    /// Output width.
    pub ow: u32,
    /// Stride (height).
    pub sh: u32,
    /// Stride (width).
    pub sw: u32,
    /// Padding (height).
    pub ph: u32,
    /// Padding (width).
    pub pw: u32,
    /// Dilation (height).
    pub dh: u32,
    /// Dilation (width).
    pub dw: u32,
}

/// Mirror of `Conv2dTiling`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dTiling {
    /// Geometry.
    pub g: ConvGeometry,
    /// Output channels.
    pub o: u32,
    /// C·KH·KW.
    pub k: u32,
    /// Output positions per unit (multiple of 16).
    pub tile_p: u32,
    /// Position tiles per image.
    pub tiles_p: u32,
    /// Output channels per cube tile (multiple of 16).
    pub base_m: u32,
    /// Cube K step (multiple of 8).
    pub base_k: u32,
    /// (c, i) groups gathered per UB chunk.
    pub groups_per_chunk: u32,
    /// Floats per UB patch row.
    pub chunk_row: u32,
    /// Floats of one loaded input span (multiple of 8).
    pub span_max: u32,
    /// 1 when a bias is added.
    pub has_bias: u32,
    /// Workspace floats per block.
    pub ws_per_block: u32,
}

/// Mirror of `ConvFoldTiling` (im2col / col2im).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvFoldTiling {
    /// Geometry.
    pub g: ConvGeometry,
    /// Columns per chunk.
    pub chunk: u32,
    /// Floats of one loaded run (multiple of 8).
    pub span_max: u32,
}

extern "C" {
    fn aclrtlaunch_osum_conv2d_f32(
        blocks: u32,
        stream: *mut c_void,
        x: Gm,
        w: Gm,
        b: Gm,
        y: Gm,
        workspace: Gm,
        tiling: Conv2dTiling,
    ) -> u32;
    fn aclrtlaunch_osum_im2col_f32(
        blocks: u32,
        stream: *mut c_void,
        x: Gm,
        cols: Gm,
        tiling: ConvFoldTiling,
    ) -> u32;
    fn aclrtlaunch_osum_col2im_f32(
        blocks: u32,
        stream: *mut c_void,
        cols: Gm,
        x: Gm,
        tiling: ConvFoldTiling,
    ) -> u32;
}

/// Sizes of one convolution in host units (validated by [`ConvShape::geometry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Images.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input (height, width).
    pub input_hw: (usize, usize),
    /// Kernel (height, width).
    pub kernel: (usize, usize),
    /// Stride, padding, dilation.
    pub params: Conv2dParams,
}

fn round8(v: usize) -> usize {
    v.div_ceil(8) * 8
}
fn round16(v: usize) -> usize {
    v.div_ceil(16) * 16
}

impl ConvShape {
    /// The kernel geometry, or a tiling error when the kernel does not fit, a stride or dilation
    /// is 0, or a size exceeds u32.
    pub fn geometry(&self, kernel: &'static str) -> KernelResult<ConvGeometry> {
        let p = &self.params;
        if [p.stride.0, p.stride.1, p.dilation.0, p.dilation.1].contains(&0) {
            return Err(tiling_error(
                kernel,
                format!("zero stride or dilation {p:?}"),
            ));
        }
        let (oh, ow) = p
            .output_hw(self.input_hw, self.kernel)
            .ok_or_else(|| tiling_error(kernel, format!("kernel does not fit: {self:?}")))?;
        let u = |v: usize| {
            u32::try_from(v).map_err(|_| tiling_error(kernel, format!("{v} exceeds u32")))
        };
        // Every element count the kernels index with must fit u32 per image row and u64 overall.
        let elems = [
            self.n * self.c * self.input_hw.0 * self.input_hw.1,
            self.c * self.kernel.0 * self.kernel.1 * oh * ow,
        ];
        for e in elems {
            u(e)?;
        }
        Ok(ConvGeometry {
            n: u(self.n)?,
            c: u(self.c)?,
            h: u(self.input_hw.0)?,
            w: u(self.input_hw.1)?,
            kh: u(self.kernel.0)?,
            kw: u(self.kernel.1)?,
            oh: u(oh)?,
            ow: u(ow)?,
            sh: u(p.stride.0)?,
            sw: u(p.stride.1)?,
            ph: u(p.padding.0)?,
            pw: u(p.padding.1)?,
            dh: u(p.dilation.0)?,
            dw: u(p.dilation.1)?,
        })
    }
}

/// UB budget of one double-buffered queue in the conv kernels (2 × 32 KiB).
const QUEUE_BYTES: usize = 32 * 1024;

/// Tiling of `osum_conv2d_f32` for `o` output channels: position tiles of up to 128 (the cube's
/// N tile), channel tiles of up to 128, K steps of 64 (f32: L0A/L0B 32 KiB, L0C 64 KiB,
/// L1 128 KiB double-buffered), UB ≈ 2·(span + patch chunk + row) ≤ 2·(32 + 32 + 0.5) KiB.
/// Returns (blocks, tiling): one unit (image, position tile) per block up to [`AIC_CORES`].
pub fn conv2d_tiling(s: &ConvShape, o: usize, bias: bool) -> KernelResult<(u32, Conv2dTiling)> {
    const KERNEL: &str = "osum_conv2d_f32";
    let g = s.geometry(KERNEL)?;
    let (kh, kw) = s.kernel;
    let p = g.oh as usize * g.ow as usize;
    let k = s.c * kh * kw;
    if s.n == 0 || s.c == 0 || o == 0 || p == 0 {
        return Err(tiling_error(
            KERNEL,
            format!("empty convolution {s:?}, {o} outputs"),
        ));
    }
    // The cube tile reads A = W and Bt = patches with 16-bit row strides (Nd2NzParams).
    if k > 65535 {
        return Err(tiling_error(KERNEL, format!("C·KH·KW = {k} > 65535")));
    }
    let span = |tile: usize| {
        (tile.min(g.ow as usize) - 1) * s.params.stride.1 + (kw - 1) * s.params.dilation.1 + 1
    };
    // Shrink the position tile until one (c, i) group's patch rows and one input span fit.
    let mut tile_p = round16(p).min(128);
    while tile_p > 16
        && (tile_p * round8(kw) * 4 > QUEUE_BYTES || round8(span(tile_p)) * 4 > QUEUE_BYTES)
    {
        tile_p /= 2;
    }
    if tile_p * round8(kw) * 4 > QUEUE_BYTES || round8(span(tile_p)) * 4 > QUEUE_BYTES {
        return Err(tiling_error(
            KERNEL,
            format!(
                "kernel width {kw} with {:?} needs more UB than the gather has",
                s.params
            ),
        ));
    }
    let groups_per_chunk = (QUEUE_BYTES / 4 / tile_p / kw).clamp(1, s.c * kh);
    let chunk_row = round8(groups_per_chunk * kw);
    let u =
        |v: usize| u32::try_from(v).map_err(|_| tiling_error(KERNEL, format!("{v} exceeds u32")));
    let tiles_p = p.div_ceil(tile_p);
    let units =
        s.n.checked_mul(tiles_p)
            .ok_or_else(|| tiling_error(KERNEL, "too many units"))?;
    Ok((
        u(units)?.min(AIC_CORES),
        Conv2dTiling {
            g,
            o: u(o)?,
            k: u(k)?,
            tile_p: u(tile_p)?,
            tiles_p: u(tiles_p)?,
            base_m: u(round16(o).min(128))?,
            base_k: u(round8(k).min(64))?,
            groups_per_chunk: u(groups_per_chunk)?,
            chunk_row: u(chunk_row)?,
            span_max: u(round8(span(tile_p)))?,
            has_bias: u32::from(bias),
            ws_per_block: u(tile_p * k)?,
        },
    ))
}

/// Floats of workspace `osum_conv2d_f32` needs for `blocks` blocks of `tiling`.
pub fn conv2d_workspace_len(blocks: u32, tiling: &Conv2dTiling) -> usize {
    blocks as usize * tiling.ws_per_block as usize
}

/// Conv2d (f32): x `[N, C, H, W]`, w `[O, C, KH, KW]`, optional b `[O]` → y `[N, O, OH, OW]`,
/// all contiguous; `workspace` must hold [`conv2d_workspace_len`] floats.
pub fn conv2d_f32(
    stream: &Stream,
    s: &ConvShape,
    o: usize,
    (x, w, b): (GmF32, GmF32, Option<GmF32>),
    y: GmF32,
    workspace: GmF32,
) -> KernelResult<LaunchStats> {
    const KERNEL: &str = "osum_conv2d_f32";
    let (blocks, t) = conv2d_tiling(s, o, b.is_some())?;
    let p = t.g.oh as usize * t.g.ow as usize;
    need_f32(KERNEL, "x", &x, s.n * s.c * s.input_hw.0 * s.input_hw.1)?;
    need_f32(KERNEL, "w", &w, o * t.k as usize)?;
    if let Some(b) = &b {
        need_f32(KERNEL, "b", b, o)?;
    }
    need_f32(KERNEL, "y", &y, s.n * o * p)?;
    need_f32(
        KERNEL,
        "workspace",
        &workspace,
        conv2d_workspace_len(blocks, &t),
    )?;
    let bp = b.map_or(std::ptr::null_mut(), |b| b.ptr());
    // SAFETY: every range was checked against a live allocation and the shape; the bias pointer
    // is read only when has_bias = 1; the signature matches kernels/sim/launch_conv.cpp.
    let code = unsafe {
        aclrtlaunch_osum_conv2d_f32(
            blocks,
            stream.raw(),
            x.ptr(),
            w.ptr(),
            bp,
            y.ptr(),
            workspace.ptr(),
            t,
        )
    };
    launched("aclrtlaunch_osum_conv2d_f32", code)
}

/// Tiling shared by im2col and col2im: chunks of up to 4096 columns; units (one row of
/// work each) dealt over up to [`AIV_CORES`] blocks.
fn fold_tiling(
    kernel: &'static str,
    s: &ConvShape,
    units: usize,
    cols: usize,
    span: impl Fn(usize) -> usize,
) -> KernelResult<(u32, ConvFoldTiling)> {
    let g = s.geometry(kernel)?;
    if units == 0 || cols == 0 {
        return Err(tiling_error(kernel, format!("empty {s:?}")));
    }
    let mut chunk = round8(cols).min(4096);
    while chunk > 8 && round8(span(chunk)) * 4 > QUEUE_BYTES {
        chunk /= 2;
    }
    if round8(span(chunk)) * 4 > QUEUE_BYTES {
        return Err(tiling_error(
            kernel,
            format!("{:?} needs more UB than a chunk has", s.params),
        ));
    }
    let u =
        |v: usize| u32::try_from(v).map_err(|_| tiling_error(kernel, format!("{v} exceeds u32")));
    Ok((
        u(units)?.min(AIV_CORES),
        ConvFoldTiling {
            g,
            chunk: u(chunk)?,
            span_max: u(round8(span(chunk)))?,
        },
    ))
}

/// Tiling of `osum_im2col_f32`: a unit is (image, channel, kernel row); an output chunk of
/// `chunk` columns reads an input span of `(chunk − 1)·sw + (KW − 1)·dw + 1`.
pub fn im2col_tiling(s: &ConvShape) -> KernelResult<(u32, ConvFoldTiling)> {
    let (sw, dw, kw) = (s.params.stride.1, s.params.dilation.1, s.kernel.1);
    let ow = s.geometry("osum_im2col_f32")?.ow as usize;
    fold_tiling("osum_im2col_f32", s, s.n * s.c * s.kernel.0, ow, |chunk| {
        (chunk - 1) * sw + (kw - 1) * dw + 1
    })
}

/// Tiling of `osum_col2im_f32`: a unit is (image, channel, input row); an input chunk of
/// `chunk` columns receives a cols run of at most `⌈chunk/sw⌉ + 1` per tap.
pub fn col2im_tiling(s: &ConvShape) -> KernelResult<(u32, ConvFoldTiling)> {
    let sw = s.params.stride.1;
    fold_tiling(
        "osum_col2im_f32",
        s,
        s.n * s.c * s.input_hw.0,
        s.input_hw.1,
        |chunk| chunk.div_ceil(sw) + 1,
    )
}

/// The image `[N, C, H, W]` and column `[N, C·KH·KW, OH·OW]` ranges of im2col and col2im hold
/// at least their shapes' elements.
fn check_fold_operands(
    kernel: &'static str,
    s: &ConvShape,
    (oh, ow): (usize, usize),
    x: &GmF32,
    cols: &GmF32,
) -> KernelResult<()> {
    need_f32(kernel, "x", x, s.n * s.c * s.input_hw.0 * s.input_hw.1)?;
    let k = s.c * s.kernel.0 * s.kernel.1;
    need_f32(kernel, "cols", cols, s.n * k * oh * ow)
}

/// im2col (f32): x `[N, C, H, W]` → cols `[N, C·KH·KW, OH·OW]`, both contiguous.
pub fn im2col_f32(
    stream: &Stream,
    s: &ConvShape,
    x: GmF32,
    cols: GmF32,
) -> KernelResult<LaunchStats> {
    const KERNEL: &str = "osum_im2col_f32";
    let (blocks, t) = im2col_tiling(s)?;
    check_fold_operands(KERNEL, s, (t.g.oh as usize, t.g.ow as usize), &x, &cols)?;
    // SAFETY: ranges checked against live allocations and the shape; signature as in
    // kernels/sim/launch_conv.cpp.
    let code = unsafe { aclrtlaunch_osum_im2col_f32(blocks, stream.raw(), x.ptr(), cols.ptr(), t) };
    launched("aclrtlaunch_osum_im2col_f32", code)
}

/// col2im (f32): cols `[N, C·KH·KW, OH·OW]` → x `[N, C, H, W]`, overlaps added.
pub fn col2im_f32(
    stream: &Stream,
    s: &ConvShape,
    cols: GmF32,
    x: GmF32,
) -> KernelResult<LaunchStats> {
    const KERNEL: &str = "osum_col2im_f32";
    let (blocks, t) = col2im_tiling(s)?;
    check_fold_operands(KERNEL, s, (t.g.oh as usize, t.g.ow as usize), &x, &cols)?;
    // SAFETY: as in `im2col_f32`.
    let code = unsafe { aclrtlaunch_osum_col2im_f32(blocks, stream.raw(), cols.ptr(), x.ptr(), t) };
    launched("aclrtlaunch_osum_col2im_f32", code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(c: usize, hw: (usize, usize), k: (usize, usize), stride: (usize, usize)) -> ConvShape {
        ConvShape {
            n: 2,
            c,
            input_hw: hw,
            kernel: k,
            params: Conv2dParams {
                stride,
                padding: (1, 1),
                dilation: (1, 1),
            },
        }
    }

    #[test]
    fn conv2d_tiling_fits_the_910b_buffers() {
        // Whisper-medium's second conv: C 1024, K 3, stride 2, 3000 frames.
        let s = shape(1024, (1, 3000), (1, 3), (1, 2));
        let (blocks, t) = conv2d_tiling(&s, 1024, true).unwrap();
        assert_eq!(blocks, AIC_CORES);
        assert_eq!((t.tile_p, t.base_m, t.base_k, t.k), (128, 128, 64, 3072));
        assert!(t.tile_p * t.chunk_row * 4 <= QUEUE_BYTES as u32);
        assert!(t.span_max * 4 <= QUEUE_BYTES as u32);
        assert!(t.base_m * t.base_k * 4 <= 64 * 1024 && t.tile_p * t.base_k * 4 <= 64 * 1024);
        assert!(t.base_m * t.tile_p * 4 <= 128 * 1024);
        // Positions are covered.
        assert!(t.tiles_p * t.tile_p >= t.g.oh * t.g.ow);
        // A kernel that does not fit is a tiling error, not a launch.
        assert!(conv2d_tiling(&shape(1, (1, 2), (1, 9), (1, 1)), 1, false).is_err());
    }

    #[test]
    fn fold_tilings_bound_the_loaded_runs() {
        let s = shape(3, (9, 5000), (3, 3), (2, 2));
        let (_, t) = im2col_tiling(&s).unwrap();
        assert!(t.span_max >= (t.chunk - 1) * 2 + 3 && t.span_max * 4 <= QUEUE_BYTES as u32);
        let (_, t) = col2im_tiling(&s).unwrap();
        assert!(t.span_max > t.chunk / 2 && t.chunk <= 4096);
    }
}
