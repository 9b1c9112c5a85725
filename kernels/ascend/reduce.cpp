// reduce.cpp: sum / max / min / argmax over one dimension, f32 in (vector cores),
// osum_reduce_f32. The tensor is seen as [outer, n, inner] and reduced over n.
//
// inner == 1 (the reduced dim is the last): a unit is one row of n contiguous floats, walked in
// UB chunks; each chunk is reduced with ReduceSum / ReduceMax (min as -max(-x)), padded tails
// filled with the op's identity so they never win. inner > 1: a unit is one (outer, chunk of
// inner columns); the n slices x[o, k, chunk] stream through a double-buffered queue and are
// folded into an accumulator with Add / Max / Min. Sums accumulate in f32.
// Argmax (u32 out, first maximum wins as on the CPU) tracks the index with scalar UB reads.
// Simplifications (stated): the NPU kernel would use ReduceMax with calIndex / Compare+Select
// (not in the simulator yet); the inner == 1 path stores one scalar per row to GM, where the NPU
// kernel would gather a block's row results in UB and write them with one DataCopyPad.
#include <limits>

#include "kernel_operator.h"
#include "tiling_nn.h"

using namespace AscendC;

namespace {

enum : uint32_t { kSum = 0, kMax = 1, kMin = 2, kArgmax = 3 };

class ReduceKernel {
   public:
    __aicore__ inline void Init(GM_ADDR x, GM_ADDR y, const ReduceTiling &t) {
        t_ = t;
        uint64_t outElems = uint64_t(t.outer) * t.inner;
        xGm_.SetGlobalBuffer((__gm__ float *)x, outElems * t.n);
        if (t.op == kArgmax)
            iGm_.SetGlobalBuffer((__gm__ uint32_t *)y, outElems);
        else
            yGm_.SetGlobalBuffer((__gm__ float *)y, outElems);
        uint32_t bytes = t.chunkLen * sizeof(float);
        pipe_.InitBuffer(in_, 2, bytes);
        pipe_.InitBuffer(out_, 2, bytes);
        pipe_.InitBuffer(acc_, bytes);
        pipe_.InitBuffer(scratch_, 16 * sizeof(float));
    }

    __aicore__ inline void Process() {
        if (t_.inner == 1) {
            for (uint32_t o = GetBlockIdx(); o < t_.outer; o += GetBlockNum()) Row(o);
        } else {
            uint32_t units = t_.outer * t_.innerChunks;
            for (uint32_t u = GetBlockIdx(); u < units; u += GetBlockNum())
                Columns(u / t_.innerChunks, (u % t_.innerChunks) * t_.chunkLen);
        }
    }

   private:
    __aicore__ inline float Identity() const {
        const float inf = std::numeric_limits<float>::infinity();
        return t_.op == kSum ? 0.0f : (t_.op == kMin ? inf : -inf);
    }

    // Reduce row o (n contiguous floats) to one value.
    __aicore__ inline void Row(uint32_t o) {
        LocalTensor<float> sc = scratch_.Get<float>();  // [0, 8): result, [8, 16): work
        uint64_t base = uint64_t(o) * t_.n;
        float acc = Identity();
        uint32_t best = 0;
        for (uint32_t c0 = 0; c0 < t_.n; c0 += t_.chunkLen) {
            uint32_t len = Load(xGm_[base + c0], t_.n - c0);
            LocalTensor<float> x = in_.DeQue<float>();
            int32_t p = Padded(len);
            if (t_.op == kSum) {
                ReduceSum(sc, x, sc[8], p);
                acc += sc.GetValue(0);
            } else if (t_.op == kMax) {
                ReduceMax(sc, x, sc[8], p);
                float m = sc.GetValue(0);
                acc = m > acc ? m : acc;
            } else if (t_.op == kMin) {
                Muls(x, x, -1.0f, p);
                ReduceMax(sc, x, sc[8], p);
                float m = -sc.GetValue(0);
                acc = m < acc ? m : acc;
            } else {
                for (uint32_t i = 0; i < len; ++i) {
                    float v = x.GetValue(i);
                    if ((c0 == 0 && i == 0) || v > acc) {
                        acc = v;
                        best = c0 + i;
                    }
                }
            }
            in_.FreeTensor(x);
        }
        if (t_.op == kArgmax)
            iGm_.SetValue(o, best);
        else
            yGm_.SetValue(o, acc);
    }

