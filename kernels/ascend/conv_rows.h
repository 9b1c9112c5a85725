// conv_rows.h: ragged row moves between GM and UB and the tap arithmetic shared by the
// convolution kernels (conv2d.cpp, im2col.cpp, col2im.cpp).
//
// Feature-map rows rarely have a length or start that is a multiple of 32 bytes, so every move
// is a DataCopyPad of exactly the elements needed (ASCEND.md: a plain DataCopy would round the
// length down). Element rearrangement (the im2col gather) is done with scalar UB accesses: the
// NPU builds the same tiles with the Load3D (img2col) L1 -> L0 instruction, which the simulator
// does not model yet.
#pragma once

#include "conv_tiling.h"
#include "kernel_operator.h"

namespace osum {

using namespace AscendC;

// n floats GM -> UB (ragged; the UB tail up to 32 bytes is left as is).
__aicore__ inline void LoadRun(const LocalTensor<float> &dst, const GlobalTensor<float> &src,
                               uint32_t n) {
    DataCopyExtParams p{1, static_cast<uint32_t>(n * sizeof(float)), 0, 0, 0};
    DataCopyPadExtParams<float> pad{false, 0, 0, 0.0f};
    DataCopyPad(dst, src, p, pad);
}

// n floats UB -> GM (ragged: exactly n written).
__aicore__ inline void StoreRun(const GlobalTensor<float> &dst, const LocalTensor<float> &src,
                                uint32_t n) {
    DataCopyExtParams p{1, static_cast<uint32_t>(n * sizeof(float)), 0, 0, 0};
    DataCopyPad(dst, src, p);
}

__aicore__ inline uint32_t Round8(uint32_t n) { return (n + 7) / 8 * 8; }

// Input coordinate of output position o and tap t along one axis (may be outside [0, len)).
__aicore__ inline int64_t InputAt(uint32_t o, uint32_t t, uint32_t stride, uint32_t pad,
                                  uint32_t dil) {
    return int64_t(o) * stride + int64_t(t) * dil - int64_t(pad);
}

}  // namespace osum
