//! The Ascend device (`--device ascend-sim`): the engine's [`Device`] over the ACL runtime
//! ([`crate::ffi`]) and our AscendC kernels ([`crate::kernels`]).
//!
//! In this build the runtime and kernels are the CPU simulator (`kernels/sim/`): numbers are
//! computed by our kernels following the AscendC model, and every counter is a simulation.
//! Memory: a stream-ordered caching allocator ([`memory::Pool`]); host↔device copies are
//! explicit `aclrtMemcpy` calls. Ops without a kernel are errors naming op and device
//! ([`Device`]'s defaults, or [`Error::UnsupportedCase`] for layouts a kernel does not take) —
//! there is no CPU fallback. Ops with kernels (f32 unless noted): elementwise
//! add/sub/mul/div/maximum/minimum, comparisons (f32, u32, i64 operands) and `where_cond` (any
//! dtype), matmul (any operand layout; rearranged by the copy kernel when needed),
//! linear and LoRA linear ([`lora`]), conv2d/im2col/col2im ([`conv`]), flash attention forward
//! and backward (causal or not, GQA, additive mask), softmax and log-softmax, layer/RMS norm,
//! rope (both styles), sum/max/min/argmax over a dim, index_select and gather (any dtype),
//! index_add and scatter_add, cross-entropy and its backward, the fused AdamW step, strided
//! copies (also into a strided destination, how KV caches append), concat, casts between every
//! pair of f32/f16/bf16/u32/i64 and every unary function ([`plain`]). Operands a kernel cannot
//! read directly (strided, broadcast, f16/bf16) are made dense f32 by the device's own copy/cast
//! ops first (`operands.rs`).

pub mod attention;
pub mod attention_backward;
pub mod conv;
pub mod elementwise;
pub mod index;
pub mod lora;
pub mod loss;
pub mod matmul;
pub mod memory;
pub mod norm;
mod operands;
pub mod optim;
pub mod plain;
pub mod reduce;
pub mod rope;
pub mod softmax;

use crate::engine::device::{
    AdamWParams, AttentionParams, BinaryOp, Buffer, Conv2dParams, Device, ReduceOp, RopeStyle,
    UnaryOp, View,
};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::engine::layout::Layout;
use crate::engine::storage::{DeviceBuffer, HostBuffer};
use crate::ffi::{AclError, DeviceContext, Runtime, Stream};
use memory::{host_bytes, host_bytes_mut, AscendBuffer, Pool};
use std::sync::{Arc, Mutex};

/// Name of the simulated device.
pub const SIM_NAME: &str = "ascend-sim";

/// An Ascend device: one ACL device, one stream, one memory pool.
#[derive(Debug)]
pub struct AscendDevice {
    name: &'static str,
    stream: Stream,
    pool: Arc<Pool>,
}

impl AscendDevice {
    /// The process-wide `ascend-sim` device (created on first use).
    pub fn shared_sim() -> Result<Arc<dyn Device>> {
        static DEV: Mutex<Option<Arc<dyn Device>>> = Mutex::new(None);
        let mut dev = DEV.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = dev.as_ref() {
            return Ok(d.clone());
        }
        let d: Arc<dyn Device> = Arc::new(Self::open(SIM_NAME, 0)?);
        *dev = Some(d.clone());
        Ok(d)
    }

    /// Initialise ACL, bind device `id`, create its stream and pool.
    pub fn open(name: &'static str, id: i32) -> Result<Self> {
        let err = |e: AclError| backend(name, "open", e);
        let rt = Runtime::shared().map_err(err)?;
        let ctx = Arc::new(DeviceContext::new(rt, id).map_err(err)?);
        let stream = Stream::new(ctx.clone()).map_err(err)?;
        Ok(AscendDevice {
            name,
            stream,
            pool: Pool::new(ctx),
        })
    }

    /// The device's stream.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// The device's caching allocator.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// A new buffer of `len` elements of `dtype`.
    pub(crate) fn alloc(&self, op: &'static str, dtype: DType, len: usize) -> Result<AscendBuffer> {
        AscendBuffer::alloc(&self.pool, dtype, len).map_err(|e| self.backend(op, e))
    }

