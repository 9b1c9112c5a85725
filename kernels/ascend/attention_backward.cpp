// attention_backward.cpp: flash-style attention backward with recomputation, f32
// (osum_flash_attention_bwd_f32). Gradients of out = softmax(scale · Q Kᵀ) V:
//   P = softmax rows (recomputed from Q, K and the row statistics m, l),
//   dV = Pᵀ dO,  dP = dO Vᵀ,  δ_i = Σ_j P_ij dP_ij (= dO_i · O_i),
//   dS = P ∘ (dP − δ),  dQ = scale · dS K,  dK = scale · dSᵀ Q.
// One unit of work = (batch b, kv head g): it owns dK/dV of that kv head and dQ of the query
// heads that read it (GQA), so no two blocks ever write one element. Per query head and query
// tile of blockQ rows, three passes over the key blocks (blockK keys, causal blocks skipped):
//   A: S = Q Kᵀ (cube) -> online row max m and sum l (vector);
//   B: S and dP = dO Vᵀ (cube) -> P, δ += rowsum(P ∘ dP) (vector);
//   C: S, dP again -> P and scale · dS (vector); the transposed operands the cube needs (Kᵀ,
//      Qᵀ, dOᵀ, Pᵀ, dSᵀ) are staged into the workspace; cube products dS K, dSᵀ Q, Pᵀ dO; the
//      vector cores add them into dQ (UB accumulator) and dK / dV (GM, read-modify-write).
// dK and dV must be zero on entry. Statistics stay in f32.
// Simplifications (stated, as in attention.cpp): f32 operands on the cube; transposes and masks
// with scalar UB accesses (the NPU would use transposing loads and Compare/Select); cube and
// vector stages in one block (the NPU splits them over AIC/AIV with cross-core flags). An
// optional additive mask is added to the scaled scores (attention_mask.h); a row whose every key
// is masked has P = 0 and so zero gradients.
#include <cmath>
#include <limits>

#include "attention_mask.h"
#include "cube_tile.h"
#include "kernel_operator.h"
#include "tiling.h"

using namespace AscendC;

namespace {

class FlashAttentionBackwardKernel {
   public:
    __aicore__ inline void Init(GM_ADDR q, GM_ADDR k, GM_ADDR v, GM_ADDR dout, GM_ADDR dq,
                                GM_ADDR dk, GM_ADDR dv, GM_ADDR ws, GM_ADDR mask,
                                const AttentionTiling &t) {
        t_ = t;
        if (t.hasMask) mGm_.SetGlobalBuffer((__gm__ float *)mask, t.maskElems);
        uint64_t qElems = uint64_t(t.batch) * t.headsQ * t.tq * t.d;
        uint64_t kvElems = uint64_t(t.batch) * t.headsKv * t.tk * t.d;
        qGm_.SetGlobalBuffer((__gm__ float *)q, qElems);
        doGm_.SetGlobalBuffer((__gm__ float *)dout, qElems);
        dqGm_.SetGlobalBuffer((__gm__ float *)dq, qElems);
        kGm_.SetGlobalBuffer((__gm__ float *)k, kvElems);
        vGm_.SetGlobalBuffer((__gm__ float *)v, kvElems);
        dkGm_.SetGlobalBuffer((__gm__ float *)dk, kvElems);
        dvGm_.SetGlobalBuffer((__gm__ float *)dv, kvElems);
        wsGm_.SetGlobalBuffer((__gm__ float *)ws + uint64_t(GetBlockIdx()) * t.wsPerBlock,
                              t.wsPerBlock);
        const uint64_t bq = t.blockQ, bk = t.blockK, dp = t.dPad;
        // Workspace of this block (floats): S/P, dP/dS [bq x bk]; Kᵀ [dp x bk]; Qᵀ, dOᵀ [dp x bq];
        // Pᵀ, dSᵀ [bk x bq]; product [max(bq, bk) x dp].
        sOff_ = 0;
        dpOff_ = sOff_ + bq * bk;
        ktOff_ = dpOff_ + bq * bk;
        qtOff_ = ktOff_ + dp * bk;
        dotOff_ = qtOff_ + dp * bq;
        ptOff_ = dotOff_ + dp * bq;
        dstOff_ = ptOff_ + bk * bq;
        prodOff_ = dstOff_ + bk * bq;
        uint32_t mn = bq > bk ? t.blockQ : t.blockK;
        uint32_t wide = t.blockK > t.dPad ? t.blockK : t.dPad;
        cube_.Init(pipe_, mn, wide, 64);
        pipe_.InitBuffer(dqAcc_, t.blockQ * t.dPad * sizeof(float));
        pipe_.InitBuffer(stats_, 3 * t.blockQ * sizeof(float));  // m, l, δ
        pipe_.InitBuffer(rowA_, wide * sizeof(float));
        pipe_.InitBuffer(rowB_, wide * sizeof(float));
        pipe_.InitBuffer(small_, 16 * sizeof(float));
        // Transpose staging: a tile of up to 64 x 128 floats in, its transpose out.
        uint32_t tileFloats = mn * wide;
        pipe_.InitBuffer(tIn_, tileFloats * sizeof(float));
        pipe_.InitBuffer(tOut_, tileFloats * sizeof(float));
    }

