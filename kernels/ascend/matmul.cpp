// matmul.cpp: C = A . Bt^T on the cube (f32 in, f32 accumulate), the linear-layer form
// (x . W^T with W stored [n, k]).
//
// Path (ASCEND.md, "Paths"): GM -> L1 (ND -> NZ, DataCopy with Nd2NzParams) -> L0A (ZZ, one
// LoadData per 16-row block) / L0B (ZN: the NZ image of Bt already is B's ZN layout, one
// LoadData) -> Mmad into L0C (accumulating over K steps) -> Fixpipe (NZ -> ND) -> GM.
// Output tiles are dealt round-robin over the blocks (one block per AI cube core).
#include "kernel_operator.h"
#include "tiling.h"

using namespace AscendC;

namespace {

constexpr uint32_t kC0 = 8;  // f32 elements per 32 bytes

inline uint32_t ceil_div(uint32_t a, uint32_t b) { return (a + b - 1) / b; }

class MatmulKernel {
   public:
    __aicore__ inline void Init(GM_ADDR a, GM_ADDR bt, GM_ADDR c, const MatmulTiling &t) {
        t_ = t;
        aGm_.SetGlobalBuffer((__gm__ float *)a, uint64_t(t.m - 1) * t.lda + t.k);
        bGm_.SetGlobalBuffer((__gm__ float *)bt, uint64_t(t.n - 1) * t.ldb + t.k);
        cGm_.SetGlobalBuffer((__gm__ float *)c, uint64_t(t.m - 1) * t.ldc + t.n);
        uint32_t aBytes = t.baseM * t.baseK * sizeof(float);
        uint32_t bBytes = t.baseN * t.baseK * sizeof(float);
        pipe_.InitBuffer(qA1_, 2, aBytes);
        pipe_.InitBuffer(qB1_, 2, bBytes);
        pipe_.InitBuffer(qA2_, 1, aBytes);
        pipe_.InitBuffer(qB2_, 1, bBytes);
        pipe_.InitBuffer(qC_, 1, t.baseM * t.baseN * sizeof(float));
    }

    __aicore__ inline void Process() {
        uint32_t tiles = t_.tilesM * t_.tilesN;
        for (uint32_t tile = GetBlockIdx(); tile < tiles; tile += GetBlockNum()) {
            uint32_t m0 = tile / t_.tilesN * t_.baseM;
            uint32_t n0 = tile % t_.tilesN * t_.baseN;
            Tile(m0, n0, std::min(t_.baseM, t_.m - m0), std::min(t_.baseN, t_.n - n0));
        }
    }

   private:
    __aicore__ inline void Tile(uint32_t m0, uint32_t n0, uint32_t mCur, uint32_t nCur) {
        uint32_t mB = ceil_div(mCur, 16), nB = ceil_div(nCur, 16);
        LocalTensor<float> c = qC_.AllocTensor<float>();
        for (uint32_t k0 = 0; k0 < t_.k; k0 += t_.baseK) {
            uint32_t kCur = std::min(t_.baseK, t_.k - k0);
            uint32_t kB = ceil_div(kCur, kC0);
            // GM -> L1, ND -> NZ.
            LocalTensor<float> a1 = qA1_.AllocTensor<float>();
            LocalTensor<float> b1 = qB1_.AllocTensor<float>();
            Nd2NzParams pa;
            pa.nValue = static_cast<uint16_t>(mCur);
            pa.dValue = static_cast<uint16_t>(kCur);
            pa.srcDValue = static_cast<uint16_t>(t_.lda);
            pa.dstNzC0Stride = static_cast<uint16_t>(mB * 16);
            DataCopy(a1, aGm_[uint64_t(m0) * t_.lda + k0], pa);
            Nd2NzParams pb = pa;
            pb.nValue = static_cast<uint16_t>(nCur);
            pb.srcDValue = static_cast<uint16_t>(t_.ldb);
            pb.dstNzC0Stride = static_cast<uint16_t>(nB * 16);
            DataCopy(b1, bGm_[uint64_t(n0) * t_.ldb + k0], pb);
            qA1_.EnQue(a1);
            qB1_.EnQue(b1);
            // L1 -> L0A: NZ holds fractal (i, j) at j * mB + i; ZZ wants it at i * kB + j.
            a1 = qA1_.DeQue<float>();
            LocalTensor<float> a2 = qA2_.AllocTensor<float>();
            for (uint32_t i = 0; i < mB; ++i) {
                LoadData2DParams p;
                p.startIndex = static_cast<uint16_t>(i);
                p.repeatTimes = static_cast<uint8_t>(kB);
                p.srcStride = static_cast<uint16_t>(mB);
                LoadData(a2[i * kB * 16 * kC0], a1, p);
            }
            qA1_.FreeTensor(a1);
            // L1 -> L0B: the NZ image of Bt (fractal (nb, kb) at kb * nB + nb) is B's ZN order.
            b1 = qB1_.DeQue<float>();
            LocalTensor<float> b2 = qB2_.AllocTensor<float>();
            LoadData2DParams p;
            p.repeatTimes = static_cast<uint8_t>(kB * nB);
            p.srcStride = 1;
            LoadData(b2, b1, p);
            qB1_.FreeTensor(b1);
            qA2_.EnQue(a2);
            qB2_.EnQue(b2);
            a2 = qA2_.DeQue<float>();
            b2 = qB2_.DeQue<float>();
            MmadParams mp;
            mp.m = static_cast<uint16_t>(mCur);
            mp.n = static_cast<uint16_t>(nCur);
            mp.k = static_cast<uint16_t>(kCur);
            mp.cmatrixInitVal = k0 == 0;
            Mmad(c, a2, b2, mp);
            qA2_.FreeTensor(a2);
            qB2_.FreeTensor(b2);
        }
        qC_.EnQue(c);
        c = qC_.DeQue<float>();
        FixpipeParamsV220 fp;
        fp.nSize = static_cast<uint16_t>(nCur);
        fp.mSize = static_cast<uint16_t>(mCur);
        fp.srcStride = static_cast<uint16_t>(mB * 16);
        fp.dstStride = t_.ldc;
        Fixpipe(cGm_[uint64_t(m0) * t_.ldc + n0], c, fp);
        qC_.FreeTensor(c);
    }

    TPipe pipe_;
    TQue<TPosition::A1, 2> qA1_;
    TQue<TPosition::B1, 2> qB1_;
    TQue<TPosition::A2, 1> qA2_;
    TQue<TPosition::B2, 1> qB2_;
    TQue<TPosition::CO1, 1> qC_;
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
