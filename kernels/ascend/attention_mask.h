// attention_mask.h: the additive mask step shared by the attention forward and backward kernels.
// The mask is f32 viewed as [batch, headsQ, tq, tk] through element strides (0 = broadcast, so a
// [Tq, Tk] mask serves every batch and head); it is added to the scaled scores of one row before
// the softmax. Simplification (stated): elements are read with scalar GM loads (a broadcast mask
// has stride 0 along keys in general, which DataCopy cannot express).
#pragma once

#include "kernel_operator.h"
#include "tiling.h"

namespace {

// s[c] += mask[b, h, row, j0 + c] for c < kRows, with bh = b * headsQ + h.
__aicore__ inline void AddMaskRow(const AscendC::GlobalTensor<float> &mask,
                                  const AttentionTiling &t, const AscendC::LocalTensor<float> &s,
                                  uint32_t bh, uint32_t row, uint32_t j0, uint32_t kRows) {
    uint64_t base = uint64_t(bh / t.headsQ) * t.maskStrides[0] +
                    uint64_t(bh % t.headsQ) * t.maskStrides[1] + uint64_t(row) * t.maskStrides[2];
    for (uint32_t c = 0; c < kRows; ++c)
        s.SetValue(c, s.GetValue(c) + mask.GetValue(base + uint64_t(j0 + c) * t.maskStrides[3]));
}

}  // namespace
