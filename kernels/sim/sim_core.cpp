// sim_core.cpp: launch driver, violations, counters and the GM allocation registry.
#include "sim_core.h"

#include <cstring>
#include <map>
#include <mutex>
#include <sstream>

#include "acl_sim_internal.h"

namespace osum_sim {

const char *level_name(Level l) {
    switch (l) {
        case Level::GM: return "GM";
        case Level::UB: return "UB";
        case Level::L1: return "L1";
        case Level::L0A: return "L0A";
        case Level::L0B: return "L0B";
        case Level::L0C: return "L0C";
    }
    return "?";
}

size_t level_capacity(Level l) {
    switch (l) {
        // 192 KiB minus the >= 8.25 KiB the runtime keeps for itself (ASCEND.md).
        case Level::UB: return 192 * 1024 - 8448;
        case Level::L1: return 512 * 1024;
        case Level::L0A: return 64 * 1024;
        case Level::L0B: return 64 * 1024;
        case Level::L0C: return 128 * 1024;
        case Level::GM: return SIZE_MAX;
    }
    return 0;
}

size_t level_alignment(Level l) {
    switch (l) {
        case Level::UB: return 32;
        case Level::L1: return 32;
        case Level::L0A:
        case Level::L0B:
        case Level::L0C: return 512;
        case Level::GM: return 32;
    }
    return 32;
}

void fail(const std::string &what) { throw Violation(what); }

namespace {
thread_local LaunchContext *g_ctx = nullptr;
thread_local std::string g_recent_error;
thread_local OsumSimLaunchStats g_last_stats{};

std::mutex g_gm_mutex;
std::map<uintptr_t, size_t> g_gm;  // start address -> bytes
}  // namespace

LaunchContext &ctx() {
    if (g_ctx == nullptr) fail("AscendC API called outside a kernel launch");
    return *g_ctx;
}

bool in_launch() { return g_ctx != nullptr; }

void set_error(const std::string &msg) { g_recent_error = msg; }
const char *recent_error() { return g_recent_error.c_str(); }

uint32_t launch(const char *kernel, uint32_t blocks, void *stream,
                const std::function<void()> &body) {
    g_last_stats = OsumSimLaunchStats{};
    if (blocks == 0 || blocks > 65535) {
        std::ostringstream m;
        m << "kernel " << kernel << ": numBlocks " << blocks << " outside 1..65535";
        set_error(m.str());
        return ACL_ERROR_INVALID_PARAM;
    }
    if (!acl_sim_stream_valid(stream)) {
        std::ostringstream m;
        m << "kernel " << kernel << ": launched on an unknown or destroyed stream";
        set_error(m.str());
        return ACL_ERROR_INVALID_PARAM;
    }
    if (g_ctx != nullptr) {
        set_error(std::string("kernel ") + kernel + ": launched from inside another kernel");
        return ACL_ERROR_INVALID_PARAM;
    }
    LaunchContext c;
    c.kernel = kernel;
    c.block_num = blocks;
    c.stats.blocks = blocks;
    g_ctx = &c;
    uint32_t code = 0;
    std::string msg;
    for (uint32_t b = 0; b < blocks; ++b) {
        c.block_idx = b;
        for (size_t &u : c.level_used) u = 0;
        try {
            body();
        } catch (const Violation &v) {
            msg = v.what();
        } catch (const std::exception &e) {
            msg = std::string("C++ exception: ") + e.what();
        }
        if (msg.empty() && !c.deferred.empty()) msg = c.deferred;
        if (!msg.empty()) {
            std::ostringstream m;
            m << "kernel " << kernel << " block " << b << " of " << blocks << ": " << msg
              << " (simulator)";
            msg = m.str();
            code = OSUM_SIM_KERNEL_VIOLATION;
            break;
        }
    }
    g_ctx = nullptr;
    g_last_stats = c.stats;
    if (code != 0) {
        set_error(msg);
        stream_record_error(stream, static_cast<int>(code), msg);
    }
    return code;
}

void gm_register(const void *p, size_t bytes) {
    std::lock_guard<std::mutex> lock(g_gm_mutex);
    g_gm[reinterpret_cast<uintptr_t>(p)] = bytes;
}

bool gm_unregister(const void *p) {
    std::lock_guard<std::mutex> lock(g_gm_mutex);
    return g_gm.erase(reinterpret_cast<uintptr_t>(p)) == 1;
}

bool gm_contains(const void *p, size_t bytes) {
    std::lock_guard<std::mutex> lock(g_gm_mutex);
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    auto it = g_gm.upper_bound(a);
    if (it == g_gm.begin()) return false;
    --it;
    return a >= it->first && a + bytes <= it->first + it->second && a + bytes >= a;
}

}  // namespace osum_sim

extern "C" void osum_sim_last_launch_stats(OsumSimLaunchStats *out) {
    if (out != nullptr) *out = osum_sim::g_last_stats;
}

extern "C" size_t osum_sim_stats_size(void) { return sizeof(OsumSimLaunchStats); }
