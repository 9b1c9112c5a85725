// launch_conv.cpp: the simulator's `aclrtlaunch_<kernel>` entries of the convolution kernels
// (conv2d.cpp, im2col.cpp, col2im.cpp); see launch_entries.cpp.
#include "../ascend/conv_tiling.h"
#include "kernel_operator.h"

extern "C" void osum_conv2d_f32(GM_ADDR x, GM_ADDR w, GM_ADDR b, GM_ADDR y, GM_ADDR workspace,
                                Conv2dTiling tiling);
extern "C" void osum_im2col_f32(GM_ADDR x, GM_ADDR cols, ConvFoldTiling tiling);
extern "C" void osum_col2im_f32(GM_ADDR cols, GM_ADDR x, ConvFoldTiling tiling);

extern "C" uint32_t aclrtlaunch_osum_conv2d_f32(uint32_t blocks, void *stream, GM_ADDR x,
                                                GM_ADDR w, GM_ADDR b, GM_ADDR y,
                                                GM_ADDR workspace, Conv2dTiling tiling) {
    return osum_sim::launch("osum_conv2d_f32", blocks, stream,
                            [&] { osum_conv2d_f32(x, w, b, y, workspace, tiling); });
}

extern "C" uint32_t aclrtlaunch_osum_im2col_f32(uint32_t blocks, void *stream, GM_ADDR x,
                                                GM_ADDR cols, ConvFoldTiling tiling) {
    return osum_sim::launch("osum_im2col_f32", blocks, stream,
                            [&] { osum_im2col_f32(x, cols, tiling); });
}

extern "C" uint32_t aclrtlaunch_osum_col2im_f32(uint32_t blocks, void *stream, GM_ADDR cols,
                                                GM_ADDR x, ConvFoldTiling tiling) {
    return osum_sim::launch("osum_col2im_f32", blocks, stream,
                            [&] { osum_col2im_f32(cols, x, tiling); });
}
