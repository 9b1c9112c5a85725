// conv2d.cpp: strided, padded, dilated 2-D convolution, f32 (osum_conv2d_f32). Conv1d (the
// Whisper front end, the adapter's downsampling) is its height-1 case.
//
// Implicit GEMM per unit (image n, tile of tileP output positions p0..):
//   1. vector: gather the patch tile P_t [pCur x K] (row = the receptive field of one output
//      position, zero where it reads padding) into this block's GM workspace, in chunks of whole
//      (c, i) kernel-row groups so a UB chunk is pCur x chunkRow floats; each input row span a
//      tile needs is loaded once per (c, i) with a ragged DataCopyPad (double-buffered queue);
//   2. cube: Y[n][o0.., p0..] = W[o0.., :] . P_t^T (cube_tile.h: A = W [O, K] dense, Bt = P_t),
//      output tiles of baseM channels, K in steps of baseK, f32 accumulate in L0C;
//   3. vector: Y rows += b[o] (ragged row segments through UB).
// Stages of one unit run in one block; on the NPU the gather and bias run on the AIV and the
// product on the AIC, synchronised with CrossCoreSetFlag/WaitFlag (the simulator runs blocks
// sequentially, so PipeBarrier<PIPE_ALL> marks the hand-over points).
//
// Simplifications (stated): f32 operands (the NPU design feeds the cube fp16/bf16 from an
// NC1HWC0 feature map, ASCEND.md "Conv2d"); the patch tile goes through GM instead of being
// built in L1/L0 by Load3D, which the simulator does not model.
#include "conv_rows.h"
#include "cube_tile.h"
#include "kernel_operator.h"

using namespace AscendC;

namespace {

class Conv2dKernel {
   public:
    __aicore__ inline void Init(GM_ADDR x, GM_ADDR w, GM_ADDR b, GM_ADDR y, GM_ADDR ws,
                                const Conv2dTiling &t) {
        t_ = t;
        const ConvGeometry &g = t.g;
        p_ = g.oh * g.ow;
        xGm_.SetGlobalBuffer((__gm__ float *)x, uint64_t(g.n) * g.c * g.h * g.w);
        wGm_.SetGlobalBuffer((__gm__ float *)w, uint64_t(t.o) * t.k);
        if (t.hasBias) bGm_.SetGlobalBuffer((__gm__ float *)b, t.o);
        yGm_.SetGlobalBuffer((__gm__ float *)y, uint64_t(g.n) * t.o * p_);
        wsGm_.SetGlobalBuffer((__gm__ float *)ws + uint64_t(GetBlockIdx()) * t.wsPerBlock,
                              t.wsPerBlock);
        cube_.Init(pipe_, t.baseM, t.tileP, t.baseK);
        pipe_.InitBuffer(span_, 2, t.spanMax * sizeof(float));
        pipe_.InitBuffer(patch_, 2, t.tileP * t.chunkRow * sizeof(float));
        pipe_.InitBuffer(row_, 2, osum::Round8(t.tileP) * sizeof(float));
    }

    __aicore__ inline void Process() {
        uint32_t units = t_.g.n * t_.tilesP;
        for (uint32_t u = GetBlockIdx(); u < units; u += GetBlockNum()) {
            uint32_t img = u / t_.tilesP;
            uint32_t p0 = (u % t_.tilesP) * t_.tileP;
            uint32_t pCur = p_ - p0 < t_.tileP ? p_ - p0 : t_.tileP;
            GatherPatches(img, p0, pCur);
            PipeBarrier<PIPE_ALL>();
            uint64_t yBase = uint64_t(img) * t_.o * p_ + p0;
            for (uint32_t o0 = 0; o0 < t_.o; o0 += t_.baseM) {
                uint32_t oCur = t_.o - o0 < t_.baseM ? t_.o - o0 : t_.baseM;
                cube_.Run(wGm_[uint64_t(o0) * t_.k], t_.k, wsGm_, t_.k,
                          yGm_[yBase + uint64_t(o0) * p_], p_, oCur, pCur, t_.k);
            }
            PipeBarrier<PIPE_ALL>();
            if (t_.hasBias) AddBias(yBase, pCur);
        }
    }

