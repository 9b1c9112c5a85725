// elementwise.cpp: z = x (op) y over contiguous f32 (vector cores).
//
// The AscendC stage pattern (ASCEND.md, "Stage pattern"): CopyIn (GM -> UB through VECIN
// queues), Compute (vector op into a VECOUT queue), CopyOut (UB -> GM). Queues hold 2 buffers,
// so the copy-in of tile i+1 can overlap the compute of tile i on the NPU. Ragged tails move
// with DataCopyPad (a plain DataCopy would round them down to 32 bytes).
#include "kernel_operator.h"
#include "tiling.h"

using namespace AscendC;

namespace {

constexpr int32_t kBufferNum = 2;

class BinaryKernel {
   public:
    __aicore__ inline void Init(GM_ADDR x, GM_ADDR y, GM_ADDR z, const ElementwiseTiling &t) {
        tiling_ = t;
        uint64_t start = uint64_t(GetBlockIdx()) * t.blockLength;
        length_ = start >= t.totalLength ? 0
                                         : static_cast<uint32_t>(
                                               std::min<uint64_t>(t.blockLength, t.totalLength - start));
        if (length_ == 0) return;
        xGm_.SetGlobalBuffer((__gm__ float *)x + start, length_);
        yGm_.SetGlobalBuffer((__gm__ float *)y + start, length_);
        zGm_.SetGlobalBuffer((__gm__ float *)z + start, length_);
        uint32_t bytes = t.tileLength * sizeof(float);
        pipe_.InitBuffer(inX_, kBufferNum, bytes);
        pipe_.InitBuffer(inY_, kBufferNum, bytes);
        pipe_.InitBuffer(out_, kBufferNum, bytes);
    }

    __aicore__ inline void Process() {
        for (uint32_t off = 0; off < length_; off += tiling_.tileLength) {
            uint32_t n = std::min(tiling_.tileLength, length_ - off);
            CopyIn(off, n);
            Compute(n);
            CopyOut(off, n);
        }
    }

   private:
    __aicore__ inline void CopyIn(uint32_t off, uint32_t n) {
        LocalTensor<float> x = inX_.AllocTensor<float>();
        LocalTensor<float> y = inY_.AllocTensor<float>();
        if (n % 8 == 0) {
            DataCopy(x, xGm_[off], n);
            DataCopy(y, yGm_[off], n);
        } else {
            DataCopyExtParams p{1, static_cast<uint32_t>(n * sizeof(float)), 0, 0, 0};
            DataCopyPadExtParams<float> pad{true, 0, 0, 0.0f};
            DataCopyPad(x, xGm_[off], p, pad);
            DataCopyPad(y, yGm_[off], p, pad);
        }
        inX_.EnQue(x);
        inY_.EnQue(y);
    }

    __aicore__ inline void Compute(uint32_t n) {
        LocalTensor<float> x = inX_.DeQue<float>();
        LocalTensor<float> y = inY_.DeQue<float>();
        LocalTensor<float> z = out_.AllocTensor<float>();
        // Vector instructions work on whole 32-byte blocks; the padded tail is computed and
        // then dropped by the ragged copy-out.
        int32_t padded = static_cast<int32_t>((n + 7) / 8 * 8);
        switch (tiling_.op) {
            case 0: Add(z, x, y, padded); break;
            case 1: Mul(z, x, y, padded); break;
            case 2: Sub(z, x, y, padded); break;
            case 3: Max(z, x, y, padded); break;
            // The padded lanes of y are 0 (DataCopyPad's pad value): x / 0 there is inf or
            // NaN, computed and dropped like any padded lane.
            case 4: Div(z, x, y, padded); break;
            default: Min(z, x, y, padded); break;
        }
        out_.EnQue(z);
        inX_.FreeTensor(x);
        inY_.FreeTensor(y);
    }

    __aicore__ inline void CopyOut(uint32_t off, uint32_t n) {
        LocalTensor<float> z = out_.DeQue<float>();
        if (n % 8 == 0) {
            DataCopy(zGm_[off], z, n);
        } else {
            DataCopyExtParams p{1, static_cast<uint32_t>(n * sizeof(float)), 0, 0, 0};
            DataCopyPad(zGm_[off], z, p);
        }
        out_.FreeTensor(z);
    }

    TPipe pipe_;
    TQue<TPosition::VECIN, kBufferNum> inX_, inY_;
    TQue<TPosition::VECOUT, kBufferNum> out_;
    GlobalTensor<float> xGm_, yGm_, zGm_;
    ElementwiseTiling tiling_{};
    uint32_t length_ = 0;
};

}  // namespace

extern "C" __global__ __aicore__ void osum_binary_f32(GM_ADDR x, GM_ADDR y, GM_ADDR z,
                                                      ElementwiseTiling tiling) {
    BinaryKernel k;
    k.Init(x, y, z, tiling);
    k.Process();
}
