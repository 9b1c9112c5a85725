// lora_linear.cpp: the LoRA linear layer y = act(x.W^T + b + s.(x.A^T).B^T), f32
// (osum_lora_linear_f32); the plain linear layer (Device::linear) is its rank-0 case.
//
// Per unit (M tile of x, group of N tiles), see lora_tiling.h:
//   1. cube:   H = x_tile . A^T            -> workspace [mCur x rank] (row stride rankPad)
//      vector: H *= s                       (scaling r columns is cheaper than n)
//   2. cube:   per N tile, ONE L0C accumulator: x_tile . W_tile^T (K = in), then += H . B_tile^T
//              (K = rank), written once by Fixpipe — the low-rank update never leaves L0C as a
//              separate [m x n] tensor, and B.A ([n x k]) is never formed (ASCEND.md, LoRA);
//   3. vector: y_row += b_tile, y_row = GELU(y_row) when asked (erf form, Whisper's MLP).
// H is recomputed per N group (nGroups > 1 only when there are fewer M tiles than cube cores,
// i.e. decode): rank.k extra MACs per row and group, the price of not synchronising blocks
// (the NPU version would SyncAll after step 1 instead).
// Simplifications (stated): f32 operands; cube and vector stages share one block (the NPU
// splits AIC/AIV with CrossCoreSetFlag/WaitFlag).
#include "conv_rows.h"
#include "cube_tile.h"
#include "kernel_operator.h"
#include "lora_tiling.h"

using namespace AscendC;

namespace {

class LoraLinearKernel {
   public:
    __aicore__ inline void Init(GM_ADDR x, GM_ADDR w, GM_ADDR b, GM_ADDR a, GM_ADDR bm, GM_ADDR y,
                                GM_ADDR ws, const LoraLinearTiling &t) {
        t_ = t;
        xGm_.SetGlobalBuffer((__gm__ float *)x, uint64_t(t.m) * t.k);
        wGm_.SetGlobalBuffer((__gm__ float *)w, uint64_t(t.n) * t.k);
        if (t.hasBias) bGm_.SetGlobalBuffer((__gm__ float *)b, t.n);
        if (t.rank > 0) {
            aGm_.SetGlobalBuffer((__gm__ float *)a, uint64_t(t.rank) * t.k);
            bmGm_.SetGlobalBuffer((__gm__ float *)bm, uint64_t(t.n) * t.rank);
            wsGm_.SetGlobalBuffer((__gm__ float *)ws + uint64_t(GetBlockIdx()) * t.wsPerBlock,
                                  t.wsPerBlock);
        }
        yGm_.SetGlobalBuffer((__gm__ float *)y, uint64_t(t.m) * t.n);
        cube_.Init(pipe_, t.baseM, t.cubeN, t.baseK);
        uint32_t row = osum::Round8(t.baseN > t.rankPad ? t.baseN : t.rankPad);
        pipe_.InitBuffer(row_, 2, row * sizeof(float));
        pipe_.InitBuffer(bias_, row * sizeof(float));
        pipe_.InitBuffer(tmp_, row * sizeof(float));
    }

    __aicore__ inline void Process() {
        uint32_t units = t_.tilesM * t_.nGroups;
        for (uint32_t u = GetBlockIdx(); u < units; u += GetBlockNum()) {
            uint32_t m0 = u / t_.nGroups * t_.baseM;
            uint32_t mCur = t_.m - m0 < t_.baseM ? t_.m - m0 : t_.baseM;
            if (t_.rank > 0) ShrinkRank(m0, mCur);
            for (uint32_t nt = u % t_.nGroups; nt < t_.tilesN; nt += t_.nGroups) {
                uint32_t n0 = nt * t_.baseN;
                uint32_t nCur = t_.n - n0 < t_.baseN ? t_.n - n0 : t_.baseN;
                LocalTensor<float> acc = cube_.Open();
                cube_.Accumulate(acc, xGm_[uint64_t(m0) * t_.k], t_.k, wGm_[uint64_t(n0) * t_.k],
                                 t_.k, mCur, nCur, t_.k, true);
                if (t_.rank > 0)
                    cube_.Accumulate(acc, wsGm_, t_.rankPad, bmGm_[uint64_t(n0) * t_.rank],
                                     t_.rank, mCur, nCur, t_.rank, false);
                cube_.Close(acc, yGm_[uint64_t(m0) * t_.n + n0], t_.n, mCur, nCur);
                if (t_.hasBias || t_.act != 0) {
                    PipeBarrier<PIPE_ALL>();
                    Epilogue(m0, mCur, n0, nCur);
                }
            }
        }
    }