    __aicore__ inline void Process() {
        uint32_t units = t_.batch * t_.headsKv;
        uint32_t group = t_.headsQ / t_.headsKv;
        for (uint32_t u = GetBlockIdx(); u < units; u += GetBlockNum()) {
            uint32_t b = u / t_.headsKv, g = u % t_.headsKv;
            uint64_t kvBase = uint64_t(u) * t_.tk * t_.d;
            for (uint32_t h = g * group; h < (g + 1) * group; ++h)
                for (uint32_t qt = 0; qt < t_.tilesQ; ++qt)
                    QueryTile(b * t_.headsQ + h, kvBase, qt * t_.blockQ);
        }
    }

   private:
    static constexpr float kNegInf = -std::numeric_limits<float>::infinity();

    __aicore__ inline void QueryTile(uint32_t bh, uint64_t kvBase, uint32_t q0) {
        uint32_t qRows = t_.tq - q0 < t_.blockQ ? t_.tq - q0 : t_.blockQ;
        uint64_t qBase = (uint64_t(bh) * t_.tq + q0) * t_.d;
        int64_t shift = int64_t(t_.tk) - int64_t(t_.tq);
        uint32_t kEnd = t_.tk;
        if (t_.causal) {
            int64_t last = int64_t(q0 + qRows - 1) + shift + 1;
            // last <= 0: causal with Tq > Tk leaves the tile's rows no key (output 0).
            kEnd = last <= 0 ? 0 : (last < int64_t(t_.tk) ? static_cast<uint32_t>(last) : t_.tk);
        }
        LocalTensor<float> st = stats_.Get<float>();
        for (uint32_t r = 0; r < t_.blockQ; ++r) {
            st.SetValue(r, kNegInf);
            st.SetValue(t_.blockQ + r, 0.0f);
            st.SetValue(2 * t_.blockQ + r, 0.0f);
        }
        // Pass A: row statistics.
        for (uint32_t j0 = 0; j0 < kEnd; j0 += t_.blockK) {
            uint32_t kRows = kEnd - j0 < t_.blockK ? kEnd - j0 : t_.blockK;
            Scores(qBase, kvBase + uint64_t(j0) * t_.d, qRows, kRows);
            for (uint32_t r = 0; r < qRows; ++r) StatsRow(bh, r, q0, j0, kRows, shift);
        }
        // Pass B: δ.
        for (uint32_t j0 = 0; j0 < kEnd; j0 += t_.blockK) {
            uint32_t kRows = kEnd - j0 < t_.blockK ? kEnd - j0 : t_.blockK;
            uint64_t kvOff = kvBase + uint64_t(j0) * t_.d;
            Scores(qBase, kvOff, qRows, kRows);
            OutGradScores(qBase, kvOff, qRows, kRows);
            for (uint32_t r = 0; r < qRows; ++r) DeltaRow(bh, r, q0, j0, kRows, shift);
        }
        // Pass C: gradients.
        LocalTensor<float> dq = dqAcc_.Get<float>();
        Duplicate(dq, 0.0f, static_cast<int32_t>(t_.blockQ * t_.dPad));
        Transpose(qGm_[qBase], qRows, t_.d, t_.d, qtOff_, t_.blockQ);
        Transpose(doGm_[qBase], qRows, t_.d, t_.d, dotOff_, t_.blockQ);
        for (uint32_t j0 = 0; j0 < kEnd; j0 += t_.blockK) {
            uint32_t kRows = kEnd - j0 < t_.blockK ? kEnd - j0 : t_.blockK;
            uint64_t kvOff = kvBase + uint64_t(j0) * t_.d;
            Scores(qBase, kvOff, qRows, kRows);
            OutGradScores(qBase, kvOff, qRows, kRows);
            for (uint32_t r = 0; r < qRows; ++r) GradRow(bh, r, q0, j0, kRows, shift);
            PipeBarrier<PIPE_ALL>();
            Transpose(kGm_[kvOff], kRows, t_.d, t_.d, ktOff_, t_.blockK);
            Transpose(wsGm_[sOff_], qRows, kRows, t_.blockK, ptOff_, t_.blockQ);
            Transpose(wsGm_[dpOff_], qRows, kRows, t_.blockK, dstOff_, t_.blockQ);
            PipeBarrier<PIPE_ALL>();
            // dQ += dS K  (A = dS [qRows x kRows], Bt = Kᵀ [d x kRows]).
            cube_.Run(wsGm_[dpOff_], t_.blockK, wsGm_[ktOff_], t_.blockK, wsGm_[prodOff_],
                      t_.dPad, qRows, t_.d, kRows);
            PipeBarrier<PIPE_ALL>();
            LocalTensor<float> row = rowA_.Get<float>();
            for (uint32_t r = 0; r < qRows; ++r) {
                DataCopy(row, wsGm_[prodOff_ + uint64_t(r) * t_.dPad], t_.dPad);
                Add(dq[r * t_.dPad], dq[r * t_.dPad], row, static_cast<int32_t>(t_.dPad));
            }
            // dK += dSᵀ Q  (A = dSᵀ [kRows x qRows], Bt = Qᵀ [d x qRows]).
            cube_.Run(wsGm_[dstOff_], t_.blockQ, wsGm_[qtOff_], t_.blockQ, wsGm_[prodOff_],
                      t_.dPad, kRows, t_.d, qRows);
            PipeBarrier<PIPE_ALL>();
            AccumulateRows(dkGm_[kvOff], kRows);
            // dV += Pᵀ dO  (A = Pᵀ [kRows x qRows], Bt = dOᵀ [d x qRows]).
            cube_.Run(wsGm_[ptOff_], t_.blockQ, wsGm_[dotOff_], t_.blockQ, wsGm_[prodOff_],
                      t_.dPad, kRows, t_.d, qRows);
            PipeBarrier<PIPE_ALL>();
            AccumulateRows(dvGm_[kvOff], kRows);
        }
        DataCopyExtParams p{1, static_cast<uint32_t>(t_.d * sizeof(float)), 0, 0, 0};
        for (uint32_t r = 0; r < qRows; ++r) DataCopyPad(dqGm_[qBase + uint64_t(r) * t_.d], dq[r * t_.dPad], p);
        PipeBarrier<PIPE_ALL>();
    }

