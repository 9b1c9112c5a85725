//! The `Device` trait: the small, explicit op set every backend implements.
//!
//! Ops receive [`View`]s (a buffer plus the layout to read it through) and return a fresh,
//! contiguous buffer. Shape checking, broadcasting and autograd live in the tensor layer
//! (`engine/ops`); a device may assume its inputs were validated there, but must still return an
//! error — never panic or emulate — for a dtype or op it does not support. Every method has a
//! default that returns [`Error::Unsupported`] naming the op and the device, so a new device
//! starts honest and grows op by op (the conformance suite in `tests/conformance` says which).

use super::dtype::DType;
use super::error::{Error, Result};
use super::layout::Layout;
use super::storage::{DeviceBuffer, HostBuffer, MappedHost};

/// A buffer seen through a layout.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    /// The device buffer.
    pub buf: &'a dyn DeviceBuffer,
    /// How to read it.
    pub layout: &'a Layout,
}

impl<'a> View<'a> {
    /// Pair a buffer with a layout.
    pub fn new(buf: &'a dyn DeviceBuffer, layout: &'a Layout) -> Self {
        View { buf, layout }
    }
    /// Element type of the buffer.
    pub fn dtype(&self) -> DType {
        self.buf.dtype()
    }
    /// Shape of the view.
    pub fn shape(&self) -> &[usize] {
        self.layout.shape()
    }
}

/// A freshly allocated, contiguous device buffer.
pub type Buffer = Box<dyn DeviceBuffer>;

/// Elementwise functions of one input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnaryOp {
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
    /// tanh x
    Tanh,
    /// 1/(1+e⁻ˣ)
    Sigmoid,
    /// max(x, 0)
    Relu,
    /// x·Φ(x), the exact erf form Whisper uses.
    Gelu,
    /// x·σ(x)
    Silu,
    /// sin x
    Sin,
    /// cos x
    Cos,
    /// 1 if x > 0 else 0 (derivative of relu).
    Step,
    /// d/dx gelu(x) = Φ(x) + x·φ(x).
    GeluDeriv,
    /// d/dx silu(x) = σ(x)·(1 + x·(1 − σ(x))).
    SiluDeriv,
    /// x·mul + add.
    Affine {
        /// Scale.
        mul: f32,
        /// Shift.
        add: f32,
    },
    /// xᵉ
    Powf(f32),
}

impl UnaryOp {
    /// Op name for errors and the profiler.
    pub fn name(&self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Recip => "recip",
            UnaryOp::Abs => "abs",
            UnaryOp::Sqr => "sqr",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Relu => "relu",
            UnaryOp::Gelu => "gelu",
            UnaryOp::Silu => "silu",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Step => "step",
            UnaryOp::GeluDeriv => "gelu_deriv",
            UnaryOp::SiluDeriv => "silu_deriv",
            UnaryOp::Affine { .. } => "affine",
            UnaryOp::Powf(_) => "powf",
        }
    }
}

/// Elementwise functions of two same-shape inputs (broadcasting is done by the caller via
/// stride-0 layouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// a + b
    Add,
    /// a − b
    Sub,
    /// a · b
    Mul,
    /// a / b
    Div,
    /// max(a, b)
    Maximum,
    /// min(a, b)
    Minimum,
    /// a == b → u32 0/1
    Eq,
    /// a != b → u32 0/1
    Ne,
    /// a < b → u32 0/1
    Lt,
    /// a <= b → u32 0/1
    Le,
    /// a > b → u32 0/1
    Gt,
    /// a >= b → u32 0/1
    Ge,
}

impl BinaryOp {
    /// Op name for errors and the profiler.
    pub fn name(&self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
            BinaryOp::Eq => "eq",
            BinaryOp::Ne => "ne",
            BinaryOp::Lt => "lt",
            BinaryOp::Le => "le",
            BinaryOp::Gt => "gt",
            BinaryOp::Ge => "ge",
        }
    }
    /// True for the comparisons, whose output is a u32 0/1 mask.
    pub fn is_comparison(&self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
        )
    }
}

/// Reductions over one dimension (the dimension is kept with size 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// Σ
    Sum,
    /// max
    Max,
    /// min
    Min,
    /// index of the first maximum, as u32
    Argmax,
}

impl ReduceOp {
    /// Op name for errors and the profiler.
    pub fn name(&self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
            ReduceOp::Argmax => "argmax",
        }
    }
}

