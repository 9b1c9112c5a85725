// acl_runtime.cpp: the simulated ACL runtime (the subset declared in ffi/acl_sim.h).
//
// One simulated device ("Ascend910B3 (simulated)"); device memory is host memory registered in
// the GM registry so copies and kernels can be bounds-checked; streams execute eagerly (each
// launch runs to completion when issued) but remember a failed kernel so that
// aclrtSynchronizeStream reports it, as on the NPU where kernel errors surface at sync.
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <sstream>
#include <string>

#include "acl_sim_internal.h"
#include "sim_core.h"

namespace {

struct SimStream {
    int error = 0;
    std::string message;
};

std::mutex g_mutex;
int g_init_count = 0;          // aclInit without matching aclFinalize
int g_device_refs = 0;         // aclrtSetDevice without matching aclrtResetDevice
std::set<SimStream *> g_streams;
SimStream g_default_stream;    // the null stream

aclError fail(aclError code, const std::string &msg) {
    osum_sim::set_error(msg);
    return code;
}

bool initialized() { return g_init_count > 0; }

}  // namespace

bool acl_sim_stream_valid(void *stream) {
    std::lock_guard<std::mutex> lock(g_mutex);
    return stream == nullptr || g_streams.count(static_cast<SimStream *>(stream)) == 1;
}

namespace osum_sim {
void stream_record_error(void *stream, int code, const std::string &msg) {
    std::lock_guard<std::mutex> lock(g_mutex);
    SimStream *s = stream == nullptr ? &g_default_stream : static_cast<SimStream *>(stream);
    if (stream != nullptr && g_streams.count(s) == 0) return;
    if (s->error == 0) {
        s->error = code;
        s->message = msg;
    }
}
}  // namespace osum_sim

extern "C" {

aclError aclInit(const char * /*configPath*/) {
    std::lock_guard<std::mutex> lock(g_mutex);
    ++g_init_count;
    return ACL_SUCCESS;
}

aclError aclFinalize(void) {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (!initialized()) return fail(ACL_ERROR_UNINITIALIZE, "aclFinalize: aclInit was not called");
    --g_init_count;
    return ACL_SUCCESS;
}

aclError aclrtGetDeviceCount(uint32_t *count) {
    if (count == nullptr) return fail(ACL_ERROR_INVALID_PARAM, "aclrtGetDeviceCount: null count");
    std::lock_guard<std::mutex> lock(g_mutex);
    if (!initialized()) return fail(ACL_ERROR_UNINITIALIZE, "aclrtGetDeviceCount before aclInit");
    *count = 1;
    return ACL_SUCCESS;
}

aclError aclrtSetDevice(int32_t deviceId) {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (!initialized()) return fail(ACL_ERROR_UNINITIALIZE, "aclrtSetDevice before aclInit");
    if (deviceId != 0) {
        std::ostringstream m;
        m << "aclrtSetDevice: device " << deviceId << " does not exist (the simulator has 1)";
        return fail(ACL_ERROR_INVALID_PARAM, m.str());
    }
    ++g_device_refs;
    return ACL_SUCCESS;
}

aclError aclrtResetDevice(int32_t deviceId) {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (deviceId != 0 || g_device_refs == 0)
        return fail(ACL_ERROR_INVALID_PARAM, "aclrtResetDevice: device was not set");
    --g_device_refs;
    return ACL_SUCCESS;
}

const char *aclrtGetSocName(void) {
    std::lock_guard<std::mutex> lock(g_mutex);
    return initialized() ? "Ascend910B3" : nullptr;
}

aclError aclrtCreateStream(aclrtStream *stream) {
    if (stream == nullptr) return fail(ACL_ERROR_INVALID_PARAM, "aclrtCreateStream: null stream");
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_device_refs == 0)
        return fail(ACL_ERROR_INVALID_PARAM, "aclrtCreateStream: no device set (aclrtSetDevice)");
    auto *s = new SimStream();
    g_streams.insert(s);
    *stream = s;
    return ACL_SUCCESS;
}

aclError aclrtDestroyStream(aclrtStream stream) {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto *s = static_cast<SimStream *>(stream);
    if (g_streams.erase(s) != 1)
        return fail(ACL_ERROR_INVALID_PARAM, "aclrtDestroyStream: unknown stream");
    delete s;
    return ACL_SUCCESS;
}

aclError aclrtSynchronizeStream(aclrtStream stream) {
    std::lock_guard<std::mutex> lock(g_mutex);
    SimStream *s = stream == nullptr ? &g_default_stream : static_cast<SimStream *>(stream);
    if (stream != nullptr && g_streams.count(s) == 0)
        return fail(ACL_ERROR_INVALID_PARAM, "aclrtSynchronizeStream: unknown stream");
    if (s->error != 0) {
        // Report once, like a sticky kernel error that the sync call surfaces and clears.
        int code = s->error;
        std::string msg = s->message;
        s->error = 0;
        s->message.clear();
        return fail(code, msg);
    }
    return ACL_SUCCESS;
}