    // S = Q_tile K_blockᵀ -> workspace S (ldc blockK).
    __aicore__ inline void Scores(uint64_t qBase, uint64_t kOff, uint32_t qRows, uint32_t kRows) {
        cube_.Run(qGm_[qBase], t_.d, kGm_[kOff], t_.d, wsGm_[sOff_], t_.blockK, qRows, kRows, t_.d);
        PipeBarrier<PIPE_ALL>();
    }

    // dP = dO_tile V_blockᵀ -> workspace dP (ldc blockK).
    __aicore__ inline void OutGradScores(uint64_t qBase, uint64_t vOff, uint32_t qRows,
                                         uint32_t kRows) {
        cube_.Run(doGm_[qBase], t_.d, vGm_[vOff], t_.d, wsGm_[dpOff_], t_.blockK, qRows, kRows,
                  t_.d);
        PipeBarrier<PIPE_ALL>();
    }

    // Row r of S scaled and masked (ragged keys, causal) into rowA.
    __aicore__ inline LocalTensor<float> MaskedScores(uint32_t bh, uint32_t r, uint32_t q0,
                                                      uint32_t j0, uint32_t kRows, int64_t shift) {
        LocalTensor<float> s = rowA_.Get<float>();
        DataCopy(s, wsGm_[sOff_ + uint64_t(r) * t_.blockK], t_.blockK);
        Muls(s, s, t_.scale, static_cast<int32_t>(t_.blockK));
        if (t_.hasMask) AddMaskRow(mGm_, t_, s, bh, q0 + r, j0, kRows);
        int64_t limit = int64_t(q0 + r) + shift;
        for (uint32_t c = 0; c < t_.blockK; ++c)
            if (c >= kRows || (t_.causal && int64_t(j0 + c) > limit)) s.SetValue(c, kNegInf);
        return s;
    }

