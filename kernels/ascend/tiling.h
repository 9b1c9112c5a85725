// tiling.h: the tiling structs the host computes (kernels/mod.rs) and passes by value to the
// kernels' launch entries. Plain uint32 fields only, so the #[repr(C)] mirrors in kernels/mod.rs
// have the same layout on every target; keep both in sync (a test compares sizes).
#pragma once

#include <stdint.h>

// Elementwise binary op over `totalLength` contiguous f32 elements.
// Block b handles [b * blockLength, min((b + 1) * blockLength, totalLength)) in tiles of
// tileLength elements (a multiple of 8 = 32 bytes).
struct ElementwiseTiling {
    uint32_t totalLength;
    uint32_t blockLength;
    uint32_t tileLength;
    uint32_t op;  // 0 add, 1 mul, 2 sub, 3 max, 4 div, 5 min (see kernels/mod.rs BinaryKernelOp)
};

// C[m x n] = A[m x k] . Bt[n x k]^T, all f32 row-major with row strides lda / ldb / ldc.
// Output tiles of baseM x baseN (multiples of 16) are dealt round-robin to the blocks; K is
// walked in steps of baseK (a multiple of 8, the f32 C0).
struct MatmulTiling {
    uint32_t m;
    uint32_t n;
    uint32_t k;
    uint32_t lda;
    uint32_t ldb;
    uint32_t ldc;
    uint32_t baseM;
    uint32_t baseN;
    uint32_t baseK;
    uint32_t tilesM;
    uint32_t tilesN;
};

// Flash attention forward, f32: q [batch, headsQ, tq, d], k/v [batch, headsKv, tk, d], out like q,
// all contiguous. One unit of work = (batch, head, query tile of blockQ rows); units are dealt
// round-robin to the blocks. Keys are walked in blocks of blockK with an online softmax.
// `workspace` holds wsPerBlock floats per block (scores/probabilities, V^T, P.V).
struct AttentionTiling {
    uint32_t batch;
    uint32_t headsQ;
    uint32_t headsKv;
    uint32_t tq;
    uint32_t tk;
    uint32_t d;
    uint32_t dPad;    // d rounded up to 16 (P.V tile columns)
    uint32_t blockQ;  // query rows per tile (multiple of 16)
    uint32_t blockK;  // keys per block (multiple of 16)
    uint32_t tilesQ;
    uint32_t causal;  // query i sees keys j <= i + (tk - tq)
    uint32_t wsPerBlock;
    float scale;
    // Optional additive f32 mask viewed as [batch, headsQ, tq, tk] through element strides
    // (0 = broadcast); maskElems elements from the mask pointer.
    uint32_t hasMask;
    uint32_t maskStrides[4];
    uint32_t maskElems;
};

// Softmax over the last dimension of a contiguous f32 [rows, cols] matrix. Rows are dealt
// round-robin to the blocks; each row is walked in chunks of chunkLen elements (a multiple of 8)
// in three passes (max, sum of exp, normalise), so rows longer than UB (vocabularies) work.
struct SoftmaxTiling {
    uint32_t rows;
    uint32_t cols;
    uint32_t chunkLen;
};
