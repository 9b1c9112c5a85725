// cast.cpp: dtype conversion of contiguous elements (osum_cast), vector cores: CopyIn ->
// convert -> CopyOut with double-buffered queues, ragged tails by DataCopyPad.
// f32 <-> f16 / bf16 is the vector Cast (round to nearest even); weights stored in half
// precision are widened by it before a cube kernel reads them as f32.
// Conversions with an integer side (u32, i64 <-> f32, u32 <-> i64) follow the engine's CPU
// semantics exactly (float -> integer truncates toward zero and saturates, NaN -> 0; i64 -> f32
// rounds through f64), which the vector Cast has no mode for (it has no u32 type and its
// float -> int64 does not saturate to our bounds): the scalar unit converts them one element
// at a time on the UB tile. They move ids and masks, never bulk activations.
#include "kernel_operator.h"
#include "plain_tiling.h"

using namespace AscendC;

namespace {

template <typename S, typename D>
class CastKernel {
   public:
    __aicore__ inline void Init(GM_ADDR x, GM_ADDR y, const CastTiling &t) {
        t_ = t;
        uint64_t start = uint64_t(GetBlockIdx()) * t.blockLength;
        len_ = start >= t.totalLength ? 0 : static_cast<uint32_t>(
            std::min<uint64_t>(t.blockLength, t.totalLength - start));
        if (len_ == 0) return;
        xGm_.SetGlobalBuffer((__gm__ S *)x + start, len_);
        yGm_.SetGlobalBuffer((__gm__ D *)y + start, len_);
        pipe_.InitBuffer(in_, 2, t.tileLength * sizeof(S));
        pipe_.InitBuffer(out_, 2, t.tileLength * sizeof(D));
    }

    __aicore__ inline void Process() {
        for (uint32_t off = 0; off < len_; off += t_.tileLength) {
            uint32_t n = std::min(t_.tileLength, len_ - off);
            LocalTensor<S> x = in_.template AllocTensor<S>();
            DataCopyExtParams pi{1, static_cast<uint32_t>(n * sizeof(S)), 0, 0, 0};
            DataCopyPadExtParams<S> pad{true, 0, 0, S(0.0f)};
            DataCopyPad(x, xGm_[off], pi, pad);
            in_.EnQue(x);
            x = in_.template DeQue<S>();
            LocalTensor<D> y = out_.template AllocTensor<D>();
            if constexpr (kVector) {
                // Whole 32-byte blocks of the narrower type; the padded tail is dropped on
                // copy-out.
                Cast(y, x, RoundMode::CAST_RINT, (n + 15) / 16 * 16);
            } else {
                for (uint32_t i = 0; i < n; ++i) y.SetValue(i, Convert(x.GetValue(i)));
            }
            in_.FreeTensor(x);
            out_.EnQue(y);
            y = out_.template DeQue<D>();
            DataCopyExtParams po{1, static_cast<uint32_t>(n * sizeof(D)), 0, 0, 0};
            DataCopyPad(yGm_[off], y, po);
            out_.FreeTensor(y);
        }
    }

   private:
    static constexpr bool kVector = !std::is_integral_v<S> && !std::is_integral_v<D>;

    // Rust's `as` from f64 (saturating, NaN -> 0): the engine's CPU cast goes through f64.
    static __aicore__ inline D Convert(S s) {
        double v = static_cast<double>(s);
        if constexpr (std::is_same_v<D, float>) {
            return static_cast<float>(v);
        } else if constexpr (std::is_same_v<D, uint32_t>) {
            if (!(v > 0.0)) return 0;
            if (v >= 4294967295.0) return 4294967295u;
            return static_cast<uint32_t>(v);
        } else {
            if (v != v) return 0;
            if (v >= 9223372036854775807.0) return INT64_MAX;
            if (v <= -9223372036854775808.0) return INT64_MIN;
            return static_cast<int64_t>(v);
        }
    }

    TPipe pipe_;
    TQue<TPosition::VECIN, 2> in_;
    TQue<TPosition::VECOUT, 2> out_;
    GlobalTensor<S> xGm_;
    GlobalTensor<D> yGm_;
    CastTiling t_{};
    uint32_t len_ = 0;
};

template <typename S, typename D>
__aicore__ inline void RunCast(GM_ADDR x, GM_ADDR y, const CastTiling &t) {
    CastKernel<S, D> k;
    k.Init(x, y, t);
    k.Process();
}

}  // namespace

// src/dst codes: 0 f32, 1 f16, 2 bf16, 3 u32, 4 i64. Pairs: f32 <-> f16 / bf16, f32 <-> u32 /
// i64, u32 <-> i64 (the host refuses others; half <-> integer goes through f32).
extern "C" __global__ __aicore__ void osum_cast(GM_ADDR x, GM_ADDR y, CastTiling tiling) {
    uint32_t pair = tiling.src * 8 + tiling.dst;
    switch (pair) {
        case 0 * 8 + 1: RunCast<float, half>(x, y, tiling); break;
        case 0 * 8 + 2: RunCast<float, bfloat16_t>(x, y, tiling); break;
        case 1 * 8 + 0: RunCast<half, float>(x, y, tiling); break;
        case 2 * 8 + 0: RunCast<bfloat16_t, float>(x, y, tiling); break;
        case 0 * 8 + 3: RunCast<float, uint32_t>(x, y, tiling); break;
        case 0 * 8 + 4: RunCast<float, int64_t>(x, y, tiling); break;
        case 3 * 8 + 0: RunCast<uint32_t, float>(x, y, tiling); break;
        case 4 * 8 + 0: RunCast<int64_t, float>(x, y, tiling); break;
        case 3 * 8 + 4: RunCast<uint32_t, int64_t>(x, y, tiling); break;
        case 4 * 8 + 3: RunCast<int64_t, uint32_t>(x, y, tiling); break;
        default: break;
    }
}
