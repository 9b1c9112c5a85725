// attention.cpp: flash-style attention forward: osum_flash_attention_f32, and the half-precision
// entries osum_flash_attention_f16 / osum_flash_attention_bf16 (one template over the element
// type T of Q, K, V; the mask and the output are f32 in all three).
//
// Per unit (batch b, query head h, query tile of blockQ rows) and per key block of blockK keys:
//   1. cube:   S = Q_tile . K_block^T (T operands, f32 accumulate in L0C) -> f32 GM workspace
//   2. vector: per row, in f32: scale, mask (ragged keys, causal), online softmax update
//              (m_new = max(m_old, rowmax); P = exp(S - m_new); l = l * exp(m_old - m_new) + sum P;
//              O *= exp(m_old - m_new)); P is cast to T (round to nearest even) for the cube
//              and written back (over S for f32, to its own region for half types)
//   3. vector: V_block^T staged into the workspace as T (the cube path reads Bt = V^T rows)
//   4. cube:   PV = P . V_block (T operands, f32 accumulate) -> f32 GM workspace
//   5. vector: O += PV (f32)
// and at the end O / l -> out (f32). Softmax statistics and O stay in f32 (ASCEND.md: fp16
// NaNs); with half inputs the only roundings beyond the inputs' own are P -> T and the f32
// accumulation order.
// GQA: query head h reads kv head h / (headsQ / headsKv).
//
// Simplifications of this first version (stated, not hidden): V^T is staged with scalar UB
// accesses (to be replaced by a transposing L1 -> L0B load); masks are applied with scalar
// SetValue (to be replaced by Compare/Select); cube and vector stages of a unit run in one
// block, where the NPU splits them over AIC and AIV with CrossCoreSetFlag/WaitFlag; key blocks
// of 64, not the 1024 of the tuned fp16 kernel; the output is f32 (no cast back to T).
#include <cmath>
#include <limits>
#include <type_traits>

#include "attention_mask.h"
#include "cube_tile.h"
#include "kernel_operator.h"
#include "tiling.h"

using namespace AscendC;

namespace {

// T: element type of Q, K, V and of the cube operands P and V^T (float, half, bfloat16_t).
template <typename T>
class FlashAttentionKernel {
    static constexpr bool kHalf = !std::is_same<T, float>::value;


   public:
    __aicore__ inline void Init(GM_ADDR q, GM_ADDR k, GM_ADDR v, GM_ADDR out, GM_ADDR ws,
                                GM_ADDR mask, const AttentionTiling &t) {
        t_ = t;
        if (t.hasMask) mGm_.SetGlobalBuffer((__gm__ float *)mask, t.maskElems);
        uint64_t qElems = uint64_t(t.batch) * t.headsQ * t.tq * t.d;
        uint64_t kvElems = uint64_t(t.batch) * t.headsKv * t.tk * t.d;
        qGm_.SetGlobalBuffer((__gm__ T *)q, qElems);
        kGm_.SetGlobalBuffer((__gm__ T *)k, kvElems);
        vGm_.SetGlobalBuffer((__gm__ T *)v, kvElems);
        oGm_.SetGlobalBuffer((__gm__ float *)out, qElems);
        __gm__ float *wsBlock = (__gm__ float *)ws + uint64_t(GetBlockIdx()) * t.wsPerBlock;
        wsGm_.SetGlobalBuffer(wsBlock, t.wsPerBlock);
        // Workspace of this block, offsets in floats: S [blockQ x blockK] f32, V^T [dPad x blockK]
        // T (in an f32-sized slot), PV [blockQ x dPad] f32, and for half types P [blockQ x
        // blockK] T after PV (f32: P overwrites S). Every region starts 32-byte aligned
        // (sizes are multiples of 16 elements).
        sOff_ = 0;
        uint64_t vtOff = uint64_t(t.blockQ) * t.blockK;
        pvOff_ = vtOff + uint64_t(t.dPad) * t.blockK;
        uint64_t pOff = kHalf ? pvOff_ + uint64_t(t.blockQ) * t.dPad : sOff_;
        vtGm_.SetGlobalBuffer((__gm__ T *)(wsBlock + vtOff), uint64_t(t.dPad) * t.blockK);
        pGm_.SetGlobalBuffer((__gm__ T *)(wsBlock + pOff), uint64_t(t.blockQ) * t.blockK);
        uint32_t cubeN = t.blockK > t.dPad ? t.blockK : t.dPad;
        uint32_t cubeK = t.dPad > t.blockK ? t.dPad : t.blockK;
        cube_.Init(pipe_, t.blockQ, cubeN, cubeK);
        pipe_.InitBuffer(oAcc_, t.blockQ * t.dPad * sizeof(float));
        pipe_.InitBuffer(stats_, 2 * t.blockQ * sizeof(float));
        pipe_.InitBuffer(row_, (t.blockK > t.dPad ? t.blockK : t.dPad) * sizeof(float));
        pipe_.InitBuffer(small_, 2 * 8 * sizeof(float));
        pipe_.InitBuffer(vTile_, t.blockK * t.dPad * sizeof(T));
        if (kHalf) pipe_.InitBuffer(pRow_, t.blockK * sizeof(T));
    }

