// log_softmax.cpp: y = x - max - ln(sum exp(x - max)) over the last dimension, f32 (vector
// cores), osum_log_softmax_f32.
//
// Three passes over each row in UB chunks (row_stats.h): the maximum, the sum of exp(x - max),
// then x - (max + ln sum) written out. As in softmax.cpp, reading the row three times keeps any
// row length (vocabularies of 150k) within UB and the statistics in f32.
#include <cmath>

#include "kernel_operator.h"
#include "row_stats.h"
#include "tiling_nn.h"

using namespace AscendC;

namespace {

class LogSoftmaxKernel {
   public:
    __aicore__ inline void Init(GM_ADDR x, GM_ADDR y, const RowLossTiling &t) {
        t_ = t;
        xGm_.SetGlobalBuffer((__gm__ float *)x, uint64_t(t.rows) * t.cols);
        yGm_.SetGlobalBuffer((__gm__ float *)y, uint64_t(t.rows) * t.cols);
        pipe_.InitBuffer(in_, 2, t.chunkLen * sizeof(float));
        pipe_.InitBuffer(out_, 2, t.chunkLen * sizeof(float));
        pipe_.InitBuffer(scratch_, 16 * sizeof(float));
    }

    __aicore__ inline void Process() {
        osum::RowStats<TQue<TPosition::VECIN, 2>> rs(in_, scratch_, t_.cols, t_.chunkLen);
        for (uint32_t r = GetBlockIdx(); r < t_.rows; r += GetBlockNum()) {
            uint64_t base = uint64_t(r) * t_.cols;
            GlobalTensor<float> row = xGm_[base];
            float mx = rs.Max(row);
            float lse = mx + std::log(rs.SumExp(row, mx));
            for (uint32_t c0 = 0; c0 < t_.cols; c0 += t_.chunkLen) {
                uint32_t n = rs.Load(row, c0);
                LocalTensor<float> x = in_.DeQue<float>();
                LocalTensor<float> y = out_.AllocTensor<float>();
                Adds(y, x, -lse, rs.Padded(n));
                in_.FreeTensor(x);
                out_.EnQue(y);
                y = out_.DeQue<float>();
                DataCopyExtParams p{1, static_cast<uint32_t>(n * sizeof(float)), 0, 0, 0};
                DataCopyPad(yGm_[base + c0], y, p);
                out_.FreeTensor(y);
            }
        }
    }

   private:
    TPipe pipe_;
    TQue<TPosition::VECIN, 2> in_;
    TQue<TPosition::VECOUT, 2> out_;
    TBuf<TPosition::VECCALC> scratch_;
    GlobalTensor<float> xGm_, yGm_;
    RowLossTiling t_{};
};

}  // namespace

extern "C" __global__ __aicore__ void osum_log_softmax_f32(GM_ADDR x, GM_ADDR y,
                                                           RowLossTiling tiling) {
    LogSoftmaxKernel k;
    k.Init(x, y, tiling);
    k.Process();
}