aclError aclrtMalloc(void **devPtr, size_t size, aclrtMemMallocPolicy policy) {
    if (devPtr == nullptr) return fail(ACL_ERROR_INVALID_PARAM, "aclrtMalloc: null devPtr");
    if (size == 0) return fail(ACL_ERROR_INVALID_PARAM, "aclrtMalloc: size 0");
    if (policy != ACL_MEM_MALLOC_HUGE_FIRST && policy != ACL_MEM_MALLOC_HUGE_ONLY &&
        policy != ACL_MEM_MALLOC_NORMAL_ONLY)
        return fail(ACL_ERROR_INVALID_PARAM, "aclrtMalloc: unknown policy");
    {
        std::lock_guard<std::mutex> lock(g_mutex);
        if (g_device_refs == 0)
            return fail(ACL_ERROR_INVALID_PARAM, "aclrtMalloc: no device set (aclrtSetDevice)");
    }
    // Sizes round up to 32 bytes; 512-byte alignment keeps every copy path's address rule happy.
    size_t bytes = osum_sim::round_up(size, 32);
    void *p = std::aligned_alloc(512, osum_sim::round_up(bytes, 512));
    if (p == nullptr) {
        std::ostringstream m;
        m << "aclrtMalloc: cannot allocate " << size << " bytes";
        return fail(ACL_ERROR_BAD_ALLOC, m.str());
    }
    osum_sim::gm_register(p, bytes);
    *devPtr = p;
    return ACL_SUCCESS;
}

aclError aclrtFree(void *devPtr) {
    if (!osum_sim::gm_unregister(devPtr))
        return fail(ACL_ERROR_INVALID_PARAM, "aclrtFree: not a live aclrtMalloc pointer");
    std::free(devPtr);
    return ACL_SUCCESS;
}

aclError aclrtMemset(void *devPtr, size_t maxCount, int32_t value, size_t count) {
    if (count > maxCount) return fail(ACL_ERROR_INVALID_PARAM, "aclrtMemset: count > maxCount");
    if (!osum_sim::gm_contains(devPtr, count))
        return fail(ACL_ERROR_INVALID_PARAM, "aclrtMemset: range is not device memory");
    std::memset(devPtr, value, count);
    return ACL_SUCCESS;
}

aclError aclrtMemcpy(void *dst, size_t destMax, const void *src, size_t count,
                     aclrtMemcpyKind kind) {
    if (count > destMax) {
        std::ostringstream m;
        m << "aclrtMemcpy: count " << count << " exceeds destMax " << destMax;
        return fail(ACL_ERROR_INVALID_PARAM, m.str());
    }
    if (count == 0) return ACL_SUCCESS;
    if (dst == nullptr || src == nullptr)
        return fail(ACL_ERROR_INVALID_PARAM, "aclrtMemcpy: null pointer");
    bool dst_dev = osum_sim::gm_contains(dst, count);
    bool src_dev = osum_sim::gm_contains(src, count);
    bool ok = false;
    switch (kind) {
        case ACL_MEMCPY_HOST_TO_HOST: ok = !dst_dev && !src_dev; break;
        case ACL_MEMCPY_HOST_TO_DEVICE: ok = dst_dev && !src_dev; break;
        case ACL_MEMCPY_DEVICE_TO_HOST: ok = !dst_dev && src_dev; break;
        case ACL_MEMCPY_DEVICE_TO_DEVICE: ok = dst_dev && src_dev; break;
        case ACL_MEMCPY_DEFAULT: ok = true; break;
    }
    if (!ok) {
        std::ostringstream m;
        m << "aclrtMemcpy: kind " << static_cast<int>(kind) << " does not match the pointers (dst "
          << (dst_dev ? "device" : "host or out of range") << ", src "
          << (src_dev ? "device" : "host or out of range") << ", " << count << " bytes)";
        return fail(ACL_ERROR_INVALID_PARAM, m.str());
    }
    std::memmove(dst, src, count);
    return ACL_SUCCESS;
}

aclError aclrtMemcpyAsync(void *dst, size_t destMax, const void *src, size_t count,
                          aclrtMemcpyKind kind, aclrtStream stream) {
    if (!acl_sim_stream_valid(stream))
        return fail(ACL_ERROR_INVALID_PARAM, "aclrtMemcpyAsync: unknown stream");
    if (kind == ACL_MEMCPY_DEVICE_TO_DEVICE &&
        ((reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src)) % 64) != 0)
        return fail(ACL_ERROR_MEMORY_ADDRESS_UNALIGNED,
                    "aclrtMemcpyAsync: device-to-device addresses must be 64-byte aligned");
    // Streams run eagerly in the simulator, so the async copy is the synchronous one.
    return aclrtMemcpy(dst, destMax, src, count, kind);
}

const char *aclGetRecentErrMsg(void) { return osum_sim::recent_error(); }

}  // extern "C"
