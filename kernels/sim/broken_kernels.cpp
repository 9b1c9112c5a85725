// broken_kernels.cpp: kernels that break one hardware rule each, on purpose. Tests launch them
// to prove the simulator catches the bug (with kernel name and block) instead of computing a
// wrong answer. Each takes one device buffer of at least 64 floats.
#include "kernel_operator.h"

using namespace AscendC;

// Asks for 2 x 100 KiB of UB: over the 910B's usable ~183.75 KiB.
extern "C" __global__ __aicore__ void osum_broken_ub_overflow(GM_ADDR x) {
    TPipe pipe;
    TQue<TPosition::VECIN, 2> q;
    pipe.InitBuffer(q, 2, 100 * 1024);
    (void)x;
}

// Block 1 copies 7 floats (28 bytes): not a whole number of 32-byte blocks.
extern "C" __global__ __aicore__ void osum_broken_misaligned_copy(GM_ADDR x) {
    TPipe pipe;
    TQue<TPosition::VECIN, 1> q;
    pipe.InitBuffer(q, 1, 256);
    GlobalTensor<float> g;
    g.SetGlobalBuffer((__gm__ float *)x, 64);
    LocalTensor<float> t = q.AllocTensor<float>();
    DataCopy(t, g, GetBlockIdx() == 1 ? 7 : 8);
    q.EnQue(t);
    t = q.DeQue<float>();
    q.FreeTensor(t);
}

// DeQue from a queue nothing was enqueued on.
extern "C" __global__ __aicore__ void osum_broken_dequeue_empty(GM_ADDR x) {
    TPipe pipe;
    TQue<TPosition::VECOUT, 1> q;
    pipe.InitBuffer(q, 1, 256);
    LocalTensor<float> t = q.DeQue<float>();
    (void)t;
    (void)x;
}

// Allocates a tensor and never frees it.
extern "C" __global__ __aicore__ void osum_broken_leak(GM_ADDR x) {
    TPipe pipe;
    TQue<TPosition::VECIN, 1> q;
    pipe.InitBuffer(q, 1, 256);
    LocalTensor<float> t = q.AllocTensor<float>();
    (void)t;
    (void)x;
}

// Reads past the end of its 64-float GlobalTensor.
extern "C" __global__ __aicore__ void osum_broken_gm_overrun(GM_ADDR x) {
    TPipe pipe;
    TQue<TPosition::VECIN, 1> q;
    pipe.InitBuffer(q, 1, 512);
    GlobalTensor<float> g;
    g.SetGlobalBuffer((__gm__ float *)x, 64);
    LocalTensor<float> t = q.AllocTensor<float>();
    DataCopy(t, g[8], 64);
    q.FreeTensor(t);
}

#define OSUM_BROKEN_ENTRY(name)                                                         \
    extern "C" uint32_t aclrtlaunch_##name(uint32_t blocks, void *stream, GM_ADDR x) { \
        return osum_sim::launch(#name, blocks, stream, [&] { name(x); });               \
    }
OSUM_BROKEN_ENTRY(osum_broken_ub_overflow)
OSUM_BROKEN_ENTRY(osum_broken_misaligned_copy)
OSUM_BROKEN_ENTRY(osum_broken_dequeue_empty)
OSUM_BROKEN_ENTRY(osum_broken_leak)
OSUM_BROKEN_ENTRY(osum_broken_gm_overrun)