/// Which element pairs a rotary embedding rotates together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RopeStyle {
    /// Pairs `(i, i + D/2)` (Llama/HF "rotate_half").
    RotateHalf,
    /// Pairs `(2i, 2i + 1)` (GPT-J / original RoFormer).
    Interleaved,
}

/// 2-D convolution geometry (`groups = 1`). Conv1d is conv2d with height 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dParams {
    /// (height, width) stride.
    pub stride: (usize, usize),
    /// (height, width) zero padding on both sides.
    pub padding: (usize, usize),
    /// (height, width) dilation.
    pub dilation: (usize, usize),
}

impl Conv2dParams {
    /// Output (height, width) for an input (height, width) and kernel (height, width),
    /// or `None` when the kernel does not fit.
    pub fn output_hw(
        &self,
        input: (usize, usize),
        kernel: (usize, usize),
    ) -> Option<(usize, usize)> {
        let one = |i: usize, k: usize, s: usize, p: usize, d: usize| {
            let span = d * (k.checked_sub(1)?) + 1;
            let padded = i + 2 * p;
            (padded >= span && s > 0).then(|| (padded - span) / s + 1)
        };
        Some((
            one(
                input.0,
                kernel.0,
                self.stride.0,
                self.padding.0,
                self.dilation.0,
            )?,
            one(
                input.1,
                kernel.1,
                self.stride.1,
                self.padding.1,
                self.dilation.1,
            )?,
        ))
    }
}

/// Scaled dot-product attention options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionParams {
    /// Multiplies q·kᵀ (usually 1/√head_dim).
    pub scale: f32,
    /// Query `i` sees keys `j ≤ i + (Tk − Tq)` (aligned to the end, so decoding with a KV cache
    /// works unchanged).
    pub causal: bool,
}

/// Hyper-parameters of one decoupled-weight-decay Adam step (Loshchilov & Hutter, Alg. 2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator epsilon.
    pub eps: f32,
    /// Decoupled weight decay (multiplies lr·θ).
    pub weight_decay: f32,
    /// 1-based step number, for bias correction.
    pub step: u64,
}

/// A compute device. Object-safe: tensors hold `Arc<dyn Device>`.
///
/// Every op returns a new contiguous buffer, except [`Device::adamw_step`], which updates its
/// state in place. Float ops take f32 activations; where a method says so, weights may be
/// f16/bf16 and are widened inside the kernel.
#[allow(unused_variables)]
pub trait Device: Send + Sync + std::fmt::Debug {
    /// Stable name used in errors and for device identity, e.g. `cpu`.
    fn name(&self) -> String;

    // ---- memory -------------------------------------------------------------------------

    /// Upload host data.
    #[allow(clippy::wrong_self_convention)] // a device method that uploads, not a constructor
    fn from_host(&self, data: HostBuffer) -> Result<Buffer> {
        Err(self.unsupported("from_host"))
    }
    /// Take host data borrowed from a read-only memory map (weights). A device that computes on
    /// host memory keeps the borrow (the CPU: zero-copy); the default uploads a copy, which is
    /// what any device with its own memory has to do.
    #[allow(clippy::wrong_self_convention)] // a device method that uploads, not a constructor
    fn from_mapped(&self, data: MappedHost) -> Result<Buffer> {
        self.from_host(data.to_host())
    }
    /// Download the view as a contiguous host buffer.
    fn to_host(&self, src: View) -> Result<HostBuffer> {
        Err(self.unsupported("to_host"))
    }
    /// `len` zeros.
    fn zeros(&self, dtype: DType, len: usize) -> Result<Buffer> {
        Err(self.unsupported("zeros"))
    }
    /// Contiguous copy of a strided view (same dtype).
    fn copy_strided(&self, src: View) -> Result<Buffer> {
        Err(self.unsupported("copy"))
    }
    /// Copy `src` in place into the part of `dst` that `dst_layout` selects (same shape and
    /// dtype). The one in-place write besides the optimizer step: KV caches append through it.
    fn copy_into(&self, dst: &mut dyn DeviceBuffer, dst_layout: &Layout, src: View) -> Result<()> {
        Err(self.unsupported("copy_into"))
    }
    /// Contiguous copy converted to `dtype`.
    fn cast(&self, src: View, dtype: DType) -> Result<Buffer> {
        Err(self.unsupported("cast"))
    }

    // ---- elementwise and reductions -------------------------------------------------------