    // Reduce columns [c0, c0 + len) of outer slab o over the n slices.
    __aicore__ inline void Columns(uint32_t o, uint32_t c0) {
        uint32_t len = t_.inner - c0 < t_.chunkLen ? t_.inner - c0 : t_.chunkLen;
        int32_t p = Padded(len);
        LocalTensor<float> acc = acc_.Get<float>();
        LocalTensor<float> y = out_.AllocTensor<float>();  // argmax: indices as u32
        LocalTensor<uint32_t> idx = y.ReinterpretCast<uint32_t>();
        Duplicate(acc, Identity(), p);
        for (uint32_t k = 0; k < t_.n; ++k) {
            Load(xGm_[(uint64_t(o) * t_.n + k) * t_.inner + c0], len);
            LocalTensor<float> x = in_.DeQue<float>();
            if (t_.op == kSum) {
                Add(acc, acc, x, p);
            } else if (t_.op == kMax) {
                Max(acc, acc, x, p);
            } else if (t_.op == kMin) {
                Min(acc, acc, x, p);
            } else {
                for (uint32_t i = 0; i < len; ++i) {
                    float v = x.GetValue(i);
                    if (k == 0 || v > acc.GetValue(i)) {
                        acc.SetValue(i, v);
                        idx.SetValue(i, k);
                    }
                }
            }
            in_.FreeTensor(x);
        }
        if (t_.op != kArgmax) DataCopy(y, acc, static_cast<uint32_t>(p));
        out_.EnQue(y);
        y = out_.DeQue<float>();
        uint64_t dst = uint64_t(o) * t_.inner + c0;
        DataCopyExtParams cp{1, static_cast<uint32_t>(len * sizeof(float)), 0, 0, 0};
        if (t_.op == kArgmax)
            DataCopyPad(iGm_[dst], y.ReinterpretCast<uint32_t>(), cp);
        else
            DataCopyPad(yGm_[dst], y, cp);
        out_.FreeTensor(y);
    }

    // Copy `len` floats (<= chunkLen) into a VECIN buffer, tail padded with the identity.
    __aicore__ inline uint32_t Load(const GlobalTensor<float> &src, uint32_t remaining) {
        uint32_t len = remaining < t_.chunkLen ? remaining : t_.chunkLen;
        LocalTensor<float> x = in_.AllocTensor<float>();
        DataCopyExtParams p{1, static_cast<uint32_t>(len * sizeof(float)), 0, 0, 0};
        DataCopyPadExtParams<float> pad{true, 0, 0, Identity()};
        DataCopyPad(x, src, p, pad);
        in_.EnQue(x);
        return len;
    }

    static __aicore__ inline int32_t Padded(uint32_t n) { return static_cast<int32_t>((n + 7) / 8 * 8); }

    TPipe pipe_;
    TQue<TPosition::VECIN, 2> in_;
    TQue<TPosition::VECOUT, 2> out_;
    TBuf<TPosition::VECCALC> acc_, scratch_;
    GlobalTensor<float> xGm_, yGm_;
    GlobalTensor<uint32_t> iGm_;
    ReduceTiling t_{};
};

}  // namespace

extern "C" __global__ __aicore__ void osum_reduce_f32(GM_ADDR x, GM_ADDR y, ReduceTiling tiling) {
    ReduceKernel k;
    k.Init(x, y, tiling);
    k.Process();
}
