// adamw.cpp: one fused AdamW step (Loshchilov & Hutter, Alg. 2) over contiguous f32, in place on
// param, m and v (vector cores), osum_adamw_f32.
//
// Stage pattern per tile: CopyIn p, g, m, v (four VECIN queues, depth 2 = double buffering),
// Compute, CopyOut p, m, v (three VECOUT queues). The arithmetic is the CPU step's, operation by
// operation in the same order and f32 (engine/cpu/optim.rs), so the two devices agree to the
// last bit wherever the simulator's f32 exp/sqrt equal the host's:
//   p = p * decay;  m = b1 m + (1 - b1) g;  v = b2 v + ((1 - b2) g) g;
//   p -= (lr * (m * invBc1)) / (sqrt(v * invBc2) + eps).
// Ragged tails move with DataCopyPad; padded lanes are computed and dropped.
#include "kernel_operator.h"
#include "tiling_nn.h"

using namespace AscendC;

namespace {

class AdamWKernel {
   public:
    __aicore__ inline void Init(GM_ADDR p, GM_ADDR g, GM_ADDR m, GM_ADDR v, const AdamWTiling &t) {
        t_ = t;
        uint64_t start = uint64_t(GetBlockIdx()) * t.blockLength;
        length_ = start >= t.total ? 0
                                   : static_cast<uint32_t>(
                                         std::min<uint64_t>(t.blockLength, t.total - start));
        if (length_ == 0) return;
        pGm_.SetGlobalBuffer((__gm__ float *)p + start, length_);
        gGm_.SetGlobalBuffer((__gm__ float *)g + start, length_);
        mGm_.SetGlobalBuffer((__gm__ float *)m + start, length_);
        vGm_.SetGlobalBuffer((__gm__ float *)v + start, length_);
        uint32_t bytes = t.tileLength * sizeof(float);
        for (auto *q : {&inP_, &inG_, &inM_, &inV_}) pipe_.InitBuffer(*q, 2, bytes);
        for (auto *q : {&outP_, &outM_, &outV_}) pipe_.InitBuffer(*q, 2, bytes);
        pipe_.InitBuffer(tmp_, 2 * bytes);
    }

    __aicore__ inline void Process() {
        for (uint32_t off = 0; off < length_; off += t_.tileLength) {
            uint32_t n = std::min(t_.tileLength, length_ - off);
            CopyIn(off, n);
            Compute(n);
            CopyOut(off, n);
        }
    }

   private:
    __aicore__ inline void CopyIn(uint32_t off, uint32_t n) {
        DataCopyExtParams p{1, static_cast<uint32_t>(n * sizeof(float)), 0, 0, 0};
        DataCopyPadExtParams<float> pad{true, 0, 0, 0.0f};
        const GlobalTensor<float> *src[4] = {&pGm_, &gGm_, &mGm_, &vGm_};
        TQue<TPosition::VECIN, 2> *q[4] = {&inP_, &inG_, &inM_, &inV_};
        for (int i = 0; i < 4; ++i) {
            LocalTensor<float> b = q[i]->AllocTensor<float>();
            DataCopyPad(b, (*src[i])[off], p, pad);
            q[i]->EnQue(b);
        }
    }

    __aicore__ inline void Compute(uint32_t n) {
        int32_t c = static_cast<int32_t>((n + 7) / 8 * 8);
        LocalTensor<float> p = inP_.DeQue<float>(), g = inG_.DeQue<float>();
        LocalTensor<float> m = inM_.DeQue<float>(), v = inV_.DeQue<float>();
        LocalTensor<float> po = outP_.AllocTensor<float>(), mo = outM_.AllocTensor<float>();
        LocalTensor<float> vo = outV_.AllocTensor<float>();
        LocalTensor<float> a = tmp_.Get<float>(), b = a[t_.tileLength];
        Muls(po, p, t_.decay, c);  // p * decay
        Muls(mo, m, t_.b1, c);     // b1 m + (1 - b1) g
        Muls(a, g, 1.0f - t_.b1, c);
        Add(mo, mo, a, c);
        Muls(vo, v, t_.b2, c);  // b2 v + ((1 - b2) g) g
        Muls(a, g, 1.0f - t_.b2, c);
        Mul(a, a, g, c);
        Add(vo, vo, a, c);
        Muls(a, vo, t_.invBc2, c);  // sqrt(v_hat) + eps
        Sqrt(a, a, c);
        Adds(a, a, t_.eps, c);
        Muls(b, mo, t_.invBc1, c);  // lr * m_hat / (...)
        Muls(b, b, t_.lr, c);
        Div(b, b, a, c);
        Sub(po, po, b, c);
        inP_.FreeTensor(p);
        inG_.FreeTensor(g);
        inM_.FreeTensor(m);
        inV_.FreeTensor(v);
        outP_.EnQue(po);
        outM_.EnQue(mo);
        outV_.EnQue(vo);
    }

    __aicore__ inline void CopyOut(uint32_t off, uint32_t n) {
        DataCopyExtParams p{1, static_cast<uint32_t>(n * sizeof(float)), 0, 0, 0};
        const GlobalTensor<float> *dst[3] = {&pGm_, &mGm_, &vGm_};
        TQue<TPosition::VECOUT, 2> *q[3] = {&outP_, &outM_, &outV_};
        for (int i = 0; i < 3; ++i) {
            LocalTensor<float> b = q[i]->DeQue<float>();
            DataCopyPad((*dst[i])[off], b, p);
            q[i]->FreeTensor(b);
        }
    }

    TPipe pipe_;
    TQue<TPosition::VECIN, 2> inP_, inG_, inM_, inV_;
    TQue<TPosition::VECOUT, 2> outP_, outM_, outV_;
    TBuf<TPosition::VECCALC> tmp_;
    GlobalTensor<float> pGm_, gGm_, mGm_, vGm_;
    AdamWTiling t_{};
    uint32_t length_ = 0;
};

}  // namespace

extern "C" __global__ __aicore__ void osum_adamw_f32(GM_ADDR param, GM_ADDR grad, GM_ADDR m,
                                                     GM_ADDR v, AdamWTiling tiling) {
    AdamWKernel k;
    k.Init(param, grad, m, v, tiling);
    k.Process();
}