    /// Elementwise unary function.
    fn unary(&self, op: UnaryOp, src: View) -> Result<Buffer> {
        Err(self.unsupported(op.name()))
    }
    /// Elementwise binary function of two same-shape views.
    fn binary(&self, op: BinaryOp, lhs: View, rhs: View) -> Result<Buffer> {
        Err(self.unsupported(op.name()))
    }
    /// `cond ? on_true : on_false`, all three the same shape; `cond` is u32 (nonzero = true).
    fn where_cond(&self, cond: View, on_true: View, on_false: View) -> Result<Buffer> {
        Err(self.unsupported("where_cond"))
    }
    /// Reduce dimension `dim`, keeping it with size 1. Argmax returns u32.
    fn reduce(&self, op: ReduceOp, src: View, dim: usize) -> Result<Buffer> {
        Err(self.unsupported(op.name()))
    }

    // ---- linear algebra -------------------------------------------------------------------

    /// Batched `[…, M, K] × […, K, N] → […, M, N]`; both operands have the same batch dims
    /// (broadcast by stride 0) and any strides. `lhs` is f32; `rhs` may be f32, f16 or bf16.
    fn matmul(&self, lhs: View, rhs: View) -> Result<Buffer> {
        Err(self.unsupported("matmul"))
    }
    /// `y = act(x·Wᵀ + b)` with x `[…, in]`, W `[out, in]` (f32/f16/bf16), b `[out]` and an
    /// optional elementwise activation: a linear layer as one op, so a device can add the bias
    /// and apply the activation as it writes the product. A device that cannot fuse a given
    /// activation returns an error naming it.
    fn linear(&self, x: View, w: View, b: Option<View>, act: Option<UnaryOp>) -> Result<Buffer> {
        Err(self.unsupported("linear"))
    }
    /// `y = x·Wᵀ + b + scale·(x·Aᵀ)·Bᵀ` with x `[…, in]`, W `[out, in]`, b `[out]`,
    /// A `[r, in]`, B `[out, r]`. Must never form `B·A`.
    fn lora_linear(
        &self,
        x: View,
        w: View,
        b: Option<View>,
        a: View,
        bm: View,
        scale: f32,
    ) -> Result<Buffer> {
        Err(self.unsupported("lora_linear"))
    }

    // ---- indexing -------------------------------------------------------------------------

    /// Rows of `src` along `dim` picked by 1-D `ids` (u32 or i64): embedding lookup.
    fn index_select(&self, src: View, ids: View, dim: usize) -> Result<Buffer> {
        Err(self.unsupported("index_select"))
    }
    /// `dst` with `src` slices added at `ids` along `dim` (the backward of index_select).
    fn index_add(&self, dst: View, ids: View, src: View, dim: usize) -> Result<Buffer> {
        Err(self.unsupported("index_add"))
    }
    /// `out[…i…] = src[…index[…i…]…]` along `dim` (PyTorch `gather`); index is u32 or i64 and
    /// has the shape of the output.
    fn gather(&self, src: View, index: View, dim: usize) -> Result<Buffer> {
        Err(self.unsupported("gather"))
    }
    /// `dst` with `dst[…index[…i…]…] += src[…i…]` along `dim` (PyTorch `scatter_add`).
    fn scatter_add(&self, dst: View, index: View, src: View, dim: usize) -> Result<Buffer> {
        Err(self.unsupported("scatter_add"))
    }
    /// Concatenate along `dim`; all parts share dtype and all other dims.
    fn concat(&self, parts: &[View], dim: usize) -> Result<Buffer> {
        Err(self.unsupported("concat"))
    }

    // ---- fused neural-network ops -----------------------------------------------------------

