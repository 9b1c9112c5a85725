// sim_core.h: the simulator's machinery shared by the AscendC API (kernel_operator.h), the ACL
// runtime (acl_runtime.cpp) and the launch entries: memory levels and their 910B capacities,
// rule violations, the per-launch context and counters, and the registry of device allocations.
//
// Facts (../shared/ASCEND.md, "The AI Core"): UB 192 KiB of which >= 8.25 KiB stay free for the
// runtime, L1 512 KiB, L0A/L0B 64 KiB, L0C 128 KiB; UB addresses and copy lengths 32-byte
// aligned; L0 buffers 512-byte aligned.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

#include "osum_sim.h"

namespace osum_sim {

// On-chip memory levels of one AI Core.
enum class Level { GM, UB, L1, L0A, L0B, L0C };

const char *level_name(Level l);
// Bytes a kernel may allocate at this level (910B, dav-2201).
size_t level_capacity(Level l);
// Required start alignment of a buffer at this level.
size_t level_alignment(Level l);

// A kernel broke a hardware rule. Thrown inside a block, caught by `launch`, turned into an
// aclError plus message; never crosses the C boundary.
struct Violation : std::runtime_error {
    explicit Violation(const std::string &what) : std::runtime_error(what) {}
};

// Throw a Violation whose message is `what` (the launch adds kernel name and block).
[[noreturn]] void fail(const std::string &what);

// The launch being executed on this thread (blocks run one after the other).
struct LaunchContext {
    const char *kernel = nullptr;
    uint32_t block_idx = 0;
    uint32_t block_num = 0;
    OsumSimLaunchStats stats{};
    // Bytes allocated by TPipe::InitBuffer in the current block, per Level (reset per block).
    size_t level_used[6] = {};
    // Deferred violations found where throwing is impossible (destructors).
    std::string deferred;
};

// The current launch context; fails (Violation) when called outside a launch.
LaunchContext &ctx();
// True while a launch runs on this thread.
bool in_launch();

// Run `body` once per block with GetBlockIdx() = 0..blocks-1. Returns 0 or an aclError; on error
// the message (kernel, block, rule) is stored for aclGetRecentErrMsg and on `stream`.
uint32_t launch(const char *kernel, uint32_t blocks, void *stream,
                const std::function<void()> &body);

// Record the message of a failed call for aclGetRecentErrMsg (thread-local).
void set_error(const std::string &msg);
const char *recent_error();

// Device (GM) allocations made with aclrtMalloc: kernels and copies may only touch these.
void gm_register(const void *p, size_t bytes);
bool gm_unregister(const void *p);
// True when [p, p+bytes) lies inside one live allocation.
bool gm_contains(const void *p, size_t bytes);

// Remember a failed kernel on its stream (reported again by aclrtSynchronizeStream).
void stream_record_error(void *stream, int code, const std::string &msg);

// Round up to a multiple of `a` (a power of two).
inline size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

}  // namespace osum_sim