    __aicore__ inline void Process() {
        uint32_t units = t_.batch * t_.headsQ * t_.tilesQ;
        for (uint32_t u = GetBlockIdx(); u < units; u += GetBlockNum()) {
            uint32_t qt = u % t_.tilesQ;
            uint32_t bh = u / t_.tilesQ;  // b * headsQ + h
            uint32_t b = bh / t_.headsQ, h = bh % t_.headsQ;
            uint32_t kvh = h / (t_.headsQ / t_.headsKv);
            Unit(bh, b * t_.headsKv + kvh, qt * t_.blockQ);
        }
    }

   private:
    __aicore__ inline void Unit(uint32_t bh, uint32_t bkv, uint32_t q0) {
        const float negInf = -std::numeric_limits<float>::infinity();
        uint32_t qRows = t_.tq - q0 < t_.blockQ ? t_.tq - q0 : t_.blockQ;
        uint64_t qBase = (uint64_t(bh) * t_.tq + q0) * t_.d;
        uint64_t kvBase = uint64_t(bkv) * t_.tk * t_.d;
        int64_t shift = int64_t(t_.tk) - int64_t(t_.tq);  // causal: key j <= i + shift
        uint32_t kEnd = t_.tk;
        if (t_.causal) {
            int64_t last = int64_t(q0 + qRows - 1) + shift + 1;
            // last <= 0: causal with Tq > Tk leaves the tile's rows no key (output 0).
            kEnd = last <= 0 ? 0 : (last < int64_t(t_.tk) ? static_cast<uint32_t>(last) : t_.tk);
        }
        LocalTensor<float> o = oAcc_.Get<float>();
        LocalTensor<float> st = stats_.Get<float>();  // [0, blockQ): m, [blockQ, 2 blockQ): l
        Duplicate(o, 0.0f, static_cast<int32_t>(t_.blockQ * t_.dPad));
        for (uint32_t r = 0; r < t_.blockQ; ++r) {
            st.SetValue(r, negInf);
            st.SetValue(t_.blockQ + r, 0.0f);
        }
        for (uint32_t j0 = 0; j0 < kEnd; j0 += t_.blockK) {
            uint32_t kRows = kEnd - j0 < t_.blockK ? kEnd - j0 : t_.blockK;
            // 1. S = Q . K^T (ldc = blockK).
            cube_.Run(qGm_[qBase], t_.d, kGm_[kvBase + uint64_t(j0) * t_.d], t_.d,
                      wsGm_[sOff_], t_.blockK, qRows, kRows, t_.d);
            PipeBarrier<PIPE_ALL>();
            // 2. Online softmax per row; P overwrites S.
            for (uint32_t r = 0; r < qRows; ++r) SoftmaxRow(bh, r, q0, j0, kRows, shift);
            // 3. V^T for this key block.
            StageVt(kvBase + uint64_t(j0) * t_.d, kRows);
            PipeBarrier<PIPE_ALL>();
            // 4. PV = P . (V^T)^T (ldc = dPad).
            cube_.Run(pGm_, t_.blockK, vtGm_, t_.blockK, wsGm_[pvOff_], t_.dPad, qRows, t_.d,
                      kRows);
            PipeBarrier<PIPE_ALL>();
            // 5. O += PV.
            LocalTensor<float> row = row_.Get<float>();
            for (uint32_t r = 0; r < qRows; ++r) {
                DataCopy(row, wsGm_[pvOff_ + uint64_t(r) * t_.dPad], t_.dPad);
                Add(o[r * t_.dPad], o[r * t_.dPad], row, static_cast<int32_t>(t_.dPad));
            }
        }
        // O / l -> out (ragged rows of d floats).
        for (uint32_t r = 0; r < qRows; ++r) {
            // A row whose every key is masked has l = 0 and O = 0: its output is 0, not NaN.
            float l = st.GetValue(t_.blockQ + r);
            Muls(o[r * t_.dPad], o[r * t_.dPad], l > 0.0f ? 1.0f / l : 0.0f,
                 static_cast<int32_t>(t_.dPad));
            DataCopyExtParams p{1, static_cast<uint32_t>(t_.d * sizeof(float)), 0, 0, 0};
            DataCopyPad(oGm_[qBase + uint64_t(r) * t_.d], o[r * t_.dPad], p);
        }
    }