    __aicore__ inline void StatsRow(uint32_t bh, uint32_t r, uint32_t q0, uint32_t j0,
                                    uint32_t kRows, int64_t shift) {
        int32_t bk = static_cast<int32_t>(t_.blockK);
        LocalTensor<float> s = MaskedScores(bh, r, q0, j0, kRows, shift);
        LocalTensor<float> sm = small_.Get<float>();
        LocalTensor<float> st = stats_.Get<float>();
        ReduceMax(sm, s, sm[8], bk);
        float mOld = st.GetValue(r), rowMax = sm.GetValue(0);
        float mNew = rowMax > mOld ? rowMax : mOld;
        if (mNew == kNegInf) return;  // every key so far masked
        Adds(s, s, -mNew, bk);
        Exp(s, s, bk);
        ReduceSum(sm, s, sm[8], bk);
        float rowSum = sm.GetValue(0);
        Duplicate(sm, mOld - mNew, 8);
        Exp(sm, sm, 8);
        st.SetValue(r, mNew);
        st.SetValue(t_.blockQ + r, st.GetValue(t_.blockQ + r) * sm.GetValue(0) + rowSum);
    }

    // P row r (in rowA): exp(scale s - m) / l, masked entries 0.
    __aicore__ inline LocalTensor<float> ProbRow(uint32_t bh, uint32_t r, uint32_t q0, uint32_t j0,
                                                 uint32_t kRows, int64_t shift) {
        int32_t bk = static_cast<int32_t>(t_.blockK);
        LocalTensor<float> s = MaskedScores(bh, r, q0, j0, kRows, shift);
        LocalTensor<float> st = stats_.Get<float>();
        float m = st.GetValue(r), l = st.GetValue(t_.blockQ + r);
        if (m == kNegInf) {
            Duplicate(s, 0.0f, bk);
            return s;
        }
        Adds(s, s, -m, bk);
        Exp(s, s, bk);
        Muls(s, s, 1.0f / l, bk);
        return s;
    }

    __aicore__ inline void DeltaRow(uint32_t bh, uint32_t r, uint32_t q0, uint32_t j0,
                                    uint32_t kRows, int64_t shift) {
        int32_t bk = static_cast<int32_t>(t_.blockK);
        LocalTensor<float> p = ProbRow(bh, r, q0, j0, kRows, shift);
        LocalTensor<float> dp = rowB_.Get<float>();
        LocalTensor<float> sm = small_.Get<float>();
        DataCopy(dp, wsGm_[dpOff_ + uint64_t(r) * t_.blockK], t_.blockK);
        for (uint32_t c = kRows; c < t_.blockK; ++c) dp.SetValue(c, 0.0f);  // unused columns
        Mul(dp, dp, p, bk);
        ReduceSum(sm, dp, sm[8], bk);
        LocalTensor<float> st = stats_.Get<float>();
        st.SetValue(2 * t_.blockQ + r, st.GetValue(2 * t_.blockQ + r) + sm.GetValue(0));
    }

