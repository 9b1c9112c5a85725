// where.cpp: z = cond ? t : f elementwise (osum_where), vector cores, cond u32 (nonzero = true):
// CopyIn -> select -> CopyOut with double-buffered queues and ragged tails by DataCopyPad.
//
// 2- and 4-byte elements take the vector path: the condition is converted to f32 (Cast; a
// nonzero integer never becomes 0.0), CompareScalar against 0 gives the bit mask and Select
// picks t or f. Select moves bits, so the data is handled as f32 / f16 whatever its dtype
// (u32, bf16). 8-byte elements (i64) have no vector Select and are picked by the scalar unit.
#include "kernel_operator.h"
#include "plain_tiling.h"

using namespace AscendC;

namespace {

template <typename T>
class WhereKernel {
   public:
    __aicore__ inline void Init(GM_ADDR c, GM_ADDR t, GM_ADDR f, GM_ADDR z,
                                const WhereTiling &tl) {
        tl_ = tl;
        uint64_t start = uint64_t(GetBlockIdx()) * tl.blockLength;
        len_ = start >= tl.totalLength ? 0 : static_cast<uint32_t>(
            std::min<uint64_t>(tl.blockLength, tl.totalLength - start));
        if (len_ == 0) return;
        cGm_.SetGlobalBuffer((__gm__ int32_t *)c + start, len_);
        tGm_.SetGlobalBuffer((__gm__ T *)t + start, len_);
        fGm_.SetGlobalBuffer((__gm__ T *)f + start, len_);
        zGm_.SetGlobalBuffer((__gm__ T *)z + start, len_);
        pipe_.InitBuffer(inC_, 2, tl.tileLength * sizeof(int32_t));
        pipe_.InitBuffer(inT_, 2, tl.tileLength * sizeof(T));
        pipe_.InitBuffer(inF_, 2, tl.tileLength * sizeof(T));
        pipe_.InitBuffer(out_, 2, tl.tileLength * sizeof(T));
        if constexpr (kVector) {
            pipe_.InitBuffer(condF_, tl.tileLength * sizeof(float));
            pipe_.InitBuffer(mask_, (tl.tileLength / 8 + 31) / 32 * 32);
        }
    }

    __aicore__ inline void Process() {
        for (uint32_t off = 0; off < len_; off += tl_.tileLength) {
            uint32_t n = std::min(tl_.tileLength, len_ - off);
            CopyIn(off, n);
            Compute(n);
            CopyOut(off, n);
        }
    }

   private:
    static constexpr bool kVector = sizeof(T) <= 4;

    template <typename U>
    __aicore__ inline void Load(TQue<TPosition::VECIN, 2> &q, const GlobalTensor<U> &g,
                                uint32_t off, uint32_t n) {
        LocalTensor<U> x = q.AllocTensor<U>();
        DataCopyExtParams p{1, static_cast<uint32_t>(n * sizeof(U)), 0, 0, 0};
        DataCopyPadExtParams<U> pad{true, 0, 0, U()};
        DataCopyPad(x, g[off], p, pad);
        q.EnQue(x);
    }

    __aicore__ inline void CopyIn(uint32_t off, uint32_t n) {
        Load(inC_, cGm_, off, n);
        Load(inT_, tGm_, off, n);
        Load(inF_, fGm_, off, n);
    }

    __aicore__ inline void Compute(uint32_t n) {
        LocalTensor<int32_t> c = inC_.DeQue<int32_t>();
        LocalTensor<T> t = inT_.template DeQue<T>();
        LocalTensor<T> f = inF_.template DeQue<T>();
        LocalTensor<T> z = out_.template AllocTensor<T>();
        if constexpr (kVector) {
            // Whole 256-byte repeats of f32 (and so of the 2-byte type too: the tile is a
            // multiple of 128); lanes past n are dropped on copy-out.
            uint32_t padded = (n + 127) / 128 * 128;
            LocalTensor<float> cf = condF_.Get<float>();
            LocalTensor<uint8_t> mask = mask_.Get<uint8_t>();
            Cast(cf, c, RoundMode::CAST_NONE, padded);
            CompareScalar(mask, cf, 0.0f, CMPMODE::NE, padded);
            using V = std::conditional_t<sizeof(T) == 4, float, half>;
            Select(z.template ReinterpretCast<V>(), mask, t.template ReinterpretCast<V>(),
                   f.template ReinterpretCast<V>(), SELMODE::VSEL_TENSOR_TENSOR_MODE, padded);
        } else {
            for (uint32_t i = 0; i < n; ++i)
                z.SetValue(i, c.GetValue(i) != 0 ? t.GetValue(i) : f.GetValue(i));
        }
        out_.EnQue(z);
        inC_.FreeTensor(c);
        inT_.FreeTensor(t);
        inF_.FreeTensor(f);
    }

    __aicore__ inline void CopyOut(uint32_t off, uint32_t n) {
        LocalTensor<T> z = out_.template DeQue<T>();
        DataCopyExtParams p{1, static_cast<uint32_t>(n * sizeof(T)), 0, 0, 0};
        DataCopyPad(zGm_[off], z, p);
        out_.FreeTensor(z);
    }

    TPipe pipe_;
    TQue<TPosition::VECIN, 2> inC_, inT_, inF_;
    TQue<TPosition::VECOUT, 2> out_;
    TBuf<TPosition::VECCALC> condF_, mask_;
    GlobalTensor<int32_t> cGm_;
    GlobalTensor<T> tGm_, fGm_, zGm_;
    WhereTiling tl_{};
    uint32_t len_ = 0;
};

template <typename T>
__aicore__ inline void RunWhere(GM_ADDR c, GM_ADDR t, GM_ADDR f, GM_ADDR z,
                                const WhereTiling &tl) {
    WhereKernel<T> k;
    k.Init(c, t, f, z, tl);
    k.Process();
}

}  // namespace

extern "C" __global__ __aicore__ void osum_where(GM_ADDR cond, GM_ADDR t, GM_ADDR f, GM_ADDR z,
                                                 WhereTiling tiling) {
    if (tiling.elemBytes == 2) RunWhere<uint16_t>(cond, t, f, z, tiling);
    if (tiling.elemBytes == 4) RunWhere<uint32_t>(cond, t, f, z, tiling);
    if (tiling.elemBytes == 8) RunWhere<int64_t>(cond, t, f, z, tiling);
}
