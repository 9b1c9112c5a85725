// index.cpp: embedding lookup and its adjoints (vector cores):
//   osum_index_select  out[o, j, :] = src[o, ids[j], :]        any dtype (moved as 16-bit words)
//   osum_index_add_f32 out[o, ids[j], :] += src[o, j, :]       f32, out pre-filled with dst
//   osum_gather        out[p] = src[p with coord dim := idx[p]] any dtype (16-bit words)
//   osum_scatter_add_f32 out[p with coord dim := idx[p]] += src[p]   f32, out pre-filled with dst
// Ids are u32, already checked against the indexed size on the host (engine/ascend/index.rs),
// so kernels never read outside their GlobalTensors (the simulator would refuse it anyway).
//
// index_select / index_add move whole rows of `inner` elements with DataCopyPad (ragged row
// lengths, any GM offset) through double-buffered queues. index_add gives each block whole
// (outer, column chunk) units and walks all ids in order inside the unit, so repeated ids
// accumulate in order and no two blocks touch one element (no atomics needed).
// gather / scatter_add address single elements: the index tile comes in through UB, data is
// read (and for scatter_add read-modified-written) with scalar GM accesses. Simplification
// (stated): the NPU kernel would use the vector Gather instruction on UB-resident rows.
#include "kernel_operator.h"
#include "tiling_nn.h"

using namespace AscendC;

namespace {

__aicore__ inline int32_t Padded8(uint32_t n) { return static_cast<int32_t>((n + 7) / 8 * 8); }

class IndexSelectKernel {
   public:
    __aicore__ inline void Init(GM_ADDR src, GM_ADDR ids, GM_ADDR out, const IndexTiling &t) {
        t_ = t;
        srcGm_.SetGlobalBuffer((__gm__ uint16_t *)src, uint64_t(t.outer) * t.size * t.rowUnits);
        outGm_.SetGlobalBuffer((__gm__ uint16_t *)out, uint64_t(t.outer) * t.n * t.rowUnits);
        idsGm_.SetGlobalBuffer((__gm__ uint32_t *)ids, t.n);
        pipe_.InitBuffer(q_, 2, t.chunkLen * sizeof(uint16_t));
    }

    __aicore__ inline void Process() {
        uint32_t rows = t_.outer * t_.n;
        for (uint32_t r = GetBlockIdx(); r < rows; r += GetBlockNum()) {
            uint32_t o = r / t_.n, j = r % t_.n;
            uint64_t from = (uint64_t(o) * t_.size + idsGm_.GetValue(j)) * t_.rowUnits;
            uint64_t to = uint64_t(r) * t_.rowUnits;
            for (uint32_t c0 = 0; c0 < t_.rowUnits; c0 += t_.chunkLen) {
                uint32_t len = t_.rowUnits - c0 < t_.chunkLen ? t_.rowUnits - c0 : t_.chunkLen;
                DataCopyExtParams p{1, static_cast<uint32_t>(len * sizeof(uint16_t)), 0, 0, 0};
                LocalTensor<uint16_t> b = q_.AllocTensor<uint16_t>();
                DataCopyPadExtParams<uint16_t> pad{false, 0, 0, 0};
                DataCopyPad(b, srcGm_[from + c0], p, pad);
                q_.EnQue(b);
                b = q_.DeQue<uint16_t>();
                DataCopyPad(outGm_[to + c0], b, p);
                q_.FreeTensor(b);
            }
        }
    }

   private:
    TPipe pipe_;
    TQue<TPosition::VECIN, 2> q_;  // a pure move: GM -> UB -> GM
    GlobalTensor<uint16_t> srcGm_, outGm_;
    GlobalTensor<uint32_t> idsGm_;
    IndexTiling t_{};
};

class IndexAddKernel {
   public:
    __aicore__ inline void Init(GM_ADDR src, GM_ADDR ids, GM_ADDR out, const IndexTiling &t) {
        t_ = t;
        srcGm_.SetGlobalBuffer((__gm__ float *)src, uint64_t(t.outer) * t.n * t.inner);
        outGm_.SetGlobalBuffer((__gm__ float *)out, uint64_t(t.outer) * t.size * t.inner);
        idsGm_.SetGlobalBuffer((__gm__ uint32_t *)ids, t.n);
        uint32_t bytes = t.chunkLen * sizeof(float);
        pipe_.InitBuffer(inSrc_, 2, bytes);
        pipe_.InitBuffer(inDst_, 2, bytes);
        pipe_.InitBuffer(out_, 2, bytes);
    }