    /// Softmax over the last dimension.
    fn softmax(&self, src: View) -> Result<Buffer> {
        Err(self.unsupported("softmax"))
    }
    /// Log-softmax over the last dimension.
    fn log_softmax(&self, src: View) -> Result<Buffer> {
        Err(self.unsupported("log_softmax"))
    }
    /// LayerNorm over the last dimension: `(x − μ)/√(σ² + eps)·w + b`.
    fn layer_norm(&self, x: View, w: View, b: Option<View>, eps: f32) -> Result<Buffer> {
        Err(self.unsupported("layer_norm"))
    }
    /// RMSNorm over the last dimension: `x/√(mean(x²) + eps)·w`.
    fn rms_norm(&self, x: View, w: View, eps: f32) -> Result<Buffer> {
        Err(self.unsupported("rms_norm"))
    }
    /// Rotary embedding of x `[…, T, D]` with tables cos/sin `[T, D/2]`:
    /// `(x₁, x₂) ↦ (x₁·cos − x₂·sin, x₂·cos + x₁·sin)` over the pairs `style` selects.
    fn rope(&self, x: View, cos: View, sin: View, style: RopeStyle) -> Result<Buffer> {
        Err(self.unsupported("rope"))
    }
    /// Conv2d: x `[N, C, H, W]`, w `[O, C, KH, KW]`, b `[O]` → `[N, O, OH, OW]`.
    fn conv2d(&self, x: View, w: View, b: Option<View>, p: &Conv2dParams) -> Result<Buffer> {
        Err(self.unsupported("conv2d"))
    }
    /// Unfold x `[N, C, H, W]` into columns `[N, C·KH·KW, OH·OW]` (im2col).
    fn im2col(&self, x: View, kernel: (usize, usize), p: &Conv2dParams) -> Result<Buffer> {
        Err(self.unsupported("im2col"))
    }
    /// Fold columns `[N, C·KH·KW, OH·OW]` back into `[N, C, H, W]`, adding overlaps (col2im,
    /// the adjoint of im2col). `input_hw` is (H, W).
    fn col2im(
        &self,
        cols: View,
        channels: usize,
        input_hw: (usize, usize),
        kernel: (usize, usize),
        p: &Conv2dParams,
    ) -> Result<Buffer> {
        Err(self.unsupported("col2im"))
    }
    /// Attention: q `[B, Hq, Tq, D]`, k/v `[B, Hkv, Tk, D]` with `Hq % Hkv == 0` (GQA: query
    /// head h reads kv head `h / (Hq/Hkv)`), optional additive mask viewed as `[B, Hq, Tq, Tk]`
    /// (stride-0 broadcast allowed) → `[B, Hq, Tq, D]`.
    fn attention(
        &self,
        q: View,
        k: View,
        v: View,
        mask: Option<View>,
        p: &AttentionParams,
    ) -> Result<Buffer> {
        Err(self.unsupported("attention"))
    }
    /// Gradients `(dq, dk, dv)` of [`Device::attention`] given the output gradient `dout`.
    fn attention_backward(
        &self,
        q: View,
        k: View,
        v: View,
        mask: Option<View>,
        dout: View,
        p: &AttentionParams,
    ) -> Result<(Buffer, Buffer, Buffer)> {
        Err(self.unsupported("attention_backward"))
    }
    /// Per-row negative log-likelihood of logits `[N, V]` at targets `[N]` (u32/i64); rows whose
    /// target equals `ignore_index` give 0. Output `[N]`.
    fn cross_entropy(&self, logits: View, targets: View, ignore_index: i64) -> Result<Buffer> {
        Err(self.unsupported("cross_entropy"))
    }
    /// `dlogits[i] = grad[i]·(softmax(logits[i]) − onehot(target[i]))`, zero for ignored rows.
    fn cross_entropy_backward(
        &self,
        logits: View,
        targets: View,
        grad: View,
        ignore_index: i64,
    ) -> Result<Buffer> {
        Err(self.unsupported("cross_entropy_backward"))
    }
    /// CTC negative log-likelihood of `labels` `[L]` (u32/i64, never `blank`) under the
    /// log-probabilities `[T, C]` of one sequence; output `[1]`, `+∞` when `T` cannot fit them.
    fn ctc_loss(&self, log_probs: View, labels: View, blank: usize) -> Result<Buffer> {
        Err(self.unsupported("ctc_loss"))
    }
    /// `dlog_probs[t, k] = −grad·γ_t(k)` (the posterior occupancy of class `k` at frame `t`),
    /// `[T, C]`; zero when no alignment exists.
    fn ctc_loss_backward(
        &self,
        log_probs: View,
        labels: View,
        grad: View,
        blank: usize,
    ) -> Result<Buffer> {
        Err(self.unsupported("ctc_loss_backward"))
    }

    // ---- optimizer ------------------------------------------------------------------------

    /// One AdamW step in place on contiguous f32 `param`, `m`, `v` with gradient `grad`.
    fn adamw_step(
        &self,
        param: &mut dyn DeviceBuffer,
        grad: View,
        m: &mut dyn DeviceBuffer,
        v: &mut dyn DeviceBuffer,
        hp: &AdamWParams,
    ) -> Result<()> {
        Err(self.unsupported("adamw_step"))
    }

    /// The error for an op this device does not implement.
    fn unsupported(&self, op: &'static str) -> Error {
        Error::Unsupported {
            op,
            device: self.name(),
        }
    }
}
