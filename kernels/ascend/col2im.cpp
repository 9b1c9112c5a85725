// col2im.cpp: fold cols [N, C*KH*KW, OH*OW] back into x [N, C, H, W], adding where kernel taps
// overlap (osum_col2im_f32, the adjoint of im2col.cpp), f32, vector cores. The conv2d backward
// uses it for dx (engine/ops/conv.rs).
//
// A unit is one input row (image, channel c, row ih), walked in chunks of `chunk` columns: a UB
// accumulator starts at 0 and every (i, j) tap whose output row oh satisfies
// oh*sh + i*dh - ph = ih adds the cols run that lands in the chunk. Units own disjoint output
// rows, so blocks never write the same element (no atomics needed).
#include "conv_rows.h"
#include "kernel_operator.h"

using namespace AscendC;

namespace {

class Col2imKernel {
   public:
    __aicore__ inline void Init(GM_ADDR cols, GM_ADDR x, const ConvFoldTiling &t) {
        t_ = t;
        const ConvGeometry &g = t.g;
        cGm_.SetGlobalBuffer((__gm__ float *)cols,
                             uint64_t(g.n) * g.c * g.kh * g.kw * g.oh * g.ow);
        xGm_.SetGlobalBuffer((__gm__ float *)x, uint64_t(g.n) * g.c * g.h * g.w);
        pipe_.InitBuffer(run_, 2, t.spanMax * sizeof(float));
        pipe_.InitBuffer(acc_, 2, t.chunk * sizeof(float));
    }

    __aicore__ inline void Process() {
        const ConvGeometry &g = t_.g;
        uint32_t units = g.n * g.c * g.h;
        for (uint32_t u = GetBlockIdx(); u < units; u += GetBlockNum()) Unit(u);
    }

   private:
    __aicore__ inline void Unit(uint32_t u) {
        const ConvGeometry &g = t_.g;
        uint32_t ih = u % g.h, c = (u / g.h) % g.c, img = u / (g.h * g.c);
        uint64_t p = uint64_t(g.oh) * g.ow;
        for (uint32_t iw0 = 0; iw0 < g.w; iw0 += t_.chunk) {
            uint32_t n = g.w - iw0 < t_.chunk ? g.w - iw0 : t_.chunk;
            LocalTensor<float> acc = acc_.AllocTensor<float>();
            Duplicate(acc, 0.0f, static_cast<int32_t>(osum::Round8(n)));
            for (uint32_t i = 0; i < g.kh; ++i) {
                // oh*sh = ih + ph - i*dh must be a whole, in-range output row.
                int64_t num = int64_t(ih) + g.ph - int64_t(i) * g.dh;
                if (num < 0 || num % g.sh != 0 || num / g.sh >= int64_t(g.oh)) continue;
                uint32_t oh = static_cast<uint32_t>(num / g.sh);
                for (uint32_t j = 0; j < g.kw; ++j) AddTap(acc, img, c, i, j, oh, iw0, n, p);
            }
            acc_.EnQue(acc);
            acc = acc_.DeQue<float>();
            osum::StoreRun(xGm_[((uint64_t(img) * g.c + c) * g.h + ih) * g.w + iw0], acc, n);
            acc_.FreeTensor(acc);
        }
    }

    // acc[iw - iw0] += cols[row (c, i, j)][oh*OW + ow] for the ow whose iw lands in the chunk.
    __aicore__ inline void AddTap(const LocalTensor<float> &acc, uint32_t img, uint32_t c,
                                  uint32_t i, uint32_t j, uint32_t oh, uint32_t iw0, uint32_t n,
                                  uint64_t p) {
        const ConvGeometry &g = t_.g;
        // ow*sw + j*dw - pw in [iw0, iw0 + n)  <=>  ow in [ceil(lo / sw), ceil(hi / sw)).
        int64_t lo = int64_t(iw0) + g.pw - int64_t(j) * g.dw;
        int64_t hi = lo + n;
        int64_t s = g.sw;
        int64_t owA = lo <= 0 ? 0 : (lo + s - 1) / s;
        int64_t owB = hi <= 0 ? 0 : (hi + s - 1) / s;
        owB = owB > int64_t(g.ow) ? int64_t(g.ow) : owB;
        if (owA >= owB) return;
        uint64_t row = ((uint64_t(img) * g.c + c) * g.kh + i) * g.kw + j;
        uint32_t len = static_cast<uint32_t>(owB - owA);
        LocalTensor<float> r = run_.AllocTensor<float>();
        osum::LoadRun(r, cGm_[row * p + uint64_t(oh) * g.ow + uint64_t(owA)], len);
        run_.EnQue(r);
        r = run_.DeQue<float>();
        for (uint32_t k = 0; k < len; ++k) {
            int64_t iw = osum::InputAt(static_cast<uint32_t>(owA) + k, j, g.sw, g.pw, g.dw);
            uint32_t at = static_cast<uint32_t>(iw - iw0);
            acc.SetValue(at, acc.GetValue(at) + r.GetValue(k));
        }
        run_.FreeTensor(r);
    }

    TPipe pipe_;
    TQue<TPosition::VECIN, 2> run_;
    TQue<TPosition::VECOUT, 2> acc_;
    GlobalTensor<float> cGm_, xGm_;
    ConvFoldTiling t_{};
};

}  // namespace

extern "C" __global__ __aicore__ void osum_col2im_f32(GM_ADDR cols, GM_ADDR x,
                                                      ConvFoldTiling tiling) {
    Col2imKernel k;
    k.Init(cols, x, tiling);
    k.Process();
}
