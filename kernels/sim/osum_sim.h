/*
 * osum_sim.h: the C interface of the AscendC simulator beyond the ACL runtime (acl_sim.h):
 * per-launch counters and the launch driver that kernel launch entries use.
 *
 * This is a simulation: counters describe what the kernel asked the (simulated) hardware to do,
 * not a measurement of an NPU.
 */
#ifndef OSUM_SIM_H
#define OSUM_SIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error code of a kernel that broke a simulated hardware rule (capacity, alignment, queue
 * discipline, out-of-bounds GM access). It sits in ACL's internal range (5000xx); the message
 * from aclGetRecentErrMsg names the kernel, the block and the rule. */
#define OSUM_SIM_KERNEL_VIOLATION 500002

/* What one launch did, summed over its blocks (simulation counters). Mirrored in
 * kernels/mod.rs as `LaunchStats`; osum_sim_stats_size() lets Rust check the layout. */
typedef struct OsumSimLaunchStats {
    uint64_t blocks;
    uint64_t gm_to_ub_bytes;   /* MTE2: GM -> UB */
    uint64_t ub_to_gm_bytes;   /* MTE3: UB -> GM */
    uint64_t ub_to_ub_bytes;   /* UB -> UB copies */
    uint64_t gm_to_l1_bytes;   /* MTE2: GM -> L1 (with ND->NZ) */
    uint64_t l1_to_l0_bytes;   /* MTE1: L1 -> L0A/L0B */
    uint64_t l0c_to_gm_bytes;  /* FixPipe: L0C -> GM */
    uint64_t vector_repeats;   /* 256-byte vector repeats issued */
    uint64_t vector_elems;     /* elements processed by vector instructions */
    uint64_t cube_macs;        /* multiply-accumulates issued to the cube (m*n*k per Mmad) */
    uint64_t peak_ub_bytes;    /* largest UB footprint of any block */
    uint64_t peak_l1_bytes;
    uint64_t peak_l0a_bytes;
    uint64_t peak_l0b_bytes;
    uint64_t peak_l0c_bytes;
} OsumSimLaunchStats;

/* Counters of the most recent launch on the calling thread (zeros before any launch). */
void osum_sim_last_launch_stats(OsumSimLaunchStats *out);
/* sizeof(OsumSimLaunchStats), for the Rust mirror's layout check. */
size_t osum_sim_stats_size(void);

#ifdef __cplusplus
}
#endif

#endif /* OSUM_SIM_H */
