// matmul.cpp: C = A . Bt^T on the cube (f32 in, f32 accumulate), the linear-layer form
// (x . W^T with W stored [n, k]). Output tiles of baseM x baseN are dealt round-robin over the
// blocks (one block per AI cube core); each tile runs the shared cube path (cube_tile.h).
#include "cube_tile.h"
#include "kernel_operator.h"
#include "tiling.h"

using namespace AscendC;

namespace {

class MatmulKernel {
   public:
    __aicore__ inline void Init(GM_ADDR a, GM_ADDR bt, GM_ADDR c, const MatmulTiling &t) {
        t_ = t;
        aGm_.SetGlobalBuffer((__gm__ float *)a, uint64_t(t.m - 1) * t.lda + t.k);
        bGm_.SetGlobalBuffer((__gm__ float *)bt, uint64_t(t.n - 1) * t.ldb + t.k);
        cGm_.SetGlobalBuffer((__gm__ float *)c, uint64_t(t.m - 1) * t.ldc + t.n);
        cube_.Init(pipe_, t.baseM, t.baseN, t.baseK);
    }

    __aicore__ inline void Process() {
        uint32_t tiles = t_.tilesM * t_.tilesN;
        for (uint32_t tile = GetBlockIdx(); tile < tiles; tile += GetBlockNum()) {
            uint32_t m0 = tile / t_.tilesN * t_.baseM;
            uint32_t n0 = tile % t_.tilesN * t_.baseN;
            uint32_t mCur = std::min(t_.baseM, t_.m - m0);
            uint32_t nCur = std::min(t_.baseN, t_.n - n0);
            cube_.Run(aGm_[uint64_t(m0) * t_.lda], t_.lda, bGm_[uint64_t(n0) * t_.ldb], t_.ldb,
                      cGm_[uint64_t(m0) * t_.ldc + n0], t_.ldc, mCur, nCur, t_.k);
        }
    }

   private:
    TPipe pipe_;
    osum::CubeTile cube_;
    GlobalTensor<float> aGm_, bGm_, cGm_;
    MatmulTiling t_{};
};

}  // namespace

extern "C" __global__ __aicore__ void osum_matmul_f32(GM_ADDR a, GM_ADDR bt, GM_ADDR c,
                                                      MatmulTiling tiling) {
    MatmulKernel k;
    k.Init(a, bt, c, tiling);
    k.Process();
}
