// unary.cpp: elementwise functions of one f32 input (osum_unary_f32), vector cores, every
// engine UnaryOp: CopyIn -> op (a short sequence of vector instructions) -> CopyOut, with
// double-buffered queues and ragged tails by DataCopyPad (the padded lanes are computed and
// dropped). Op codes: kernels/plain.rs UnaryKernelOp.
#include "kernel_operator.h"
#include "plain_tiling.h"

using namespace AscendC;

namespace {

class UnaryKernel {
   public:
    __aicore__ inline void Init(GM_ADDR x, GM_ADDR y, const UnaryTiling &t) {
        t_ = t;
        uint64_t start = uint64_t(GetBlockIdx()) * t.blockLength;
        len_ = start >= t.totalLength ? 0 : static_cast<uint32_t>(
            std::min<uint64_t>(t.blockLength, t.totalLength - start));
        if (len_ == 0) return;
        xGm_.SetGlobalBuffer((__gm__ float *)x + start, len_);
        yGm_.SetGlobalBuffer((__gm__ float *)y + start, len_);
        uint32_t bytes = t.tileLength * sizeof(float);
        pipe_.InitBuffer(in_, 2, bytes);
        pipe_.InitBuffer(out_, 2, bytes);
        pipe_.InitBuffer(tmp_, bytes);
    }

    __aicore__ inline void Process() {
        for (uint32_t off = 0; off < len_; off += t_.tileLength) {
            uint32_t n = std::min(t_.tileLength, len_ - off);
            LocalTensor<float> x = in_.AllocTensor<float>();
            DataCopyExtParams pi{1, static_cast<uint32_t>(n * sizeof(float)), 0, 0, 0};
            DataCopyPadExtParams<float> pad{true, 0, 0, 0.0f};
            DataCopyPad(x, xGm_[off], pi, pad);
            in_.EnQue(x);
            x = in_.DeQue<float>();
            LocalTensor<float> y = out_.AllocTensor<float>();
            Compute(y, x, static_cast<int32_t>((n + 7) / 8 * 8));
            in_.FreeTensor(x);
            out_.EnQue(y);
            y = out_.DeQue<float>();
            DataCopyExtParams po{1, static_cast<uint32_t>(n * sizeof(float)), 0, 0, 0};
            DataCopyPad(yGm_[off], y, po);
            out_.FreeTensor(y);
        }
    }

   private:
    // y = sigmoid(x) = 1 / (1 + exp(-x)).
    __aicore__ inline void Sigmoid(const LocalTensor<float> &y, const LocalTensor<float> &x,
                                   int32_t n) {
        Muls(y, x, -1.0f, n);
        Exp(y, y, n);
        Adds(y, y, 1.0f, n);
        Reciprocal(y, y, n);
    }

    __aicore__ inline void Compute(const LocalTensor<float> &y, const LocalTensor<float> &x,
                                   int32_t n) {
        LocalTensor<float> t = tmp_.Get<float>();
        uint32_t un = static_cast<uint32_t>(n);
        switch (t_.op) {
            case 0: Muls(y, x, -1.0f, n); break;                    // neg
            case 1: Exp(y, x, n); break;                            // exp
            case 2: Ln(y, x, n); break;                             // log
            case 3: Sqrt(y, x, n); break;                           // sqrt
            case 4: Reciprocal(y, x, n); break;                     // recip
            case 5: Abs(y, x, n); break;                            // abs
            case 6: Mul(y, x, x, n); break;                         // sqr
            case 7: Tanh(y, x, un); break;                          // tanh
            case 8: Sigmoid(y, x, n); break;                        // sigmoid
            case 9: Relu(y, x, n); break;                           // relu
            case 10:                                                // gelu = x * Phi(x)
                Muls(t, x, 0.70710678118654752f, n);
                Erf(t, t, un);
                Adds(t, t, 1.0f, n);
                Mul(y, x, t, n);
                Muls(y, y, 0.5f, n);
                break;
            case 11:                                                // silu = x * sigmoid(x)
                Sigmoid(t, x, n);
                Mul(y, x, t, n);
                break;
            case 12: Sin(y, x, un); break;                          // sin
            case 13: Cos(y, x, un); break;                          // cos
            case 14:                                                // step = relu(sign(x))
                Sign(y, x, un);
                Relu(y, y, n);
                break;
            case 15:                                                // gelu' = Phi(x) + x phi(x)
                Mul(t, x, x, n);
                Muls(t, t, -0.5f, n);
                Exp(t, t, n);
                Mul(t, t, x, n);
                Muls(t, t, 0.39894228040143268f, n);                // 1 / sqrt(2 pi)
                Muls(y, x, 0.70710678118654752f, n);
                Erf(y, y, un);
                Adds(y, y, 1.0f, n);
                Muls(y, y, 0.5f, n);
                Add(y, y, t, n);
                break;
            case 16:                                                // silu' = s (1 + x (1 - s))
                Sigmoid(t, x, n);
                Muls(y, t, -1.0f, n);
                Adds(y, y, 1.0f, n);
                Mul(y, y, x, n);
                Adds(y, y, 1.0f, n);
                Mul(y, y, t, n);
                break;
            case 17:                                                // affine
                Muls(y, x, t_.p0, n);
                Adds(y, y, t_.p1, n);
                break;
            default: Power(y, x, t_.p0, un); break;                 // powf
        }
    }

    TPipe pipe_;
    TQue<TPosition::VECIN, 2> in_;
    TQue<TPosition::VECOUT, 2> out_;
    TBuf<TPosition::VECCALC> tmp_;
    GlobalTensor<float> xGm_, yGm_;
    UnaryTiling t_{};
    uint32_t len_ = 0;
};

}  // namespace

extern "C" __global__ __aicore__ void osum_unary_f32(GM_ADDR x, GM_ADDR y, UnaryTiling tiling) {
    UnaryKernel k;
    k.Init(x, y, tiling);
    k.Process();
}