    __aicore__ inline void SoftmaxRow(uint32_t bh, uint32_t r, uint32_t q0, uint32_t j0,
                                      uint32_t kRows, int64_t shift) {
        const float negInf = -std::numeric_limits<float>::infinity();
        int32_t bk = static_cast<int32_t>(t_.blockK);
        LocalTensor<float> s = row_.Get<float>();
        LocalTensor<float> sm = small_.Get<float>();  // [0, 8): result, [8, 16): scratch
        LocalTensor<float> st = stats_.Get<float>();
        DataCopy(s, wsGm_[sOff_ + uint64_t(r) * t_.blockK], t_.blockK);
        Muls(s, s, t_.scale, bk);
        if (t_.hasMask) AddMaskRow(mGm_, t_, s, bh, q0 + r, j0, kRows);
        int64_t limit = int64_t(q0 + r) + shift;  // last visible key (causal)
        for (uint32_t c = 0; c < t_.blockK; ++c) {
            bool masked = c >= kRows || (t_.causal && int64_t(j0 + c) > limit);
            if (masked) s.SetValue(c, negInf);
        }
        ReduceMax(sm, s, sm[8], bk);
        float mOld = st.GetValue(r);
        float rowMax = sm.GetValue(0);
        float mNew = rowMax > mOld ? rowMax : mOld;
        if (mNew == negInf) {
            // Every key so far is masked for this row: P = 0, statistics unchanged.
            Duplicate(s, 0.0f, bk);
        } else {
            Adds(s, s, -mNew, bk);
            Exp(s, s, bk);
            ReduceSum(sm, s, sm[8], bk);
            float rowSum = sm.GetValue(0);
            Duplicate(sm, mOld - mNew, 8);
            Exp(sm, sm, 8);
            float alpha = sm.GetValue(0);  // exp(m_old - m_new); 0 when m_old = -inf
            st.SetValue(r, mNew);
            st.SetValue(t_.blockQ + r, st.GetValue(t_.blockQ + r) * alpha + rowSum);
            LocalTensor<float> o = oAcc_.Get<float>();
            Muls(o[r * t_.dPad], o[r * t_.dPad], alpha, static_cast<int32_t>(t_.dPad));
        }
        if constexpr (kHalf) {
            // P -> T for the cube (blockK is a multiple of 16: whole 32-byte blocks of T).
            LocalTensor<T> p = pRow_.Get<T>();
            Cast(p, s, RoundMode::CAST_RINT, t_.blockK);
            PipeBarrier<PIPE_V>();
            DataCopy(pGm_[uint64_t(r) * t_.blockK], p, t_.blockK);
        } else {
            DataCopy(pGm_[uint64_t(r) * t_.blockK], s, t_.blockK);
        }
    }

