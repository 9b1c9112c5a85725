// lora_tiling.h: tiling of osum_lora_linear_f32 (lora_linear.cpp), computed on the host
// (kernels/lora.rs mirrors it field for field) and passed by value.
#pragma once

#include <stdint.h>

// y [m, n] = act(x [m, k] . W[n, k]^T + b + scale * (x . A[rank, k]^T) . B[n, rank]^T).
// rank = 0 is the plain linear layer. A unit is (M tile, N group): the block computes the
// rank-r intermediate H = scale * x_tile . A^T once into its workspace, then for the N tiles
// g, g + nGroups, ... accumulates x.W^T and H.B^T into one L0C tile, writes it, and runs the
// bias/activation epilogue on the vector core.
struct LoraLinearTiling {
    uint32_t m, n, k, rank;
    uint32_t baseM;    // rows per tile (multiple of 16)
    uint32_t baseN;    // output columns per tile (multiple of 16)
    uint32_t cubeN;    // N capacity of the cube tile: max(baseN, round16(rank))
    uint32_t baseK;    // cube K step (multiple of 8)
    uint32_t tilesM, tilesN, nGroups;
    uint32_t rankPad;  // row stride of H in the workspace: round8(rank) (>= 8)
    uint32_t hasBias;
    uint32_t act;      // 0 none, 1 GELU (erf form)
    uint32_t wsPerBlock;
    float scale;
};
