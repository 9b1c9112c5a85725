// tiling_nn.h: tiling structs of the row, index, loss and optimizer kernels (norm, rope, reduce,
// index, log_softmax, cross_entropy, adamw, attention backward). Plain uint32/float fields, so the
// #[repr(C)] mirrors in kernels/nn.rs have the same layout on every target; keep both in sync (a
// test compares sizes). Kept apart from tiling.h so the two kernel sets grow independently.
#pragma once

#include <stdint.h>

// LayerNorm / RMSNorm over the last dimension of a contiguous f32 [rows, cols] matrix.
// Rows are dealt round-robin to the blocks; each row is walked in chunks of chunkLen elements
// (a multiple of 8): layer norm reads a row three times (mean, centred variance, normalise),
// rms norm twice (mean square, normalise).
struct NormTiling {
    uint32_t rows;
    uint32_t cols;
    uint32_t chunkLen;
    uint32_t rms;      // 1: RMSNorm (no mean, no bias)
    uint32_t hasBias;  // layer norm only
    float eps;
};

// Rotary embedding of x [rows, 2 * half] (rows = batch... x T), position of row r = r % t,
// tables cos/sin [t, half]. interleaved: pairs (2i, 2i+1), else (i, i + half).
struct RopeTiling {
    uint32_t rows;
    uint32_t t;
    uint32_t half;
    uint32_t halfPad;  // half rounded up to 8 (one 32-byte block of f32)
    uint32_t interleaved;
};

// Reduction of a contiguous f32 tensor seen as [outer, n, inner] over n -> [outer, inner].
// op: 0 sum, 1 max, 2 min, 3 argmax (u32 output). inner == 1: one unit per row, the row walked
// in chunks of chunkLen; inner > 1: one unit per (outer, chunk of chunkLen inner columns), the
// n slices accumulated with vector ops.
struct ReduceTiling {
    uint32_t outer;
    uint32_t n;
    uint32_t inner;
    uint32_t op;
    uint32_t chunkLen;
    uint32_t innerChunks;  // ceil(inner / chunkLen)
};

// Row selection / accumulation along a dimension: src seen as [outer, size, inner], ids (u32,
// validated on the host) of length n. Elements move as `unit` 16-bit words each (so any dtype
// of 2, 4 or 8 bytes), rowUnits = inner * unitsPerElem. index_select: out [outer, n, inner],
// units = output rows. index_add (f32): out[o, ids[j], :] += src[o, j, :]; a unit owns one
// (outer, column chunk) so no two blocks write the same element.
struct IndexTiling {
    uint32_t outer;
    uint32_t size;
    uint32_t inner;
    uint32_t n;
    uint32_t rowUnits;
    uint32_t chunkLen;     // units (index_select: 16-bit words, index_add: f32) per UB chunk
    uint32_t innerChunks;  // index_add: ceil(inner / chunkLen)
};

// gather / scatter_add (PyTorch semantics) over tensors of rank <= 6. The index tensor has
// shape idxShape; element p of it addresses the data tensor at p's coordinates with coordinate
// `dim` replaced by the index value, i.e. sum_d coord_d * dataStrides[d]. Elements move as
// unitsPerElem 16-bit words (gather) or f32 (scatter_add). scatter_add: srcStrides address the
// src tensor (index shape <= src shape); a line = all positions sharing every coordinate but
// `dim`, owned by one block.
struct GatherTiling {
    uint32_t total;  // elements of the index tensor
    uint32_t rank;
    uint32_t dim;
    uint32_t unitsPerElem;
    uint32_t chunkLen;  // index elements per UB chunk (multiple of 16)
    uint32_t idxShape[6];
    uint32_t dataStrides[6];
    uint32_t srcStrides[6];
};

// Row-wise log-softmax / cross-entropy over a contiguous f32 [rows, cols] matrix, chunks of
// chunkLen. Cross-entropy: block b owns rows [b * rowsPerBlock, ...), targets u32 with
// 0xFFFFFFFF = ignored row.
struct RowLossTiling {
    uint32_t rows;
    uint32_t cols;
    uint32_t chunkLen;
    uint32_t rowsPerBlock;
    uint32_t outChunk;  // losses buffered in UB before one copy out (multiple of 8)
};

// One fused AdamW step over n contiguous f32 (param, m, v updated in place). Block b owns
// [b * blockLength, ...), tiles of tileLength (multiple of 8). Constants as in the CPU step:
// p = p * decay; m = b1 m + (1 - b1) g; v = b2 v + ((1 - b2) g) g;
// p -= (lr * m * invBc1) / (sqrt(v * invBc2) + eps).
struct AdamWTiling {
    uint32_t total;
    uint32_t blockLength;
    uint32_t tileLength;
    float decay;
    float b1;
    float b2;
    float invBc1;
    float invBc2;
    float lr;
    float eps;
};
