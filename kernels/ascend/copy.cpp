// copy.cpp: strided copy between two layouts of one shape (osum_copy_strided), any 2/4/8-byte
// element type, vector cores. It serves copy_strided (strided view -> contiguous), copy_into
// (a KV cache append: contiguous -> a strided part of a buffer) and concat (each part into its
// slice of the output).
//
// Per innermost row: when both sides have inner stride 1 the row moves GM -> UB -> GM in
// ragged DataCopyPad chunks (double-buffered queue); when only the destination is dense, the
// chunk is gathered into UB with scalar GM reads and stored with one DataCopyPad; otherwise
// elements are moved with scalar GM accesses. Scalar GM accesses are slow on the NPU and are not
// counted as MTE traffic by the simulator; transposing loads (a proper transpose kernel) are
// the better NPU path and are not written yet.
#include "kernel_operator.h"
#include "plain_tiling.h"

using namespace AscendC;

namespace {

template <typename T>
class CopyKernel {
   public:
    __aicore__ inline void Init(GM_ADDR src, GM_ADDR dst, const CopyTiling &t) {
        t_ = t;
        srcGm_.SetGlobalBuffer((__gm__ T *)src, t.srcLen);
        dstGm_.SetGlobalBuffer((__gm__ T *)dst, t.dstLen);
        pipe_.InitBuffer(q_, 2, t.chunk * sizeof(T));
    }

    __aicore__ inline void Process() {
        for (uint32_t r = GetBlockIdx(); r < t_.rows; r += GetBlockNum()) Row(r);
    }

   private:
    __aicore__ inline void Row(uint32_t r) {
        uint64_t so = t_.srcOffset, dO = t_.dstOffset;
        uint32_t rem = r;
        for (int32_t d = int32_t(t_.rank) - 2; d >= 0; --d) {
            uint32_t i = rem % t_.shape[d];
            rem /= t_.shape[d];
            so += uint64_t(i) * t_.srcStride[d];
            dO += uint64_t(i) * t_.dstStride[d];
        }
        uint32_t len = t_.shape[t_.rank - 1];
        uint64_t ss = t_.srcStride[t_.rank - 1], ds = t_.dstStride[t_.rank - 1];
        if (ds != 1) {
            for (uint32_t i = 0; i < len; ++i) dstGm_.SetValue(dO + i * ds, srcGm_.GetValue(so + i * ss));
            return;
        }
        for (uint32_t c0 = 0; c0 < len; c0 += t_.chunk) {
            uint32_t n = len - c0 < t_.chunk ? len - c0 : t_.chunk;
            LocalTensor<T> buf = q_.template AllocTensor<T>();
            if (ss == 1) {
                DataCopyExtParams p{1, static_cast<uint32_t>(n * sizeof(T)), 0, 0, 0};
                DataCopyPadExtParams<T> pad{false, 0, 0, T()};
                DataCopyPad(buf, srcGm_[so + c0], p, pad);
            } else {
                for (uint32_t i = 0; i < n; ++i) buf.SetValue(i, srcGm_.GetValue(so + (c0 + i) * ss));
            }
            q_.EnQue(buf);
            buf = q_.template DeQue<T>();
            DataCopyExtParams p{1, static_cast<uint32_t>(n * sizeof(T)), 0, 0, 0};
            DataCopyPad(dstGm_[dO + c0], buf, p);
            q_.FreeTensor(buf);
        }
    }

    TPipe pipe_;
    TQue<TPosition::VECIN, 2> q_;
    GlobalTensor<T> srcGm_, dstGm_;
    CopyTiling t_{};
};

template <typename T>
__aicore__ inline void RunCopy(GM_ADDR src, GM_ADDR dst, const CopyTiling &t) {
    CopyKernel<T> k;
    k.Init(src, dst, t);
    k.Process();
}

}  // namespace

extern "C" __global__ __aicore__ void osum_copy_strided(GM_ADDR src, GM_ADDR dst,
                                                        CopyTiling tiling) {
    switch (tiling.elemBytes) {
        case 2: RunCopy<uint16_t>(src, dst, tiling); break;
        case 4: RunCopy<uint32_t>(src, dst, tiling); break;
        default: RunCopy<uint64_t>(src, dst, tiling); break;
    }
}
