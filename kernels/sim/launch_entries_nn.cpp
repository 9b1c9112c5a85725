// launch_entries_nn.cpp: the simulator's `aclrtlaunch_<kernel>` entries for the norm, rope,
// reduce, index, loss and optimizer kernels (see launch_entries.cpp for the scheme: the AscendC
// toolchain generates these for the NPU build; here each runs every block through
// osum_sim::launch, which turns rule violations into an aclError).
#include "../ascend/tiling.h"
#include "../ascend/tiling_nn.h"
#include "kernel_operator.h"

extern "C" {
void osum_norm_f32(GM_ADDR x, GM_ADDR w, GM_ADDR b, GM_ADDR y, NormTiling tiling);
void osum_rope_f32(GM_ADDR x, GM_ADDR cos, GM_ADDR sin, GM_ADDR y, RopeTiling tiling);
void osum_reduce_f32(GM_ADDR x, GM_ADDR y, ReduceTiling tiling);
void osum_index_select(GM_ADDR src, GM_ADDR ids, GM_ADDR out, IndexTiling tiling);
void osum_index_add_f32(GM_ADDR src, GM_ADDR ids, GM_ADDR out, IndexTiling tiling);
void osum_gather(GM_ADDR src, uint64_t srcElems, GM_ADDR idx, GM_ADDR out, GatherTiling tiling);
void osum_scatter_add_f32(GM_ADDR src, uint64_t srcElems, GM_ADDR idx, GM_ADDR out,
                          uint64_t outElems, GatherTiling tiling);
void osum_log_softmax_f32(GM_ADDR x, GM_ADDR y, RowLossTiling tiling);
void osum_cross_entropy_f32(GM_ADDR logits, GM_ADDR targets, GM_ADDR loss, RowLossTiling tiling);
void osum_cross_entropy_bwd_f32(GM_ADDR logits, GM_ADDR targets, GM_ADDR grad, GM_ADDR dlogits,
                                RowLossTiling tiling);
void osum_adamw_f32(GM_ADDR param, GM_ADDR grad, GM_ADDR m, GM_ADDR v, AdamWTiling tiling);

uint32_t aclrtlaunch_osum_norm_f32(uint32_t blocks, void *stream, GM_ADDR x, GM_ADDR w, GM_ADDR b,
                                   GM_ADDR y, NormTiling tiling) {
    return osum_sim::launch("osum_norm_f32", blocks, stream,
                            [&] { osum_norm_f32(x, w, b, y, tiling); });
}

uint32_t aclrtlaunch_osum_rope_f32(uint32_t blocks, void *stream, GM_ADDR x, GM_ADDR cos,
                                   GM_ADDR sin, GM_ADDR y, RopeTiling tiling) {
    return osum_sim::launch("osum_rope_f32", blocks, stream,
                            [&] { osum_rope_f32(x, cos, sin, y, tiling); });
}

uint32_t aclrtlaunch_osum_reduce_f32(uint32_t blocks, void *stream, GM_ADDR x, GM_ADDR y,
                                     ReduceTiling tiling) {
    return osum_sim::launch("osum_reduce_f32", blocks, stream,
                            [&] { osum_reduce_f32(x, y, tiling); });
}

uint32_t aclrtlaunch_osum_index_select(uint32_t blocks, void *stream, GM_ADDR src, GM_ADDR ids,
                                       GM_ADDR out, IndexTiling tiling) {
    return osum_sim::launch("osum_index_select", blocks, stream,
                            [&] { osum_index_select(src, ids, out, tiling); });
}

uint32_t aclrtlaunch_osum_index_add_f32(uint32_t blocks, void *stream, GM_ADDR src, GM_ADDR ids,
                                        GM_ADDR out, IndexTiling tiling) {
    return osum_sim::launch("osum_index_add_f32", blocks, stream,
                            [&] { osum_index_add_f32(src, ids, out, tiling); });
}

uint32_t aclrtlaunch_osum_gather(uint32_t blocks, void *stream, GM_ADDR src, uint64_t srcElems,
                                 GM_ADDR idx, GM_ADDR out, GatherTiling tiling) {
    return osum_sim::launch("osum_gather", blocks, stream,
                            [&] { osum_gather(src, srcElems, idx, out, tiling); });
}

uint32_t aclrtlaunch_osum_scatter_add_f32(uint32_t blocks, void *stream, GM_ADDR src,
                                          uint64_t srcElems, GM_ADDR idx, GM_ADDR out,
                                          uint64_t outElems, GatherTiling tiling) {
    return osum_sim::launch("osum_scatter_add_f32", blocks, stream, [&] {
        osum_scatter_add_f32(src, srcElems, idx, out, outElems, tiling);
    });
}

uint32_t aclrtlaunch_osum_log_softmax_f32(uint32_t blocks, void *stream, GM_ADDR x, GM_ADDR y,
                                          RowLossTiling tiling) {
    return osum_sim::launch("osum_log_softmax_f32", blocks, stream,
                            [&] { osum_log_softmax_f32(x, y, tiling); });
}

uint32_t aclrtlaunch_osum_cross_entropy_f32(uint32_t blocks, void *stream, GM_ADDR logits,
                                            GM_ADDR targets, GM_ADDR loss, RowLossTiling tiling) {
    return osum_sim::launch("osum_cross_entropy_f32", blocks, stream,
                            [&] { osum_cross_entropy_f32(logits, targets, loss, tiling); });
}

uint32_t aclrtlaunch_osum_cross_entropy_bwd_f32(uint32_t blocks, void *stream, GM_ADDR logits,
                                                GM_ADDR targets, GM_ADDR grad, GM_ADDR dlogits,
                                                RowLossTiling tiling) {
    return osum_sim::launch("osum_cross_entropy_bwd_f32", blocks, stream, [&] {
        osum_cross_entropy_bwd_f32(logits, targets, grad, dlogits, tiling);
    });
}

uint32_t aclrtlaunch_osum_adamw_f32(uint32_t blocks, void *stream, GM_ADDR param, GM_ADDR grad,
                                    GM_ADDR m, GM_ADDR v, AdamWTiling tiling) {
    return osum_sim::launch("osum_adamw_f32", blocks, stream,
                            [&] { osum_adamw_f32(param, grad, m, v, tiling); });
}

void osum_flash_attention_bwd_f32(GM_ADDR q, GM_ADDR k, GM_ADDR v, GM_ADDR dout, GM_ADDR dq,
                                  GM_ADDR dk, GM_ADDR dv, GM_ADDR workspace, GM_ADDR mask,
                                  AttentionTiling tiling);

uint32_t aclrtlaunch_osum_flash_attention_bwd_f32(uint32_t blocks, void *stream, GM_ADDR q,
                                                  GM_ADDR k, GM_ADDR v, GM_ADDR dout, GM_ADDR dq,
                                                  GM_ADDR dk, GM_ADDR dv, GM_ADDR workspace,
                                                  GM_ADDR mask, AttentionTiling tiling) {
    return osum_sim::launch("osum_flash_attention_bwd_f32", blocks, stream, [&] {
        osum_flash_attention_bwd_f32(q, k, v, dout, dq, dk, dv, workspace, mask, tiling);
    });
}

size_t osum_sim_nn_tiling_sizes(uint32_t which) {
    switch (which) {
        case 0: return sizeof(NormTiling);
        case 1: return sizeof(RopeTiling);
        case 2: return sizeof(ReduceTiling);
        case 3: return sizeof(IndexTiling);
        case 4: return sizeof(GatherTiling);
        case 5: return sizeof(RowLossTiling);
        case 6: return sizeof(AdamWTiling);
        default: return 0;
    }
}
}
