// cross_entropy.cpp: per-row negative log-likelihood and its gradient, f32 (vector cores).
//   osum_cross_entropy_f32:     loss[r] = max + ln(sum exp(x - max)) - x[target]   (0 if ignored)
//   osum_cross_entropy_bwd_f32: dx[r] = grad[r] * (exp(x - max) / sum - onehot(target))
//                               (0 for ignored rows)
// Targets are u32, checked on the host; 0xFFFFFFFF marks an ignored row. Block b owns the
// contiguous rows [b * rowsPerBlock, ...): the forward buffers its losses in UB and writes them
// with one DataCopyPad per outChunk rows (no scalar GM stores shared between cores). Row
// statistics come from row_stats.h (chunked, f32).
#include <cmath>

#include "kernel_operator.h"
#include "row_stats.h"
#include "tiling_nn.h"

using namespace AscendC;

namespace {

constexpr uint32_t kIgnored = 0xFFFFFFFFu;

class CrossEntropyKernel {
   public:
    __aicore__ inline void Init(GM_ADDR x, GM_ADDR tgt, GM_ADDR g, GM_ADDR y,
                                const RowLossTiling &t, bool backward) {
        t_ = t;
        backward_ = backward;
        uint64_t n = uint64_t(t.rows) * t.cols;
        xGm_.SetGlobalBuffer((__gm__ float *)x, n);
        tGm_.SetGlobalBuffer((__gm__ uint32_t *)tgt, t.rows);
        if (backward) {
            gGm_.SetGlobalBuffer((__gm__ float *)g, t.rows);
            yGm_.SetGlobalBuffer((__gm__ float *)y, n);
        } else {
            yGm_.SetGlobalBuffer((__gm__ float *)y, t.rows);
        }
        pipe_.InitBuffer(in_, 2, t.chunkLen * sizeof(float));
        pipe_.InitBuffer(out_, 2, (backward ? t.chunkLen : t.outChunk) * sizeof(float));
        pipe_.InitBuffer(scratch_, 16 * sizeof(float));
    }

    __aicore__ inline void Process() {
        uint32_t r0 = GetBlockIdx() * t_.rowsPerBlock;
        if (r0 >= t_.rows) return;
        uint32_t r1 = t_.rows - r0 < t_.rowsPerBlock ? t_.rows : r0 + t_.rowsPerBlock;
        osum::RowStats<TQue<TPosition::VECIN, 2>> rs(in_, scratch_, t_.cols, t_.chunkLen);
        if (backward_) {
            for (uint32_t r = r0; r < r1; ++r) Backward(rs, r);
            return;
        }
        for (uint32_t c = r0; c < r1; c += t_.outChunk) {
            uint32_t count = r1 - c < t_.outChunk ? r1 - c : t_.outChunk;
            LocalTensor<float> loss = out_.AllocTensor<float>();
            for (uint32_t i = 0; i < count; ++i) loss.SetValue(i, Nll(rs, c + i));
            out_.EnQue(loss);
            loss = out_.DeQue<float>();
            DataCopyExtParams p{1, static_cast<uint32_t>(count * sizeof(float)), 0, 0, 0};
            DataCopyPad(yGm_[c], loss, p);
            out_.FreeTensor(loss);
        }
    }

   private:
    using Stats = osum::RowStats<TQue<TPosition::VECIN, 2>>;

    __aicore__ inline float Nll(Stats &rs, uint32_t r) {
        uint32_t target = tGm_.GetValue(r);
        if (target == kIgnored) return 0.0f;
        GlobalTensor<float> row = xGm_[uint64_t(r) * t_.cols];
        float mx = rs.Max(row);
        return mx + std::log(rs.SumExp(row, mx)) - row.GetValue(target);
    }

    __aicore__ inline void Backward(Stats &rs, uint32_t r) {
        uint64_t base = uint64_t(r) * t_.cols;
        GlobalTensor<float> row = xGm_[base];
        uint32_t target = tGm_.GetValue(r);
        float g = gGm_.GetValue(r);
        float mx = 0.0f, scale = 0.0f;
        if (target != kIgnored) {
            mx = rs.Max(row);
            scale = g / rs.SumExp(row, mx);
        }
        for (uint32_t c0 = 0; c0 < t_.cols; c0 += t_.chunkLen) {
            LocalTensor<float> y = out_.AllocTensor<float>();
            uint32_t n = t_.cols - c0 < t_.chunkLen ? t_.cols - c0 : t_.chunkLen;
            if (target == kIgnored) {
                Duplicate(y, 0.0f, rs.Padded(n));
            } else {
                rs.Load(row, c0);
                LocalTensor<float> x = in_.DeQue<float>();
                Adds(y, x, -mx, rs.Padded(n));
                Exp(y, y, rs.Padded(n));
                Muls(y, y, scale, rs.Padded(n));
                in_.FreeTensor(x);
                if (target >= c0 && target < c0 + n)
                    y.SetValue(target - c0, y.GetValue(target - c0) - g);
            }
            out_.EnQue(y);
            y = out_.DeQue<float>();
            DataCopyExtParams p{1, static_cast<uint32_t>(n * sizeof(float)), 0, 0, 0};
            DataCopyPad(yGm_[base + c0], y, p);
            out_.FreeTensor(y);
        }
    }

    TPipe pipe_;
    TQue<TPosition::VECIN, 2> in_;
    TQue<TPosition::VECOUT, 2> out_;
    TBuf<TPosition::VECCALC> scratch_;
    GlobalTensor<float> xGm_, gGm_, yGm_;
    GlobalTensor<uint32_t> tGm_;
    RowLossTiling t_{};
    bool backward_ = false;
};

}  // namespace

extern "C" __global__ __aicore__ void osum_cross_entropy_f32(GM_ADDR logits, GM_ADDR targets,
                                                             GM_ADDR loss, RowLossTiling tiling) {
    CrossEntropyKernel k;
    k.Init(logits, targets, nullptr, loss, tiling, false);
    k.Process();
}

extern "C" __global__ __aicore__ void osum_cross_entropy_bwd_f32(GM_ADDR logits, GM_ADDR targets,
                                                                 GM_ADDR grad, GM_ADDR dlogits,
                                                                 RowLossTiling tiling) {
    CrossEntropyKernel k;
    k.Init(logits, targets, grad, dlogits, tiling, true);
    k.Process();
}
