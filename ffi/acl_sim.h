/*
 * acl_sim.h: our own declaration of the subset of the Ascend Computing Language (ACL) runtime
 * that osum calls. Written from the public API documentation (facts only: names, argument order,
 * enum values, error codes; see ../shared/ASCEND.md "ACL runtime"), not copied from CANN headers.
 *
 * Two implementations satisfy it:
 *   - the real libascendcl of a CANN toolkit (`--features ascend`; bindings then come from the
 *     toolkit's own headers, and must agree with these declarations for the calls we make);
 *   - kernels/sim/acl_runtime.cpp, the CPU simulator used by `--device ascend-sim` and in CI.
 *
 * Every call returns an aclError (0 = success); aclGetRecentErrMsg() gives the text of the last
 * failure on the calling thread.
 */
#ifndef OSUM_ACL_SIM_H
#define OSUM_ACL_SIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- types ---------------------------------------------------------------------------------- */

/** Return code of every call; 0 is success. */
typedef int aclError;
/** An ordered queue of copies and kernel launches on one device. */
typedef void *aclrtStream;
/** A device context (created implicitly by aclrtSetDevice). */
typedef void *aclrtContext;

/* ---- error codes (ranges: 1000xx usage, 2000xx resource, 5000xx internal) -------------------- */

static const int ACL_SUCCESS = 0;
static const int ACL_ERROR_INVALID_PARAM = 100000;
static const int ACL_ERROR_UNINITIALIZE = 100001;
static const int ACL_ERROR_BAD_ALLOC = 200000;
static const int ACL_ERROR_MEMORY_ADDRESS_UNALIGNED = 200003;

/* ---- enums ----------------------------------------------------------------------------------- */

/** Page policy of aclrtMalloc (sizes are rounded up to 32 bytes either way). */
typedef enum aclrtMemMallocPolicy {
    ACL_MEM_MALLOC_HUGE_FIRST = 0,
    ACL_MEM_MALLOC_HUGE_ONLY = 1,
    ACL_MEM_MALLOC_NORMAL_ONLY = 2
} aclrtMemMallocPolicy;

/** Direction of aclrtMemcpy / aclrtMemcpyAsync. */
typedef enum aclrtMemcpyKind {
    ACL_MEMCPY_HOST_TO_HOST = 0,
    ACL_MEMCPY_HOST_TO_DEVICE = 1,
    ACL_MEMCPY_DEVICE_TO_HOST = 2,
    ACL_MEMCPY_DEVICE_TO_DEVICE = 3,
    ACL_MEMCPY_DEFAULT = 4
} aclrtMemcpyKind;

/* ---- process and device ---------------------------------------------------------------------- */

/** Initialise the runtime; configPath may be NULL. Once per process. */
aclError aclInit(const char *configPath);
/** Release the runtime; after every device was reset. */
aclError aclFinalize(void);
/** Number of devices visible to this process. */
aclError aclrtGetDeviceCount(uint32_t *count);
/** Bind the calling thread to a device (creates its default context and stream). */
aclError aclrtSetDevice(int32_t deviceId);
/** Release a device's resources for this process. */
aclError aclrtResetDevice(int32_t deviceId);
/** SoC name of the current device, e.g. "Ascend910B3"; NULL before aclInit. */
const char *aclrtGetSocName(void);

/* ---- streams --------------------------------------------------------------------------------- */

aclError aclrtCreateStream(aclrtStream *stream);
aclError aclrtDestroyStream(aclrtStream stream);
/** Block until every task queued on the stream finished; reports a failed kernel's error. */
aclError aclrtSynchronizeStream(aclrtStream stream);

/* ---- memory ---------------------------------------------------------------------------------- */

aclError aclrtMalloc(void **devPtr, size_t size, aclrtMemMallocPolicy policy);
aclError aclrtFree(void *devPtr);
/** Fill count bytes of device memory with value (maxCount is the buffer's size). */
aclError aclrtMemset(void *devPtr, size_t maxCount, int32_t value, size_t count);
/** Synchronous copy of count bytes; destMax is the destination's capacity. */
aclError aclrtMemcpy(void *dst, size_t destMax, const void *src, size_t count,
                     aclrtMemcpyKind kind);
/** Copy queued on a stream; async device-to-device copies want 64-byte aligned addresses. */
aclError aclrtMemcpyAsync(void *dst, size_t destMax, const void *src, size_t count,
                          aclrtMemcpyKind kind, aclrtStream stream);

/* ---- errors ---------------------------------------------------------------------------------- */

/** Text of the most recent error on this thread (never NULL in the simulator). */
const char *aclGetRecentErrMsg(void);

#ifdef __cplusplus
}
#endif

#endif /* OSUM_ACL_SIM_H */