    // P -> workspace S row, scale · P ∘ (dP − δ) -> workspace dP row.
    __aicore__ inline void GradRow(uint32_t bh, uint32_t r, uint32_t q0, uint32_t j0,
                                   uint32_t kRows, int64_t shift) {
        int32_t bk = static_cast<int32_t>(t_.blockK);
        LocalTensor<float> p = ProbRow(bh, r, q0, j0, kRows, shift);
        LocalTensor<float> dp = rowB_.Get<float>();
        LocalTensor<float> st = stats_.Get<float>();
        DataCopy(dp, wsGm_[dpOff_ + uint64_t(r) * t_.blockK], t_.blockK);
        for (uint32_t c = kRows; c < t_.blockK; ++c) dp.SetValue(c, 0.0f);
        Adds(dp, dp, -st.GetValue(2 * t_.blockQ + r), bk);
        Mul(dp, dp, p, bk);
        Muls(dp, dp, t_.scale, bk);
        DataCopy(wsGm_[sOff_ + uint64_t(r) * t_.blockK], p, t_.blockK);
        DataCopy(wsGm_[dpOff_ + uint64_t(r) * t_.blockK], dp, t_.blockK);
    }

    // src [rows x cols] (row stride lds) -> workspace at dstOff as [cols x ldd], columns
    // rows..ldd zero.
    __aicore__ inline void Transpose(const GlobalTensor<float> &src, uint32_t rows, uint32_t cols,
                                     uint32_t lds, uint64_t dstOff, uint32_t ldd) {
        LocalTensor<float> in = tIn_.Get<float>();
        LocalTensor<float> out = tOut_.Get<float>();
        uint32_t colsPad = (cols + 7) / 8 * 8;
        DataCopyExtParams p{1, static_cast<uint32_t>(cols * sizeof(float)), 0, 0, 0};
        DataCopyPadExtParams<float> pad{false, 0, 0, 0.0f};
        for (uint32_t r = 0; r < rows; ++r) DataCopyPad(in[r * colsPad], src[uint64_t(r) * lds], p, pad);
        PipeBarrier<PIPE_ALL>();
        Duplicate(out, 0.0f, static_cast<int32_t>(cols * ldd));
        for (uint32_t r = 0; r < rows; ++r)
            for (uint32_t c = 0; c < cols; ++c) out.SetValue(c * ldd + r, in.GetValue(r * colsPad + c));
        PipeBarrier<PIPE_ALL>();
        DataCopy(wsGm_[dstOff], out, cols * ldd);
        PipeBarrier<PIPE_ALL>();
    }

    // dst rows [0, rows) (row stride d) += workspace product rows (stride dPad).
    __aicore__ inline void AccumulateRows(const GlobalTensor<float> &dst, uint32_t rows) {
        LocalTensor<float> a = rowA_.Get<float>();
        LocalTensor<float> b = rowB_.Get<float>();
        DataCopyExtParams p{1, static_cast<uint32_t>(t_.d * sizeof(float)), 0, 0, 0};
        DataCopyPadExtParams<float> pad{true, 0, 0, 0.0f};
        for (uint32_t r = 0; r < rows; ++r) {
            DataCopy(a, wsGm_[prodOff_ + uint64_t(r) * t_.dPad], t_.dPad);
            DataCopyPad(b, dst[uint64_t(r) * t_.d], p, pad);
            PipeBarrier<PIPE_ALL>();
            Add(b, b, a, static_cast<int32_t>(t_.dPad));
            DataCopyPad(dst[uint64_t(r) * t_.d], b, p);
            PipeBarrier<PIPE_ALL>();
        }
    }

    TPipe pipe_;
    osum::CubeTile cube_;
    TBuf<TPosition::VECCALC> dqAcc_, stats_, rowA_, rowB_, small_, tIn_, tOut_;
    GlobalTensor<float> qGm_, kGm_, vGm_, doGm_, dqGm_, dkGm_, dvGm_, wsGm_, mGm_;
    AttentionTiling t_{};
    uint64_t sOff_ = 0, dpOff_ = 0, ktOff_ = 0, qtOff_ = 0, dotOff_ = 0, ptOff_ = 0, dstOff_ = 0,
             prodOff_ = 0;
};

}  // namespace

extern "C" __global__ __aicore__ void osum_flash_attention_bwd_f32(GM_ADDR q, GM_ADDR k, GM_ADDR v,
                                                                   GM_ADDR dout, GM_ADDR dq,
                                                                   GM_ADDR dk, GM_ADDR dv,
                                                                   GM_ADDR workspace, GM_ADDR mask,
                                                                   AttentionTiling tiling) {
    FlashAttentionBackwardKernel kernel;
    kernel.Init(q, k, v, dout, dq, dk, dv, workspace, mask, tiling);
    kernel.Process();
}