    __aicore__ inline void Process() {
        uint32_t units = t_.outer * t_.innerChunks;
        for (uint32_t u = GetBlockIdx(); u < units; u += GetBlockNum()) {
            uint32_t o = u / t_.innerChunks;
            uint32_t c0 = (u % t_.innerChunks) * t_.chunkLen;
            uint32_t len = t_.inner - c0 < t_.chunkLen ? t_.inner - c0 : t_.chunkLen;
            DataCopyExtParams p{1, static_cast<uint32_t>(len * sizeof(float)), 0, 0, 0};
            DataCopyPadExtParams<float> pad{true, 0, 0, 0.0f};
            for (uint32_t j = 0; j < t_.n; ++j) {
                uint64_t from = (uint64_t(o) * t_.n + j) * t_.inner + c0;
                uint64_t to = (uint64_t(o) * t_.size + idsGm_.GetValue(j)) * t_.inner + c0;
                LocalTensor<float> s = inSrc_.AllocTensor<float>();
                LocalTensor<float> d = inDst_.AllocTensor<float>();
                DataCopyPad(s, srcGm_[from], p, pad);
                DataCopyPad(d, outGm_[to], p, pad);
                inSrc_.EnQue(s);
                inDst_.EnQue(d);
                s = inSrc_.DeQue<float>();
                d = inDst_.DeQue<float>();
                LocalTensor<float> y = out_.AllocTensor<float>();
                Add(y, d, s, Padded8(len));
                inSrc_.FreeTensor(s);
                inDst_.FreeTensor(d);
                out_.EnQue(y);
                y = out_.DeQue<float>();
                // Written back before the next id is read: a repeated id sees this sum.
                DataCopyPad(outGm_[to], y, p);
                PipeBarrier<PIPE_ALL>();
                out_.FreeTensor(y);
            }
        }
    }

   private:
    TPipe pipe_;
    TQue<TPosition::VECIN, 2> inSrc_, inDst_;
    TQue<TPosition::VECOUT, 2> out_;
    GlobalTensor<float> srcGm_, outGm_;
    GlobalTensor<uint32_t> idsGm_;
    IndexTiling t_{};
};

// Shared addressing of gather / scatter_add: position p of the index tensor -> element offset in
// a tensor with `strides`, coordinate `dim` replaced by `id`.
__aicore__ inline uint64_t Address(const GatherTiling &t, const uint32_t *strides, uint32_t p,
                                   uint32_t id) {
    uint64_t off = 0;
    for (int32_t d = static_cast<int32_t>(t.rank) - 1; d >= 0; --d) {
        uint32_t c = p % t.idxShape[d];
        p /= t.idxShape[d];
        off += uint64_t(uint32_t(d) == t.dim ? id : c) * strides[d];
    }
    return off;
}

class GatherKernel {
   public:
    __aicore__ inline void Init(GM_ADDR src, uint64_t srcElems, GM_ADDR idx, GM_ADDR out,
                                const GatherTiling &t) {
        t_ = t;
        srcGm_.SetGlobalBuffer((__gm__ uint16_t *)src, srcElems * t.unitsPerElem);
        idxGm_.SetGlobalBuffer((__gm__ uint32_t *)idx, t.total);
        outGm_.SetGlobalBuffer((__gm__ uint16_t *)out, uint64_t(t.total) * t.unitsPerElem);
        pipe_.InitBuffer(idxQ_, 2, t.chunkLen * sizeof(uint32_t));
        pipe_.InitBuffer(outQ_, 2, t.chunkLen * t.unitsPerElem * sizeof(uint16_t));
    }

