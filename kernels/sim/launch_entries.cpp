// launch_entries.cpp: the simulator's `aclrtlaunch_<kernel>` entries, the C functions the AscendC
// toolchain generates for the NPU build (ASCEND.md, "Launching our kernels"). Each runs every
// block of the launch through osum_sim::launch, which turns rule violations into an aclError.
#include "../ascend/tiling.h"
#include "kernel_operator.h"

extern "C" void osum_binary_f32(GM_ADDR x, GM_ADDR y, GM_ADDR z, ElementwiseTiling tiling);
extern "C" void osum_matmul_f32(GM_ADDR a, GM_ADDR bt, GM_ADDR c, MatmulTiling tiling);

extern "C" uint32_t aclrtlaunch_osum_binary_f32(uint32_t blocks, void *stream, GM_ADDR x,
                                                GM_ADDR y, GM_ADDR z, ElementwiseTiling tiling) {
    return osum_sim::launch("osum_binary_f32", blocks, stream,
                            [&] { osum_binary_f32(x, y, z, tiling); });
}

extern "C" uint32_t aclrtlaunch_osum_matmul_f32(uint32_t blocks, void *stream, GM_ADDR a,
                                                GM_ADDR bt, GM_ADDR c, MatmulTiling tiling) {
    return osum_sim::launch("osum_matmul_f32", blocks, stream,
                            [&] { osum_matmul_f32(a, bt, c, tiling); });
}

extern "C" void osum_flash_attention_f32(GM_ADDR q, GM_ADDR k, GM_ADDR v, GM_ADDR out,
                                         GM_ADDR workspace, GM_ADDR mask, AttentionTiling tiling);

extern "C" uint32_t aclrtlaunch_osum_flash_attention_f32(uint32_t blocks, void *stream, GM_ADDR q,
                                                         GM_ADDR k, GM_ADDR v, GM_ADDR out,
                                                         GM_ADDR workspace, GM_ADDR mask,
                                                         AttentionTiling tiling) {
    return osum_sim::launch("osum_flash_attention_f32", blocks, stream, [&] {
        osum_flash_attention_f32(q, k, v, out, workspace, mask, tiling);
    });
}

extern "C" void osum_flash_attention_f16(GM_ADDR q, GM_ADDR k, GM_ADDR v, GM_ADDR out,
                                         GM_ADDR workspace, GM_ADDR mask, AttentionTiling tiling);
extern "C" void osum_flash_attention_bf16(GM_ADDR q, GM_ADDR k, GM_ADDR v, GM_ADDR out,
                                          GM_ADDR workspace, GM_ADDR mask, AttentionTiling tiling);

extern "C" uint32_t aclrtlaunch_osum_flash_attention_f16(uint32_t blocks, void *stream, GM_ADDR q,
                                                         GM_ADDR k, GM_ADDR v, GM_ADDR out,
                                                         GM_ADDR workspace, GM_ADDR mask,
                                                         AttentionTiling tiling) {
    return osum_sim::launch("osum_flash_attention_f16", blocks, stream, [&] {
        osum_flash_attention_f16(q, k, v, out, workspace, mask, tiling);
    });
}

extern "C" uint32_t aclrtlaunch_osum_flash_attention_bf16(uint32_t blocks, void *stream,
                                                          GM_ADDR q, GM_ADDR k, GM_ADDR v,
                                                          GM_ADDR out, GM_ADDR workspace,
                                                          GM_ADDR mask, AttentionTiling tiling) {
    return osum_sim::launch("osum_flash_attention_bf16", blocks, stream, [&] {
        osum_flash_attention_bf16(q, k, v, out, workspace, mask, tiling);
    });
}

extern "C" void osum_softmax_f32(GM_ADDR x, GM_ADDR y, SoftmaxTiling tiling);

extern "C" uint32_t aclrtlaunch_osum_softmax_f32(uint32_t blocks, void *stream, GM_ADDR x,
                                                 GM_ADDR y, SoftmaxTiling tiling) {
    return osum_sim::launch("osum_softmax_f32", blocks, stream,
                            [&] { osum_softmax_f32(x, y, tiling); });
}
