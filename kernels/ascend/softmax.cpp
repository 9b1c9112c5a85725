// softmax.cpp: y = softmax(x) over the last dimension, f32 (vector cores).
//
// Three passes over each row in UB-sized chunks: the row maximum, the sum of exp(x - max), then
// exp(x - max) / sum written out. Reading the row three times costs GM traffic, but keeps any
// row length within UB (a 150k vocabulary row is 600 KB) and keeps the statistics in f32.
// Ragged chunk tails move with DataCopyPad, padded with -inf so they add nothing to max or sum.
#include <limits>

#include "kernel_operator.h"
#include "tiling.h"

using namespace AscendC;

namespace {

class SoftmaxKernel {
   public:
    __aicore__ inline void Init(GM_ADDR x, GM_ADDR y, const SoftmaxTiling &t) {
        t_ = t;
        xGm_.SetGlobalBuffer((__gm__ float *)x, uint64_t(t.rows) * t.cols);
        yGm_.SetGlobalBuffer((__gm__ float *)y, uint64_t(t.rows) * t.cols);
        pipe_.InitBuffer(in_, 2, t.chunkLen * sizeof(float));
        pipe_.InitBuffer(out_, 2, t.chunkLen * sizeof(float));
        pipe_.InitBuffer(scratch_, 16 * sizeof(float));
    }

    __aicore__ inline void Process() {
        for (uint32_t r = GetBlockIdx(); r < t_.rows; r += GetBlockNum()) Row(uint64_t(r) * t_.cols);
    }

   private:
    __aicore__ inline void Row(uint64_t base) {
        LocalTensor<float> sc = scratch_.Get<float>();  // [0, 8): result, [8, 16): work
        float mx = -std::numeric_limits<float>::infinity();
        for (uint32_t c0 = 0; c0 < t_.cols; c0 += t_.chunkLen) {
            uint32_t n = Load(base + c0, c0);
            LocalTensor<float> x = in_.DeQue<float>();
            ReduceMax(sc, x, sc[8], Padded(n));
            float m = sc.GetValue(0);
            mx = m > mx ? m : mx;
            in_.FreeTensor(x);
        }
        float sum = 0.0f;
        for (uint32_t c0 = 0; c0 < t_.cols; c0 += t_.chunkLen) {
            uint32_t n = Load(base + c0, c0);
            LocalTensor<float> x = in_.DeQue<float>();
            Adds(x, x, -mx, Padded(n));
            Exp(x, x, Padded(n));
            ReduceSum(sc, x, sc[8], Padded(n));
            sum += sc.GetValue(0);
            in_.FreeTensor(x);
        }
        float inv = 1.0f / sum;
        for (uint32_t c0 = 0; c0 < t_.cols; c0 += t_.chunkLen) {
            uint32_t n = Load(base + c0, c0);
            LocalTensor<float> x = in_.DeQue<float>();
            LocalTensor<float> y = out_.AllocTensor<float>();
            Adds(y, x, -mx, Padded(n));
            Exp(y, y, Padded(n));
            Muls(y, y, inv, Padded(n));
            in_.FreeTensor(x);
            out_.EnQue(y);
            y = out_.DeQue<float>();
            DataCopyExtParams p{1, static_cast<uint32_t>(n * sizeof(float)), 0, 0, 0};
            DataCopyPad(yGm_[base + c0], y, p);
            out_.FreeTensor(y);
        }
    }

    // Copy the chunk at column c0 into a VECIN buffer (padded with -inf) and enqueue it.
    __aicore__ inline uint32_t Load(uint64_t off, uint32_t c0) {
        uint32_t n = t_.cols - c0 < t_.chunkLen ? t_.cols - c0 : t_.chunkLen;
        LocalTensor<float> x = in_.AllocTensor<float>();
        DataCopyExtParams p{1, static_cast<uint32_t>(n * sizeof(float)), 0, 0, 0};
        DataCopyPadExtParams<float> pad{true, 0, 0, -std::numeric_limits<float>::infinity()};
        DataCopyPad(x, xGm_[off], p, pad);
        in_.EnQue(x);
        return n;
    }

    static __aicore__ inline int32_t Padded(uint32_t n) { return static_cast<int32_t>((n + 7) / 8 * 8); }

    TPipe pipe_;
    TQue<TPosition::VECIN, 2> in_;
    TQue<TPosition::VECOUT, 2> out_;
    TBuf<TPosition::VECCALC> scratch_;
    GlobalTensor<float> xGm_, yGm_;
    SoftmaxTiling t_{};
};

}  // namespace

extern "C" __global__ __aicore__ void osum_softmax_f32(GM_ADDR x, GM_ADDR y, SoftmaxTiling tiling) {
    SoftmaxKernel k;
    k.Init(x, y, tiling);
    k.Process();
}
