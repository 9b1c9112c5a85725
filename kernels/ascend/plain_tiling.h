// plain_tiling.h: tiling of the plain vector kernels copy.cpp, cast.cpp and unary.cpp,
// computed on the host (kernels/plain.rs mirrors them field for field).
#pragma once

#include <stdint.h>

// osum_copy_strided: dst[dstLayout] = src[srcLayout] for one shape of up to 8 dims (elements of
// elemBytes = 2, 4 or 8 bytes, copied bit for bit). A unit is one innermost row (all dims but
// the last give the row index); rows are dealt round-robin to the blocks and walked in chunks
// of `chunk` elements.
struct CopyTiling {
    uint32_t rank;
    uint32_t shape[8];
    uint32_t srcStride[8];
    uint32_t dstStride[8];
    uint32_t srcOffset, dstOffset;
    uint32_t srcLen, dstLen;  // elements the kernel may touch in each buffer
    uint32_t rows;            // product of shape[0 .. rank-1)
    uint32_t elemBytes;
    uint32_t chunk;           // elements per UB chunk (32-byte multiple)
};

// osum_cast / osum_unary_f32 over `total` contiguous elements: block b handles
// [b * blockLength, ...) in tiles of tileLength elements (as ElementwiseTiling).
struct CastTiling {
    uint32_t totalLength, blockLength, tileLength;
    uint32_t src, dst;  // 0 f32, 1 f16, 2 bf16 (one side is f32)
};

struct UnaryTiling {
    uint32_t totalLength, blockLength, tileLength;
    uint32_t op;  // kernels/plain.rs UnaryKernelOp
    float p0, p1; // Affine: mul, add; Powf: exponent
};

// osum_compare (x (mode) y -> u32 0/1) and osum_where (cond ? t : f) over `totalLength`
// contiguous elements, blocks and tiles as CastTiling. tileLength is a multiple of 128 so a
// tile's Compare covers whole 256-byte repeats of f32 and of f16.
// kind (compare operands): 0 f32, 3 u32, 4 i64 (as CastTiling's codes).
// mode: 0 eq, 1 ne, 2 lt, 3 le, 4 gt, 5 ge (kernels/plain.rs CompareKernelOp).
struct CompareTiling {
    uint32_t totalLength, blockLength, tileLength;
    uint32_t kind, mode;
};

// elemBytes: 2, 4 or 8 (t and f are moved bit for bit).
struct WhereTiling {
    uint32_t totalLength, blockLength, tileLength;
    uint32_t elemBytes;
};