   private:
    // H = s . x_tile . A^T into the workspace.
    __aicore__ inline void ShrinkRank(uint32_t m0, uint32_t mCur) {
        cube_.Run(xGm_[uint64_t(m0) * t_.k], t_.k, aGm_, t_.k, wsGm_, t_.rankPad, mCur, t_.rank,
                  t_.k);
        PipeBarrier<PIPE_ALL>();
        for (uint32_t r = 0; r < mCur; ++r) {
            LocalTensor<float> h = row_.AllocTensor<float>();
            osum::LoadRun(h, wsGm_[uint64_t(r) * t_.rankPad], t_.rank);
            row_.EnQue(h);
            h = row_.DeQue<float>();
            Muls(h, h, t_.scale, static_cast<int32_t>(osum::Round8(t_.rank)));
            osum::StoreRun(wsGm_[uint64_t(r) * t_.rankPad], h, t_.rank);
            row_.FreeTensor(h);
        }
        PipeBarrier<PIPE_ALL>();
    }

    __aicore__ inline void Epilogue(uint32_t m0, uint32_t mCur, uint32_t n0, uint32_t nCur) {
        int32_t padded = static_cast<int32_t>(osum::Round8(nCur));
        LocalTensor<float> bias = bias_.Get<float>();
        if (t_.hasBias) osum::LoadRun(bias, bGm_[n0], nCur);
        for (uint32_t r = 0; r < mCur; ++r) {
            uint64_t at = uint64_t(m0 + r) * t_.n + n0;
            LocalTensor<float> y = row_.AllocTensor<float>();
            osum::LoadRun(y, yGm_[at], nCur);
            row_.EnQue(y);
            y = row_.DeQue<float>();
            if (t_.hasBias) Add(y, y, bias, padded);
            if (t_.act == 1) Gelu(y, padded);
            osum::StoreRun(yGm_[at], y, nCur);
            row_.FreeTensor(y);
        }
    }

    // y = x . Phi(x) = 0.5 x (1 + erf(x / sqrt 2)).
    __aicore__ inline void Gelu(const LocalTensor<float> &y, int32_t n) {
        LocalTensor<float> t = tmp_.Get<float>();
        Muls(t, y, 0.70710678118654752f, n);
        Erf(t, t, static_cast<uint32_t>(n));
        Adds(t, t, 1.0f, n);
        Mul(y, y, t, n);
        Muls(y, y, 0.5f, n);
    }

    TPipe pipe_;
    osum::CubeTile cube_;
    TQue<TPosition::VECIN, 2> row_;
    TBuf<TPosition::VECCALC> bias_, tmp_;
    GlobalTensor<float> xGm_, wGm_, bGm_, aGm_, bmGm_, yGm_, wsGm_;
    LoraLinearTiling t_{};
};

}  // namespace

extern "C" __global__ __aicore__ void osum_lora_linear_f32(GM_ADDR x, GM_ADDR w, GM_ADDR b,
                                                           GM_ADDR a, GM_ADDR bm, GM_ADDR y,
                                                           GM_ADDR workspace,
                                                           LoraLinearTiling tiling) {
    LoraLinearKernel k;
    k.Init(x, w, b, a, bm, y, workspace, tiling);
    k.Process();
}
