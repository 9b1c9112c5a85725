// rope.cpp: rotary position embedding, f32 (vector cores), osum_rope_f32.
//
// Row r of x [rows, D] (D = 2 * half) sits at position r % t and is rotated pairwise with
// cos/sin row (r % t) of the [t, half] tables: (a, b) -> (a cos - b sin, b cos + a sin).
// Rotate-half pairs (i, i + half): the two halves are copied into separate 32-byte aligned UB
// segments (DataCopyPad at GM offsets 0 and half), so the math is four Mul and an Add/Sub over
// halfPad lanes. Interleaved pairs (2i, 2i + 1): the row is copied whole and split into even and
// odd lanes with scalar UB accesses, then the same vector math, then re-interleaved.
// Simplification (stated): the NPU kernel would split lanes with GatherMask instead of scalar
// GetValue/SetValue; the simulator does not implement GatherMask yet.
#include "kernel_operator.h"
#include "tiling_nn.h"

using namespace AscendC;

namespace {

class RopeKernel {
   public:
    __aicore__ inline void Init(GM_ADDR x, GM_ADDR cos, GM_ADDR sin, GM_ADDR y,
                                const RopeTiling &t) {
        t_ = t;
        uint64_t n = uint64_t(t.rows) * 2 * t.half;
        xGm_.SetGlobalBuffer((__gm__ float *)x, n);
        yGm_.SetGlobalBuffer((__gm__ float *)y, n);
        cGm_.SetGlobalBuffer((__gm__ float *)cos, uint64_t(t.t) * t.half);
        sGm_.SetGlobalBuffer((__gm__ float *)sin, uint64_t(t.t) * t.half);
        // VECIN buffer: [x1 | x2 | cos | sin] segments of halfPad; interleaved rows also need
        // the whole row (2 * halfPad) as staging, which reuses the out segments.
        pipe_.InitBuffer(in_, 2, 4 * t.halfPad * sizeof(float));
        pipe_.InitBuffer(out_, 2, 2 * t.halfPad * sizeof(float));
        pipe_.InitBuffer(tmp_, t.halfPad * sizeof(float));
    }

    __aicore__ inline void Process() {
        for (uint32_t r = GetBlockIdx(); r < t_.rows; r += GetBlockNum()) Row(r);
    }

   private:
    __aicore__ inline void Row(uint32_t r) {
        const uint32_t h = t_.half, hp = t_.halfPad;
        uint64_t xOff = uint64_t(r) * 2 * h;
        uint64_t tOff = uint64_t(r % t_.t) * h;
        LocalTensor<float> in = in_.AllocTensor<float>();
        LocalTensor<float> x1 = in, x2 = in[hp], c = in[2 * hp], s = in[3 * hp];
        DataCopyPadExtParams<float> pad{true, 0, 0, 0.0f};
        DataCopyExtParams half{1, static_cast<uint32_t>(h * sizeof(float)), 0, 0, 0};
        if (t_.interleaved) {
            // Whole row into [x1 | x2] (2h contiguous floats fit 2 * halfPad), then split.
            DataCopyExtParams row{1, static_cast<uint32_t>(2 * h * sizeof(float)), 0, 0, 0};
            LocalTensor<float> stage = tmp_.Get<float>();
            DataCopyPad(in, xGm_[xOff], row, pad);
            for (uint32_t i = 0; i < h; ++i) stage.SetValue(i, in.GetValue(2 * i + 1));
            for (uint32_t i = 0; i < h; ++i) x1.SetValue(i, in.GetValue(2 * i));
            for (uint32_t i = 0; i < h; ++i) x2.SetValue(i, stage.GetValue(i));
        } else {
            DataCopyPad(x1, xGm_[xOff], half, pad);
            DataCopyPad(x2, xGm_[xOff + h], half, pad);
        }
        DataCopyPad(c, cGm_[tOff], half, pad);
        DataCopyPad(s, sGm_[tOff], half, pad);
        in_.EnQue(in);

        in = in_.DeQue<float>();
        x1 = in;
        x2 = in[hp];
        c = in[2 * hp];
        s = in[3 * hp];
        LocalTensor<float> out = out_.AllocTensor<float>();
        LocalTensor<float> y1 = out, y2 = out[hp], tmp = tmp_.Get<float>();
        int32_t n = static_cast<int32_t>(hp);
        Mul(y1, x1, c, n);  // y1 = x1 cos - x2 sin
        Mul(tmp, x2, s, n);
        Sub(y1, y1, tmp, n);
        Mul(y2, x2, c, n);  // y2 = x2 cos + x1 sin
        Mul(tmp, x1, s, n);
        Add(y2, y2, tmp, n);
        in_.FreeTensor(in);
        out_.EnQue(out);

        out = out_.DeQue<float>();
        if (t_.interleaved) {
            LocalTensor<float> stage = in_.AllocTensor<float>();  // 4 * halfPad >= 2h
            for (uint32_t i = 0; i < h; ++i) {
                stage.SetValue(2 * i, out.GetValue(i));
                stage.SetValue(2 * i + 1, out.GetValue(hp + i));
            }
            DataCopyExtParams row{1, static_cast<uint32_t>(2 * h * sizeof(float)), 0, 0, 0};
            DataCopyPad(yGm_[xOff], stage, row);
            in_.FreeTensor(stage);
        } else {
            DataCopyPad(yGm_[xOff], out, half);
            DataCopyPad(yGm_[xOff + h], out[hp], half);
        }
        out_.FreeTensor(out);
    }

    TPipe pipe_;
    TQue<TPosition::VECIN, 2> in_;
    TQue<TPosition::VECOUT, 2> out_;
    TBuf<TPosition::VECCALC> tmp_;
    GlobalTensor<float> xGm_, cGm_, sGm_, yGm_;
    RopeTiling t_{};
};

}  // namespace

extern "C" __global__ __aicore__ void osum_rope_f32(GM_ADDR x, GM_ADDR cos, GM_ADDR sin, GM_ADDR y,
                                                    RopeTiling tiling) {
    RopeKernel k;
    k.Init(x, cos, sin, y, tiling);
    k.Process();
}
