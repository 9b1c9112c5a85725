// im2col.cpp: unfold x [N, C, H, W] into cols [N, C*KH*KW, OH*OW] (osum_im2col_f32), f32,
// vector cores. Row r = (c*KH + i)*KW + j, column oh*OW + ow holds
// x[c, oh*sh + i*dh - ph, ow*sw + j*dw - pw], 0 in the padding (engine/cpu/conv.rs layout).
// The conv2d backward uses it for dW (engine/ops/conv.rs).
//
// A unit is (image, channel c, kernel row i); for each output row oh the needed input row span
// is loaded once per chunk of `chunk` output columns (ragged DataCopyPad, double-buffered), and
// the KW output row segments are gathered from it with scalar UB reads (conv_rows.h says why).
#include "conv_rows.h"
#include "kernel_operator.h"

using namespace AscendC;

namespace {

class Im2colKernel {
   public:
    __aicore__ inline void Init(GM_ADDR x, GM_ADDR cols, const ConvFoldTiling &t) {
        t_ = t;
        const ConvGeometry &g = t.g;
        xGm_.SetGlobalBuffer((__gm__ float *)x, uint64_t(g.n) * g.c * g.h * g.w);
        cGm_.SetGlobalBuffer((__gm__ float *)cols,
                             uint64_t(g.n) * g.c * g.kh * g.kw * g.oh * g.ow);
        pipe_.InitBuffer(span_, 2, t.spanMax * sizeof(float));
        pipe_.InitBuffer(out_, 2, t.chunk * sizeof(float));
    }

    __aicore__ inline void Process() {
        const ConvGeometry &g = t_.g;
        uint32_t units = g.n * g.c * g.kh;
        for (uint32_t u = GetBlockIdx(); u < units; u += GetBlockNum()) Unit(u);
    }

   private:
    __aicore__ inline void Unit(uint32_t u) {
        const ConvGeometry &g = t_.g;
        uint32_t i = u % g.kh, c = (u / g.kh) % g.c, img = u / (g.kh * g.c);
        uint64_t p = uint64_t(g.oh) * g.ow;
        uint64_t row0 = (uint64_t(img) * g.c * g.kh + uint64_t(c) * g.kh + i) * g.kw;
        for (uint32_t oh = 0; oh < g.oh; ++oh) {
            int64_t ih = osum::InputAt(oh, i, g.sh, g.ph, g.dh);
            bool inside = ih >= 0 && ih < int64_t(g.h);
            uint64_t xRow = ((uint64_t(img) * g.c + c) * g.h + (inside ? uint64_t(ih) : 0)) * g.w;
            for (uint32_t ow0 = 0; ow0 < g.ow; ow0 += t_.chunk) {
                uint32_t n = g.ow - ow0 < t_.chunk ? g.ow - ow0 : t_.chunk;
                int64_t ia = osum::InputAt(ow0, 0, g.sw, g.pw, g.dw);
                int64_t ib = osum::InputAt(ow0 + n - 1, g.kw - 1, g.sw, g.pw, g.dw) + 1;
                ia = ia < 0 ? 0 : ia;
                ib = ib > int64_t(g.w) ? int64_t(g.w) : ib;
                bool any = inside && ia < ib;
                LocalTensor<float> xs;
                if (any) {
                    xs = span_.AllocTensor<float>();
                    osum::LoadRun(xs, xGm_[xRow + uint64_t(ia)], static_cast<uint32_t>(ib - ia));
                    span_.EnQue(xs);
                    xs = span_.DeQue<float>();
                }
                for (uint32_t j = 0; j < g.kw; ++j) {
                    LocalTensor<float> o = out_.AllocTensor<float>();
                    Duplicate(o, 0.0f, static_cast<int32_t>(osum::Round8(n)));
                    if (any) {
                        for (uint32_t k = 0; k < n; ++k) {
                            int64_t iw = osum::InputAt(ow0 + k, j, g.sw, g.pw, g.dw);
                            if (iw >= ia && iw < ib)
                                o.SetValue(k, xs.GetValue(static_cast<uint32_t>(iw - ia)));
                        }
                    }
                    out_.EnQue(o);
                    o = out_.DeQue<float>();
                    osum::StoreRun(cGm_[(row0 + j) * p + uint64_t(oh) * g.ow + ow0], o, n);
                    out_.FreeTensor(o);
                }
                if (any) span_.FreeTensor(xs);
            }
        }
    }

    TPipe pipe_;
    TQue<TPosition::VECIN, 2> span_;
    TQue<TPosition::VECOUT, 2> out_;
    GlobalTensor<float> xGm_, cGm_;
    ConvFoldTiling t_{};
};

}  // namespace

extern "C" __global__ __aicore__ void osum_im2col_f32(GM_ADDR x, GM_ADDR cols,
                                                      ConvFoldTiling tiling) {
    Im2colKernel k;
    k.Init(x, cols, tiling);
    k.Process();
}
