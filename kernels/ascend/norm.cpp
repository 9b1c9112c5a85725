// norm.cpp: LayerNorm and RMSNorm over the last dimension, f32 (vector cores), osum_norm_f32.
//
// Per row, in UB chunks of chunkLen elements (so any row length fits UB):
//   layer norm: pass 1 sum(x) -> mean; pass 2 sum((x - mean)^2) -> var (the centred two-pass
//               form, as the CPU kernel, so large means do not cancel); pass 3 (x - mean) * rstd
//               * w + b;
//   rms norm:   pass 1 sum(x^2) -> mean square; pass 2 x * rstd * w.
// Statistics are f32 (sums of per-chunk f32 ReduceSum results). Ragged chunk tails move with
// DataCopyPad padded with 0; reductions count only the valid lanes, so padding never enters a
// statistic.
#include <cmath>

#include "kernel_operator.h"
#include "tiling_nn.h"

using namespace AscendC;

namespace {

class NormKernel {
   public:
    __aicore__ inline void Init(GM_ADDR x, GM_ADDR w, GM_ADDR b, GM_ADDR y, const NormTiling &t) {
        t_ = t;
        uint64_t n = uint64_t(t.rows) * t.cols;
        xGm_.SetGlobalBuffer((__gm__ float *)x, n);
        yGm_.SetGlobalBuffer((__gm__ float *)y, n);
        wGm_.SetGlobalBuffer((__gm__ float *)w, t.cols);
        if (t.hasBias) bGm_.SetGlobalBuffer((__gm__ float *)b, t.cols);
        uint32_t bytes = t.chunkLen * sizeof(float);
        pipe_.InitBuffer(in_, 2, bytes);
        pipe_.InitBuffer(param_, 2, bytes);
        pipe_.InitBuffer(out_, 2, bytes);
        pipe_.InitBuffer(tmp_, bytes);
        pipe_.InitBuffer(scratch_, 16 * sizeof(float));
    }

    __aicore__ inline void Process() {
        for (uint32_t r = GetBlockIdx(); r < t_.rows; r += GetBlockNum()) Row(uint64_t(r) * t_.cols);
    }

   private:
    __aicore__ inline void Row(uint64_t base) {
        float mean = 0.0f;
        if (!t_.rms) mean = SumPass(base, 0.0f, false) / float(t_.cols);
        float ms = SumPass(base, mean, true) / float(t_.cols);
        float rstd = 1.0f / std::sqrt(ms + t_.eps);
        for (uint32_t c0 = 0; c0 < t_.cols; c0 += t_.chunkLen) {
            uint32_t n = Load(in_, xGm_[base + c0], c0);
            Load(param_, wGm_[c0], c0);
            LocalTensor<float> x = in_.DeQue<float>();
            LocalTensor<float> w = param_.DeQue<float>();
            LocalTensor<float> y = out_.AllocTensor<float>();
            int32_t p = Padded(n);
            Adds(y, x, -mean, p);
            Muls(y, y, rstd, p);
            Mul(y, y, w, p);
            in_.FreeTensor(x);
            param_.FreeTensor(w);
            if (t_.hasBias) {
                Load(param_, bGm_[c0], c0);
                LocalTensor<float> b = param_.DeQue<float>();
                Add(y, y, b, p);
                param_.FreeTensor(b);
            }
            out_.EnQue(y);
            y = out_.DeQue<float>();
            DataCopyExtParams cp{1, static_cast<uint32_t>(n * sizeof(float)), 0, 0, 0};
            DataCopyPad(yGm_[base + c0], y, cp);
            out_.FreeTensor(y);
        }
    }

    // Sum over the row of x (squared: (x - shift)^2).
    __aicore__ inline float SumPass(uint64_t base, float shift, bool squared) {
        LocalTensor<float> sc = scratch_.Get<float>();  // [0, 8): result, [8, 16): work
        LocalTensor<float> tmp = tmp_.Get<float>();
        float sum = 0.0f;
        for (uint32_t c0 = 0; c0 < t_.cols; c0 += t_.chunkLen) {
            uint32_t n = Load(in_, xGm_[base + c0], c0);
            LocalTensor<float> x = in_.DeQue<float>();
            int32_t p = Padded(n);
            if (squared) {
                Adds(tmp, x, -shift, p);
                Mul(tmp, tmp, tmp, p);
                ReduceSum(sc, tmp, sc[8], static_cast<int32_t>(n));
            } else {
                ReduceSum(sc, x, sc[8], static_cast<int32_t>(n));
            }
            sum += sc.GetValue(0);
            in_.FreeTensor(x);
        }
        return sum;
    }

    // Copy up to chunkLen elements at column c0 into a buffer of `q` (tail padded with 0) and
    // enqueue it; returns the element count.
    template <class Q>
    __aicore__ inline uint32_t Load(Q &q, const GlobalTensor<float> &src, uint32_t c0) {
        uint32_t n = t_.cols - c0 < t_.chunkLen ? t_.cols - c0 : t_.chunkLen;
        LocalTensor<float> x = q.template AllocTensor<float>();
        DataCopyExtParams p{1, static_cast<uint32_t>(n * sizeof(float)), 0, 0, 0};
        DataCopyPadExtParams<float> pad{true, 0, 0, 0.0f};
        DataCopyPad(x, src, p, pad);
        q.EnQue(x);
        return n;
    }

    static __aicore__ inline int32_t Padded(uint32_t n) { return static_cast<int32_t>((n + 7) / 8 * 8); }

    TPipe pipe_;
    TQue<TPosition::VECIN, 2> in_, param_;
    TQue<TPosition::VECOUT, 2> out_;
    TBuf<TPosition::VECCALC> tmp_, scratch_;
    GlobalTensor<float> xGm_, wGm_, bGm_, yGm_;
    NormTiling t_{};
};

}  // namespace

extern "C" __global__ __aicore__ void osum_norm_f32(GM_ADDR x, GM_ADDR w, GM_ADDR b, GM_ADDR y,
                                                    NormTiling tiling) {
    NormKernel k;
    k.Init(x, w, b, y, tiling);
    k.Process();
}
