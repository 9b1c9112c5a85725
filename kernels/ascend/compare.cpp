// compare.cpp: elementwise comparison z = (x (mode) y) as u32 0/1 (osum_compare), vector cores:
// CopyIn -> compare -> CopyOut with double-buffered queues and ragged tails by DataCopyPad, as
// elementwise.cpp.
//
// f32 operands take the vector path: Compare writes a bit mask, Select turns it into 1.0 / 0.0
// and Cast (exact for 0 and 1) into int32, whose bits are the u32 result. The vector Compare has
// no u32 or i64 form, so integer operands (ids, masks) are compared one element at a time by the
// scalar unit on the UB tile (GetValue / SetValue: correct for every value, slow, and only used
// for small id tensors).
#include "kernel_operator.h"
#include "plain_tiling.h"

using namespace AscendC;

namespace {

// 256 bytes of f32: the granule Compare works in.
constexpr uint32_t kRepeat = 64;

__aicore__ inline CMPMODE CmpMode(uint32_t mode) {
    switch (mode) {
        case 0: return CMPMODE::EQ;
        case 1: return CMPMODE::NE;
        case 2: return CMPMODE::LT;
        case 3: return CMPMODE::LE;
        case 4: return CMPMODE::GT;
        default: return CMPMODE::GE;
    }
}

template <typename T>
__aicore__ inline int32_t ScalarCompare(uint32_t mode, T a, T b) {
    switch (mode) {
        case 0: return a == b;
        case 1: return a != b;
        case 2: return a < b;
        case 3: return a <= b;
        case 4: return a > b;
        default: return a >= b;
    }
}

template <typename T>
class CompareKernel {
   public:
    __aicore__ inline void Init(GM_ADDR x, GM_ADDR y, GM_ADDR z, const CompareTiling &t) {
        t_ = t;
        uint64_t start = uint64_t(GetBlockIdx()) * t.blockLength;
        len_ = start >= t.totalLength ? 0 : static_cast<uint32_t>(
            std::min<uint64_t>(t.blockLength, t.totalLength - start));
        if (len_ == 0) return;
        xGm_.SetGlobalBuffer((__gm__ T *)x + start, len_);
        yGm_.SetGlobalBuffer((__gm__ T *)y + start, len_);
        zGm_.SetGlobalBuffer((__gm__ int32_t *)z + start, len_);
        pipe_.InitBuffer(inX_, 2, t.tileLength * sizeof(T));
        pipe_.InitBuffer(inY_, 2, t.tileLength * sizeof(T));
        pipe_.InitBuffer(out_, 2, t.tileLength * sizeof(int32_t));
        if constexpr (std::is_same_v<T, float>) {
            // A bit per element (rounded up to a 32-byte block), the 0/1 floats, and ones.
            pipe_.InitBuffer(mask_, (t.tileLength / 8 + 31) / 32 * 32);
            pipe_.InitBuffer(sel_, t.tileLength * sizeof(float));
            pipe_.InitBuffer(ones_, t.tileLength * sizeof(float));
            Duplicate(ones_.Get<float>(), 1.0f, static_cast<int32_t>(t.tileLength));
        }
    }

    __aicore__ inline void Process() {
        for (uint32_t off = 0; off < len_; off += t_.tileLength) {
            uint32_t n = std::min(t_.tileLength, len_ - off);
            CopyIn(off, n);
            Compute(n);
            CopyOut(off, n);
        }
    }

   private:
    __aicore__ inline void CopyIn(uint32_t off, uint32_t n) {
        LocalTensor<T> x = inX_.template AllocTensor<T>();
        LocalTensor<T> y = inY_.template AllocTensor<T>();
        DataCopyExtParams p{1, static_cast<uint32_t>(n * sizeof(T)), 0, 0, 0};
        DataCopyPadExtParams<T> pad{true, 0, 0, T(0)};
        DataCopyPad(x, xGm_[off], p, pad);
        DataCopyPad(y, yGm_[off], p, pad);
        inX_.EnQue(x);
        inY_.EnQue(y);
    }

    __aicore__ inline void Compute(uint32_t n) {
        LocalTensor<T> x = inX_.template DeQue<T>();
        LocalTensor<T> y = inY_.template DeQue<T>();
        LocalTensor<int32_t> z = out_.template AllocTensor<int32_t>();
        if constexpr (std::is_same_v<T, float>) {
            // Whole repeats; lanes past n hold stale values and are dropped on copy-out.
            uint32_t padded = (n + kRepeat - 1) / kRepeat * kRepeat;
            LocalTensor<uint8_t> mask = mask_.Get<uint8_t>();
            LocalTensor<float> sel = sel_.Get<float>();
            Compare(mask, x, y, CmpMode(t_.mode), padded);
            Select(sel, mask, ones_.Get<float>(), 0.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, padded);
            Cast(z, sel, RoundMode::CAST_RINT, padded);
        } else {
            for (uint32_t i = 0; i < n; ++i)
                z.SetValue(i, ScalarCompare(t_.mode, x.GetValue(i), y.GetValue(i)));
        }
        out_.EnQue(z);
        inX_.FreeTensor(x);
        inY_.FreeTensor(y);
    }

    __aicore__ inline void CopyOut(uint32_t off, uint32_t n) {
        LocalTensor<int32_t> z = out_.template DeQue<int32_t>();
        DataCopyExtParams p{1, static_cast<uint32_t>(n * sizeof(int32_t)), 0, 0, 0};
        DataCopyPad(zGm_[off], z, p);
        out_.FreeTensor(z);
    }

    TPipe pipe_;
    TQue<TPosition::VECIN, 2> inX_, inY_;
    TQue<TPosition::VECOUT, 2> out_;
    TBuf<TPosition::VECCALC> mask_, sel_, ones_;
    GlobalTensor<T> xGm_, yGm_;
    GlobalTensor<int32_t> zGm_;
    CompareTiling t_{};
    uint32_t len_ = 0;
};

template <typename T>
__aicore__ inline void RunCompare(GM_ADDR x, GM_ADDR y, GM_ADDR z, const CompareTiling &t) {
    CompareKernel<T> k;
    k.Init(x, y, z, t);
    k.Process();
}

}  // namespace

extern "C" __global__ __aicore__ void osum_compare(GM_ADDR x, GM_ADDR y, GM_ADDR z,
                                                   CompareTiling tiling) {
    if (tiling.kind == 0) RunCompare<float>(x, y, z, tiling);
    if (tiling.kind == 3) RunCompare<uint32_t>(x, y, z, tiling);
    if (tiling.kind == 4) RunCompare<int64_t>(x, y, z, tiling);
}