    __aicore__ inline void Process() {
        uint32_t chunks = (t_.total + t_.chunkLen - 1) / t_.chunkLen;
        const uint32_t u = t_.unitsPerElem;
        for (uint32_t ch = GetBlockIdx(); ch < chunks; ch += GetBlockNum()) {
            uint32_t p0 = ch * t_.chunkLen;
            uint32_t len = t_.total - p0 < t_.chunkLen ? t_.total - p0 : t_.chunkLen;
            LocalTensor<uint32_t> ids = idxQ_.AllocTensor<uint32_t>();
            DataCopyExtParams ip{1, static_cast<uint32_t>(len * sizeof(uint32_t)), 0, 0, 0};
            DataCopyPadExtParams<uint32_t> pad{false, 0, 0, 0};
            DataCopyPad(ids, idxGm_[p0], ip, pad);
            idxQ_.EnQue(ids);
            ids = idxQ_.DeQue<uint32_t>();
            LocalTensor<uint16_t> y = outQ_.AllocTensor<uint16_t>();
            for (uint32_t i = 0; i < len; ++i) {
                uint64_t from = Address(t_, t_.dataStrides, p0 + i, ids.GetValue(i)) * u;
                for (uint32_t w = 0; w < u; ++w) y.SetValue(i * u + w, srcGm_.GetValue(from + w));
            }
            idxQ_.FreeTensor(ids);
            outQ_.EnQue(y);
            y = outQ_.DeQue<uint16_t>();
            DataCopyExtParams op{1, static_cast<uint32_t>(len * u * sizeof(uint16_t)), 0, 0, 0};
            DataCopyPad(outGm_[uint64_t(p0) * u], y, op);
            outQ_.FreeTensor(y);
        }
    }

   private:
    TPipe pipe_;
    TQue<TPosition::VECIN, 2> idxQ_;
    TQue<TPosition::VECOUT, 2> outQ_;
    GlobalTensor<uint16_t> srcGm_, outGm_;
    GlobalTensor<uint32_t> idxGm_;
    GatherTiling t_{};
};

class ScatterAddKernel {
   public:
    __aicore__ inline void Init(GM_ADDR src, uint64_t srcElems, GM_ADDR idx, GM_ADDR out,
                                uint64_t outElems, const GatherTiling &t) {
        t_ = t;
        srcGm_.SetGlobalBuffer((__gm__ float *)src, srcElems);
        idxGm_.SetGlobalBuffer((__gm__ uint32_t *)idx, t.total);
        outGm_.SetGlobalBuffer((__gm__ float *)out, outElems);
    }

    // Line l = index positions sharing every coordinate but `dim`; walked in order along dim so
    // repeated targets accumulate in index order, as on the CPU.
    __aicore__ inline void Process() {
        uint32_t along = t_.idxShape[t_.dim];
        if (along == 0) return;
        uint32_t inner = 1;
        for (uint32_t d = t_.dim + 1; d < t_.rank; ++d) inner *= t_.idxShape[d];
        uint32_t lines = t_.total / along;
        for (uint32_t l = GetBlockIdx(); l < lines; l += GetBlockNum()) {
            uint32_t o = l / inner, i = l % inner;
            for (uint32_t k = 0; k < along; ++k) {
                uint32_t p = (o * along + k) * inner + i;
                uint32_t id = idxGm_.GetValue(p);
                uint64_t to = Address(t_, t_.dataStrides, p, id);
                uint64_t from = Address(t_, t_.srcStrides, p, k);
                outGm_.SetValue(to, outGm_.GetValue(to) + srcGm_.GetValue(from));
            }
        }
    }

   private:
    GlobalTensor<float> srcGm_, outGm_;
    GlobalTensor<uint32_t> idxGm_;
    GatherTiling t_{};
};

}  // namespace

extern "C" __global__ __aicore__ void osum_index_select(GM_ADDR src, GM_ADDR ids, GM_ADDR out,
                                                        IndexTiling tiling) {
    IndexSelectKernel k;
    k.Init(src, ids, out, tiling);
    k.Process();
}

extern "C" __global__ __aicore__ void osum_index_add_f32(GM_ADDR src, GM_ADDR ids, GM_ADDR out,
                                                         IndexTiling tiling) {
    IndexAddKernel k;
    k.Init(src, ids, out, tiling);
    k.Process();
}

extern "C" __global__ __aicore__ void osum_gather(GM_ADDR src, uint64_t srcElems, GM_ADDR idx,
                                                  GM_ADDR out, GatherTiling tiling) {
    GatherKernel k;
    k.Init(src, srcElems, idx, out, tiling);
    k.Process();
}

extern "C" __global__ __aicore__ void osum_scatter_add_f32(GM_ADDR src, uint64_t srcElems,
                                                           GM_ADDR idx, GM_ADDR out,
                                                           uint64_t outElems, GatherTiling tiling) {
    ScatterAddKernel k;
    k.Init(src, srcElems, idx, out, outElems, tiling);
    k.Process();
}