   private:
    // Workspace rows p (0..pCur) = receptive field of output position p0 + p, K floats each.
    __aicore__ inline void GatherPatches(uint32_t img, uint32_t p0, uint32_t pCur) {
        const ConvGeometry &g = t_.g;
        uint32_t groups = g.c * g.kh;
        uint32_t ohA = p0 / g.ow, ohB = (p0 + pCur - 1) / g.ow;
        for (uint32_t g0 = 0; g0 < groups; g0 += t_.groupsPerChunk) {
            uint32_t g1 = groups - g0 < t_.groupsPerChunk ? groups : g0 + t_.groupsPerChunk;
            uint32_t kChunk = (g1 - g0) * g.kw;
            uint32_t rowLen = osum::Round8(kChunk);
            LocalTensor<float> patch = patch_.AllocTensor<float>();
            Duplicate(patch, 0.0f, static_cast<int32_t>(pCur * rowLen));
            for (uint32_t grp = g0; grp < g1; ++grp) {
                uint32_t c = grp / g.kh, i = grp % g.kh;
                for (uint32_t oh = ohA; oh <= ohB; ++oh) {
                    int64_t ih = osum::InputAt(oh, i, g.sh, g.ph, g.dh);
                    if (ih < 0 || ih >= int64_t(g.h)) continue;  // padding row: stays 0
                    uint32_t owA = oh == ohA ? p0 - ohA * g.ow : 0;
                    uint32_t owB = oh == ohB ? p0 + pCur - ohB * g.ow : g.ow;
                    int64_t ia = osum::InputAt(owA, 0, g.sw, g.pw, g.dw);
                    int64_t ib = osum::InputAt(owB - 1, g.kw - 1, g.sw, g.pw, g.dw) + 1;
                    ia = ia < 0 ? 0 : ia;
                    ib = ib > int64_t(g.w) ? int64_t(g.w) : ib;
                    if (ia >= ib) continue;
                    uint64_t rowBase = ((uint64_t(img) * g.c + c) * g.h + uint64_t(ih)) * g.w;
                    LocalTensor<float> xs = span_.AllocTensor<float>();
                    osum::LoadRun(xs, xGm_[rowBase + uint64_t(ia)], static_cast<uint32_t>(ib - ia));
                    span_.EnQue(xs);
                    xs = span_.DeQue<float>();
                    uint32_t col0 = (grp - g0) * g.kw;
                    for (uint32_t ow = owA; ow < owB; ++ow) {
                        uint32_t prow = (oh * g.ow + ow - p0) * rowLen + col0;
                        for (uint32_t j = 0; j < g.kw; ++j) {
                            int64_t iw = osum::InputAt(ow, j, g.sw, g.pw, g.dw);
                            if (iw >= ia && iw < ib)
                                patch.SetValue(prow + j,
                                               xs.GetValue(static_cast<uint32_t>(iw - ia)));
                        }
                    }
                    span_.FreeTensor(xs);
                }
            }
            patch_.EnQue(patch);
            patch = patch_.DeQue<float>();
            // pCur rows of kChunk floats (UB rows rowLen apart) -> workspace rows K apart.
            DataCopyExtParams p{static_cast<uint16_t>(pCur),
                                static_cast<uint32_t>(kChunk * sizeof(float)), 0,
                                static_cast<uint32_t>((t_.k - kChunk) * sizeof(float)), 0};
            DataCopyPad(wsGm_[uint64_t(g0) * g.kw], patch, p);
            patch_.FreeTensor(patch);
        }
    }

    __aicore__ inline void AddBias(uint64_t yBase, uint32_t pCur) {
        int32_t padded = static_cast<int32_t>(osum::Round8(pCur));
        for (uint32_t o = 0; o < t_.o; ++o) {
            LocalTensor<float> r = row_.AllocTensor<float>();
            osum::LoadRun(r, yGm_[yBase + uint64_t(o) * p_], pCur);
            row_.EnQue(r);
            r = row_.DeQue<float>();
            Adds(r, r, bGm_.GetValue(o), padded);
            osum::StoreRun(yGm_[yBase + uint64_t(o) * p_], r, pCur);
            row_.FreeTensor(r);
        }
    }

    TPipe pipe_;
    osum::CubeTile cube_;
    TQue<TPosition::VECIN, 2> span_;
    TQue<TPosition::VECOUT, 2> patch_;
    TQue<TPosition::VECIN, 2> row_;
    GlobalTensor<float> xGm_, wGm_, bGm_, yGm_, wsGm_;
    Conv2dTiling t_{};
    uint32_t p_ = 0;
};

}  // namespace

extern "C" __global__ __aicore__ void osum_conv2d_f32(GM_ADDR x, GM_ADDR w, GM_ADDR b, GM_ADDR y,
                                                      GM_ADDR workspace, Conv2dTiling tiling) {
    Conv2dKernel k;
    k.Init(x, w, b, y, workspace, tiling);
    k.Process();
}
