// row_stats.h: the max and sum-of-exp passes over one long f32 row that log_softmax and
// cross_entropy (forward and backward) share. A row is walked in UB chunks of chunkLen
// elements, ragged tails padded with -inf so they add nothing to the max or the sum; the
// statistics stay in f32 (ASCEND.md: keep softmax statistics in f32).
#pragma once

#include <limits>

#include "kernel_operator.h"

namespace osum {

using namespace AscendC;

// Row statistics over a VECIN queue of chunkLen-float buffers and a 16-float scratch buffer.
template <class Q>
class RowStats {
   public:
    __aicore__ inline RowStats(Q &in, TBuf<TPosition::VECCALC> &scratch, uint32_t cols,
                               uint32_t chunkLen)
        : in_(in), scratch_(scratch), cols_(cols), chunkLen_(chunkLen) {}

    // Copy the chunk at column c0 of the row at `row` into a buffer (padded with -inf) and
    // enqueue it; returns the element count.
    __aicore__ inline uint32_t Load(const GlobalTensor<float> &row, uint32_t c0) {
        uint32_t n = cols_ - c0 < chunkLen_ ? cols_ - c0 : chunkLen_;
        LocalTensor<float> x = in_.template AllocTensor<float>();
        DataCopyExtParams p{1, static_cast<uint32_t>(n * sizeof(float)), 0, 0, 0};
        DataCopyPadExtParams<float> pad{true, 0, 0, -std::numeric_limits<float>::infinity()};
        DataCopyPad(x, row[c0], p, pad);
        in_.EnQue(x);
        return n;
    }

    // Maximum of the row.
    __aicore__ inline float Max(const GlobalTensor<float> &row) {
        LocalTensor<float> sc = scratch_.Get<float>();  // [0, 8): result, [8, 16): work
        float mx = -std::numeric_limits<float>::infinity();
        for (uint32_t c0 = 0; c0 < cols_; c0 += chunkLen_) {
            uint32_t n = Load(row, c0);
            LocalTensor<float> x = in_.template DeQue<float>();
            ReduceMax(sc, x, sc[8], Padded(n));
            float m = sc.GetValue(0);
            mx = m > mx ? m : mx;
            in_.FreeTensor(x);
        }
        return mx;
    }

    // Sum of exp(x - mx) over the row.
    __aicore__ inline float SumExp(const GlobalTensor<float> &row, float mx) {
        LocalTensor<float> sc = scratch_.Get<float>();
        float sum = 0.0f;
        for (uint32_t c0 = 0; c0 < cols_; c0 += chunkLen_) {
            uint32_t n = Load(row, c0);
            LocalTensor<float> x = in_.template DeQue<float>();
            Adds(x, x, -mx, Padded(n));
            Exp(x, x, Padded(n));
            ReduceSum(sc, x, sc[8], Padded(n));
            sum += sc.GetValue(0);
            in_.FreeTensor(x);
        }
        return sum;
    }

    static __aicore__ inline int32_t Padded(uint32_t n) {
        return static_cast<int32_t>((n + 7) / 8 * 8);
    }

   private:
    Q &in_;
    TBuf<TPosition::VECCALC> &scratch_;
    uint32_t cols_;
    uint32_t chunkLen_;
};

}  // namespace osum
