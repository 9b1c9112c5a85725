// launch_lora.cpp: the simulator's `aclrtlaunch_osum_lora_linear_f32` entry (lora_linear.cpp);
// see launch_entries.cpp.
#include "../ascend/lora_tiling.h"
#include "kernel_operator.h"

extern "C" void osum_lora_linear_f32(GM_ADDR x, GM_ADDR w, GM_ADDR b, GM_ADDR a, GM_ADDR bm,
                                     GM_ADDR y, GM_ADDR workspace, LoraLinearTiling tiling);

extern "C" uint32_t aclrtlaunch_osum_lora_linear_f32(uint32_t blocks, void *stream, GM_ADDR x,
                                                     GM_ADDR w, GM_ADDR b, GM_ADDR a, GM_ADDR bm,
                                                     GM_ADDR y, GM_ADDR workspace,
                                                     LoraLinearTiling tiling) {
    return osum_sim::launch("osum_lora_linear_f32", blocks, stream,
                            [&] { osum_lora_linear_f32(x, w, b, a, bm, y, workspace, tiling); });
}