    /// The Ascend buffer behind a view, or an error if it belongs to another device.
    pub(crate) fn buffer<'a>(&self, op: &'static str, v: &View<'a>) -> Result<&'a AscendBuffer> {
        v.buf
            .as_any()
            .downcast_ref::<AscendBuffer>()
            .ok_or_else(|| Error::invalid(op, format!("buffer does not belong to {}", self.name)))
    }

    /// Wrap a runtime or kernel failure.
    pub(crate) fn backend(&self, op: &'static str, e: impl std::fmt::Display) -> Error {
        backend(self.name, op, e)
    }

    /// The error for a case an existing kernel does not take.
    pub(crate) fn unsupported_case(&self, op: &'static str, case: impl Into<String>) -> Error {
        Error::UnsupportedCase {
            op,
            case: case.into(),
            device: self.name.to_string(),
        }
    }
}

fn backend(device: &str, op: &'static str, e: impl std::fmt::Display) -> Error {
    Error::Backend {
        op,
        device: device.to_string(),
        msg: e.to_string(),
    }
}

impl Device for AscendDevice {
    fn name(&self) -> String {
        self.name.to_string()
    }

    fn from_host(&self, data: HostBuffer) -> Result<Buffer> {
        let buf = self.alloc("from_host", data.dtype(), data.len())?;
        buf.mem()
            .write(0, host_bytes(&data))
            .map_err(|e| self.backend("from_host", e))?;
        Ok(Box::new(buf))
    }

    /// Waits for the stream, then copies the view's span down with one `aclrtMemcpy`; a strided
    /// view is gathered from that span on the host (part of the download, no arithmetic).
    fn to_host(&self, src: View) -> Result<HostBuffer> {
        const OP: &str = "to_host";
        let buf = self.buffer(OP, &src)?;
        self.stream.synchronize().map_err(|e| self.backend(OP, e))?;
        let dtype = buf.dtype();
        let size = dtype.size_in_bytes();
        let layout = src.layout;
        if let Some((start, end)) = layout.contiguous_range() {
            let mut host = HostBuffer::zeros(dtype, end - start);
            buf.mem()
                .read(start * size, host_bytes_mut(&mut host))
                .map_err(|e| self.backend(OP, e))?;
            return Ok(host);
        }
        let span = layout.max_index_exclusive();
        let mut whole = HostBuffer::zeros(dtype, span);
        buf.mem()
            .read(0, host_bytes_mut(&mut whole))
            .map_err(|e| self.backend(OP, e))?;
        Ok(crate::with_host_buffer!(&whole, v => {
            HostBuffer::from_vec(layout.offsets().map(|o| v[o]).collect())
        }))
    }

    fn zeros(&self, dtype: DType, len: usize) -> Result<Buffer> {
        let buf = self.alloc("zeros", dtype, len)?;
        buf.mem()
            .zero(buf.bytes())
            .map_err(|e| self.backend("zeros", e))?;
        Ok(Box::new(buf))
    }

    fn copy_strided(&self, src: View) -> Result<Buffer> {
        plain::copy_strided(self, src)
    }

    fn copy_into(&self, dst: &mut dyn DeviceBuffer, dst_layout: &Layout, src: View) -> Result<()> {
        plain::copy_into(self, dst, dst_layout, src)
    }

    fn cast(&self, src: View, dtype: DType) -> Result<Buffer> {
        plain::cast(self, src, dtype)
    }

    fn unary(&self, op: UnaryOp, src: View) -> Result<Buffer> {
        plain::unary(self, op, src)
    }

    fn concat(&self, parts: &[View], dim: usize) -> Result<Buffer> {
        plain::concat(self, parts, dim)
    }

    fn binary(&self, op: BinaryOp, lhs: View, rhs: View) -> Result<Buffer> {
        elementwise::binary(self, op, lhs, rhs)
    }

    fn where_cond(&self, cond: View, on_true: View, on_false: View) -> Result<Buffer> {
        elementwise::where_cond(self, cond, on_true, on_false)
    }