    // V[j0 .. j0 + kRows) (rows of d floats, contiguous in GM) -> V^T [d x blockK] in the
    // workspace; columns kRows.. are zero so P's zero columns meet zeros.
    __aicore__ inline void StageVt(uint64_t vOff, uint32_t kRows) {
        LocalTensor<T> tile = vTile_.Get<T>();
        DataCopyExtParams in{1, static_cast<uint32_t>(kRows * t_.d * sizeof(T)), 0, 0, 0};
        DataCopyPadExtParams<T> pad{false, 0, 0, T(0.0f)};
        DataCopyPad(tile, vGm_[vOff], in, pad);
        PipeBarrier<PIPE_ALL>();
        LocalTensor<T> row = row_.Get<T>();
        for (uint32_t c = 0; c < t_.d; ++c) {
            Duplicate(row, T(0.0f), static_cast<int32_t>(t_.blockK));
            for (uint32_t r = 0; r < kRows; ++r) row.SetValue(r, tile.GetValue(r * t_.d + c));
            DataCopy(vtGm_[uint64_t(c) * t_.blockK], row, t_.blockK);
        }
    }

    TPipe pipe_;
    osum::CubeTileOf<T> cube_;
    TBuf<TPosition::VECCALC> oAcc_, stats_, row_, small_, vTile_, pRow_;
    GlobalTensor<T> qGm_, kGm_, vGm_, vtGm_, pGm_;
    GlobalTensor<float> oGm_, wsGm_, mGm_;
    AttentionTiling t_{};
    uint64_t sOff_ = 0, pvOff_ = 0;
};

template <typename T>
__aicore__ inline void RunFlashAttention(GM_ADDR q, GM_ADDR k, GM_ADDR v, GM_ADDR out,
                                         GM_ADDR workspace, GM_ADDR mask,
                                         const AttentionTiling &tiling) {
    FlashAttentionKernel<T> kernel;
    kernel.Init(q, k, v, out, workspace, mask, tiling);
    kernel.Process();
}

}  // namespace

extern "C" __global__ __aicore__ void osum_flash_attention_f32(GM_ADDR q, GM_ADDR k, GM_ADDR v,
                                                               GM_ADDR out, GM_ADDR workspace,
                                                               GM_ADDR mask,
                                                               AttentionTiling tiling) {
    RunFlashAttention<float>(q, k, v, out, workspace, mask, tiling);
}

// Q, K, V in IEEE fp16; workspace as attention_workspace_len gives for half inputs.
extern "C" __global__ __aicore__ void osum_flash_attention_f16(GM_ADDR q, GM_ADDR k, GM_ADDR v,
                                                               GM_ADDR out, GM_ADDR workspace,
                                                               GM_ADDR mask,
                                                               AttentionTiling tiling) {
    RunFlashAttention<half>(q, k, v, out, workspace, mask, tiling);
}

// Q, K, V in bf16; workspace as attention_workspace_len gives for half inputs.
extern "C" __global__ __aicore__ void osum_flash_attention_bf16(GM_ADDR q, GM_ADDR k, GM_ADDR v,
                                                                GM_ADDR out, GM_ADDR workspace,
                                                                GM_ADDR mask,
                                                                AttentionTiling tiling) {
    RunFlashAttention<bfloat16_t>(q, k, v, out, workspace, mask, tiling);
}
