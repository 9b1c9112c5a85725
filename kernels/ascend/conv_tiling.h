// conv_tiling.h: tiling structs of the convolution kernels (conv2d.cpp, im2col.cpp,
// col2im.cpp), computed on the host (kernels/conv.rs mirrors them field for field) and passed by
// value to the launch entries. Plain uint32 fields only.
#pragma once

#include <stdint.h>

// Geometry of one 2-D convolution (groups = 1), NCHW input, OIHW weight: output position
// (oh, ow) with kernel tap (i, j) reads input (oh*sh + i*dh - ph, ow*sw + j*dw - pw), zero
// outside the image. Conv1d is the case h = kh = 1.
struct ConvGeometry {
    uint32_t n, c, h, w;  // images, input channels, input height and width
    uint32_t kh, kw;      // kernel height and width
    uint32_t oh, ow;      // output height and width
    uint32_t sh, sw;      // stride
    uint32_t ph, pw;      // zero padding (both sides)
    uint32_t dh, dw;      // dilation
};

// osum_conv2d_f32: Y[n] [O, OH*OW] = W [O, K] . patches[n]^T + b, K = C*KH*KW.
// A unit is (image, tile of tileP output positions); units are dealt round-robin to the blocks.
// Per unit the vector core gathers the patch tile [tileP x K] (row = one output position's
// receptive field, zero padded) into the block's GM workspace in chunks of groupsPerChunk (c, i)
// kernel-row groups (chunkRow floats per UB row), then the cube multiplies W (Bt = patches,
// output tiles baseM x tileP, K steps of baseK), then the vector core adds the bias.
struct Conv2dTiling {
    ConvGeometry g;
    uint32_t o;               // output channels
    uint32_t k;               // C*KH*KW
    uint32_t tileP;           // output positions per unit (multiple of 16, cube N tile)
    uint32_t tilesP;          // ceil(OH*OW / tileP)
    uint32_t baseM;           // output channels per cube tile (multiple of 16)
    uint32_t baseK;           // cube K step (multiple of 8)
    uint32_t groupsPerChunk;  // (c, i) groups gathered per UB chunk
    uint32_t chunkRow;        // floats per UB patch row: round8(groupsPerChunk * KW)
    uint32_t spanMax;         // floats of one input-row span loaded at once (multiple of 8)
    uint32_t hasBias;
    uint32_t wsPerBlock;      // workspace floats per block: tileP * K
};

// osum_im2col_f32 (cols [N, K, OH*OW] from x) and osum_col2im_f32 (x from cols, adding
// overlaps): vector kernels walking rows in chunks of `chunk` output (im2col) or input (col2im)
// columns; `spanMax` floats bound one loaded run (multiple of 8).
struct ConvFoldTiling {
    ConvGeometry g;
    uint32_t chunk;
    uint32_t spanMax;
};