    fn matmul(&self, lhs: View, rhs: View) -> Result<Buffer> {
        matmul::matmul(self, lhs, rhs)
    }

    fn linear(&self, x: View, w: View, b: Option<View>, act: Option<UnaryOp>) -> Result<Buffer> {
        lora::linear(self, x, w, b, act)
    }

    fn lora_linear(
        &self,
        x: View,
        w: View,
        b: Option<View>,
        a: View,
        bm: View,
        scale: f32,
    ) -> Result<Buffer> {
        lora::lora_linear(self, x, w, b, (a, bm, scale))
    }

    fn softmax(&self, src: View) -> Result<Buffer> {
        softmax::softmax(self, src)
    }

    fn attention(
        &self,
        q: View,
        k: View,
        v: View,
        mask: Option<View>,
        p: &AttentionParams,
    ) -> Result<Buffer> {
        attention::attention(self, q, k, v, mask, p)
    }

    fn attention_backward(
        &self,
        q: View,
        k: View,
        v: View,
        mask: Option<View>,
        dout: View,
        p: &AttentionParams,
    ) -> Result<(Buffer, Buffer, Buffer)> {
        attention_backward::attention_backward(self, (q, k, v), mask, dout, p)
    }

    fn reduce(&self, op: ReduceOp, src: View, dim: usize) -> Result<Buffer> {
        reduce::reduce(self, op, src, dim)
    }

    fn index_select(&self, src: View, ids: View, dim: usize) -> Result<Buffer> {
        index::index_select(self, src, ids, dim)
    }

    fn index_add(&self, dst: View, ids: View, src: View, dim: usize) -> Result<Buffer> {
        index::index_add(self, dst, ids, src, dim)
    }

    fn gather(&self, src: View, index: View, dim: usize) -> Result<Buffer> {
        index::gather(self, src, index, dim)
    }

    fn scatter_add(&self, dst: View, index: View, src: View, dim: usize) -> Result<Buffer> {
        index::scatter_add(self, dst, index, src, dim)
    }

    fn log_softmax(&self, src: View) -> Result<Buffer> {
        softmax::log_softmax(self, src)
    }

    fn layer_norm(&self, x: View, w: View, b: Option<View>, eps: f32) -> Result<Buffer> {
        norm::norm(self, "layer_norm", x, w, b, eps, false)
    }

    fn rms_norm(&self, x: View, w: View, eps: f32) -> Result<Buffer> {
        norm::norm(self, "rms_norm", x, w, None, eps, true)
    }

    fn rope(&self, x: View, cos: View, sin: View, style: RopeStyle) -> Result<Buffer> {
        rope::rope(self, x, cos, sin, style)
    }

    fn cross_entropy(&self, logits: View, targets: View, ignore_index: i64) -> Result<Buffer> {
        loss::cross_entropy(self, logits, targets, ignore_index)
    }

    fn cross_entropy_backward(
        &self,
        logits: View,
        targets: View,
        grad: View,
        ignore_index: i64,
    ) -> Result<Buffer> {
        loss::cross_entropy_backward(self, logits, targets, grad, ignore_index)
    }

    fn adamw_step(
        &self,
        param: &mut dyn DeviceBuffer,
        grad: View,
        m: &mut dyn DeviceBuffer,
        v: &mut dyn DeviceBuffer,
        hp: &AdamWParams,
    ) -> Result<()> {
        optim::adamw_step(self, param, grad, m, v, hp)
    }

    fn conv2d(&self, x: View, w: View, b: Option<View>, p: &Conv2dParams) -> Result<Buffer> {
        conv::conv2d(self, x, w, b, p)
    }

    fn im2col(&self, x: View, kernel: (usize, usize), p: &Conv2dParams) -> Result<Buffer> {
        conv::im2col(self, x, kernel, p)
    }

    fn col2im(
        &self,
        cols: View,
        channels: usize,
        input_hw: (usize, usize),
        kernel: (usize, usize),
        p: &Conv2dParams,
    ) -> Result<Buffer> {
        conv::col2im(self, cols, channels, input_hw, kernel, p)
    }
}
