// cube_tile.h: one output tile of C = A . Bt^T on the cube (T in: f32, half or bfloat16_t;
// always f32 accumulate in L0C and f32 out), shared by the kernels that multiply matrices
// (matmul.cpp, attention.cpp, ...). CubeTile is the f32 instance; attention.cpp also feeds the
// cube fp16/bf16 operands (ASCEND.md: 16x16x16 half MACs, f32 accumulate).
//
// Path (ASCEND.md, "Paths"): GM -> L1 (ND -> NZ, DataCopy with Nd2NzParams) -> L0A (ZZ, one
// LoadData per 16-row block) / L0B (ZN: the NZ image of Bt already is B's ZN order, one
// LoadData) -> Mmad into L0C (accumulating over K steps) -> Fixpipe (NZ -> ND) -> GM.
// A1/B1 hold two buffers each so the next K step's GM -> L1 copy can overlap on the NPU.
#pragma once

#include "kernel_operator.h"

namespace osum {

using namespace AscendC;

template <typename T>
class CubeTileOf {
   public:
    static constexpr uint32_t kC0 = 32 / sizeof(T);  // elements per 32 bytes: 8 f32, 16 half

    // Buffers for tiles up to baseM x baseN (multiples of 16) and K steps of baseK (multiple of
    // kC0).
    __aicore__ inline void Init(TPipe &pipe, uint32_t baseM, uint32_t baseN, uint32_t baseK) {
        baseK_ = baseK;
        uint32_t aBytes = baseM * baseK * sizeof(T);
        uint32_t bBytes = baseN * baseK * sizeof(T);
        pipe.InitBuffer(qA1_, 2, aBytes);
        pipe.InitBuffer(qB1_, 2, bBytes);
        pipe.InitBuffer(qA2_, 1, aBytes);
        pipe.InitBuffer(qB2_, 1, bBytes);
        pipe.InitBuffer(qC_, 1, baseM * baseN * sizeof(float));
    }

    // C[mCur x nCur] (row stride ldc) = A[mCur x k] (lda) . Bt[nCur x k]^T (ldb).
    __aicore__ inline void Run(const GlobalTensor<T> &a, uint32_t lda,
                               const GlobalTensor<T> &bt, uint32_t ldb,
                               const GlobalTensor<float> &c, uint32_t ldc, uint32_t mCur,
                               uint32_t nCur, uint32_t k) {
        LocalTensor<float> acc = Open();
        Accumulate(acc, a, lda, bt, ldb, mCur, nCur, k, true);
        Close(acc, c, ldc, mCur, nCur);
    }

    // An L0C accumulator for one output tile; several products may add into it (Accumulate)
    // before Close writes it out once (fused sums such as x.W^T + (x.A^T).B^T).
    __aicore__ inline LocalTensor<float> Open() { return qC_.template AllocTensor<float>(); }

    // acc (+)= A[mCur x k] . Bt[nCur x k]^T; `first` starts the tile at zero.
    __aicore__ inline void Accumulate(const LocalTensor<float> &acc, const GlobalTensor<T> &a,
                                      uint32_t lda, const GlobalTensor<T> &bt, uint32_t ldb,
                                      uint32_t mCur, uint32_t nCur, uint32_t k, bool first) {
        uint32_t mB = (mCur + 15) / 16, nB = (nCur + 15) / 16;
        for (uint32_t k0 = 0; k0 < k; k0 += baseK_) {
            uint32_t kCur = k - k0 < baseK_ ? k - k0 : baseK_;
            uint32_t kB = (kCur + kC0 - 1) / kC0;
            // GM -> L1, ND -> NZ.
            LocalTensor<T> a1 = qA1_.template AllocTensor<T>();
            LocalTensor<T> b1 = qB1_.template AllocTensor<T>();
            Nd2NzParams pa;
            pa.nValue = static_cast<uint16_t>(mCur);
            pa.dValue = static_cast<uint16_t>(kCur);
            pa.srcDValue = static_cast<uint16_t>(lda);
            pa.dstNzC0Stride = static_cast<uint16_t>(mB * 16);
            DataCopy(a1, a[k0], pa);
            Nd2NzParams pb = pa;
            pb.nValue = static_cast<uint16_t>(nCur);
            pb.srcDValue = static_cast<uint16_t>(ldb);
            pb.dstNzC0Stride = static_cast<uint16_t>(nB * 16);
            DataCopy(b1, bt[k0], pb);
            qA1_.EnQue(a1);
            qB1_.EnQue(b1);
            // L1 -> L0A: NZ holds fractal (i, j) at j * mB + i; ZZ wants it at i * kB + j.
            a1 = qA1_.template DeQue<T>();
            LocalTensor<T> a2 = qA2_.template AllocTensor<T>();
            for (uint32_t i = 0; i < mB; ++i) {
                LoadData2DParams p;
                p.startIndex = static_cast<uint16_t>(i);
                p.repeatTimes = static_cast<uint8_t>(kB);
                p.srcStride = static_cast<uint16_t>(mB);
                LoadData(a2[i * kB * 16 * kC0], a1, p);
            }
            qA1_.FreeTensor(a1);
            // L1 -> L0B: the NZ image of Bt (fractal (nb, kb) at kb * nB + nb) is B's ZN order.
            b1 = qB1_.template DeQue<T>();
            LocalTensor<T> b2 = qB2_.template AllocTensor<T>();
            LoadData2DParams p;
            p.repeatTimes = static_cast<uint8_t>(kB * nB);
            p.srcStride = 1;
            LoadData(b2, b1, p);
            qB1_.FreeTensor(b1);
            qA2_.EnQue(a2);
            qB2_.EnQue(b2);
            a2 = qA2_.template DeQue<T>();
            b2 = qB2_.template DeQue<T>();
            MmadParams mp;
            mp.m = static_cast<uint16_t>(mCur);
            mp.n = static_cast<uint16_t>(nCur);
            mp.k = static_cast<uint16_t>(kCur);
            mp.cmatrixInitVal = first && k0 == 0;
            Mmad(acc, a2, b2, mp);
            qA2_.FreeTensor(a2);
            qB2_.FreeTensor(b2);
        }
    }

    // Write the accumulated tile (NZ -> ND, row stride ldc) and release it.
    __aicore__ inline void Close(LocalTensor<float> &acc, const GlobalTensor<float> &c,
                                 uint32_t ldc, uint32_t mCur, uint32_t nCur) {
        uint32_t mB = (mCur + 15) / 16;
        qC_.EnQue(acc);
        acc = qC_.template DeQue<float>();
        FixpipeParamsV220 fp;
        fp.nSize = static_cast<uint16_t>(nCur);
        fp.mSize = static_cast<uint16_t>(mCur);
        fp.srcStride = static_cast<uint16_t>(mB * 16);
        fp.dstStride = ldc;
        Fixpipe(c, acc, fp);
        qC_.FreeTensor(acc);
    }

   private:
    TQue<TPosition::A1, 2> qA1_;
    TQue<TPosition::B1, 2> qB1_;
    TQue<TPosition::A2, 1> qA2_;
    TQue<TPosition::B2, 1> qB2_;
    TQue<TPosition::CO1, 1> qC_;
    uint32_t baseK_ = 0;
};

// The f32 cube tile of matmul, conv2d, LoRA and the attention backward.
using CubeTile = CubeTileOf<float>;

}  // namespace osum
