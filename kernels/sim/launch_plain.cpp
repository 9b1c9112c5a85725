// launch_plain.cpp: the simulator's `aclrtlaunch_<kernel>` entries of copy.cpp, cast.cpp,
// unary.cpp, compare.cpp and where.cpp; see launch_entries.cpp.
#include "../ascend/plain_tiling.h"
#include "kernel_operator.h"

extern "C" void osum_copy_strided(GM_ADDR src, GM_ADDR dst, CopyTiling tiling);
extern "C" void osum_cast(GM_ADDR x, GM_ADDR y, CastTiling tiling);
extern "C" void osum_unary_f32(GM_ADDR x, GM_ADDR y, UnaryTiling tiling);

extern "C" uint32_t aclrtlaunch_osum_copy_strided(uint32_t blocks, void *stream, GM_ADDR src,
                                                  GM_ADDR dst, CopyTiling tiling) {
    return osum_sim::launch("osum_copy_strided", blocks, stream,
                            [&] { osum_copy_strided(src, dst, tiling); });
}

extern "C" uint32_t aclrtlaunch_osum_cast(uint32_t blocks, void *stream, GM_ADDR x, GM_ADDR y,
                                          CastTiling tiling) {
    return osum_sim::launch("osum_cast", blocks, stream, [&] { osum_cast(x, y, tiling); });
}

extern "C" uint32_t aclrtlaunch_osum_unary_f32(uint32_t blocks, void *stream, GM_ADDR x,
                                               GM_ADDR y, UnaryTiling tiling) {
    return osum_sim::launch("osum_unary_f32", blocks, stream,
                            [&] { osum_unary_f32(x, y, tiling); });
}

extern "C" void osum_compare(GM_ADDR x, GM_ADDR y, GM_ADDR z, CompareTiling tiling);
extern "C" void osum_where(GM_ADDR cond, GM_ADDR t, GM_ADDR f, GM_ADDR z, WhereTiling tiling);

extern "C" uint32_t aclrtlaunch_osum_compare(uint32_t blocks, void *stream, GM_ADDR x, GM_ADDR y,
                                             GM_ADDR z, CompareTiling tiling) {
    return osum_sim::launch("osum_compare", blocks, stream, [&] { osum_compare(x, y, z, tiling); });
}

extern "C" uint32_t aclrtlaunch_osum_where(uint32_t blocks, void *stream, GM_ADDR cond, GM_ADDR t,
                                           GM_ADDR f, GM_ADDR z, WhereTiling tiling) {
    return osum_sim::launch("osum_where", blocks, stream,
                            [&] { osum_where(cond, t, f, z, tiling); });
}
