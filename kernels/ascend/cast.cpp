// cast.cpp: dtype conversion of contiguous elements (osum_cast), f32 <-> f16 / bf16, vector
// cores: CopyIn -> Cast (round to nearest even) -> CopyOut with double-buffered queues, ragged
// tails by DataCopyPad. Weights stored in half precision are widened by it before a cube
// kernel reads them as f32.
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
            // Whole 32-byte blocks of the narrower type; the padded tail is dropped on copy-out.
            Cast(y, x, RoundMode::CAST_RINT, (n + 15) / 16 * 16);
            in_.FreeTensor(x);
            out_.EnQue(y);
            y = out_.template DeQue<D>();
            DataCopyExtParams po{1, static_cast<uint32_t>(n * sizeof(D)), 0, 0, 0};
            DataCopyPad(yGm_[off], y, po);
            out_.FreeTensor(y);
        }
    }

   private:
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

// src/dst codes: 0 f32, 1 f16, 2 bf16; one side is f32 (the host refuses other pairs).
extern "C" __global__ __aicore__ void osum_cast(GM_ADDR x, GM_ADDR y, CastTiling tiling) {
    if (tiling.src == 0 && tiling.dst == 1) RunCast<float, half>(x, y, tiling);
    if (tiling.src == 0 && tiling.dst == 2) RunCast<float, bfloat16_t>(x, y, tiling);
    if (tiling.src == 1 && tiling.dst == 0) RunCast<half, float>(x, y, tiling);
    if (tiling.src == 2 && tiling.dst == 0) RunCast<bfloat16_t, float>(x, y, tiling);
}
