// acl_sim_internal.h: what the launch driver needs from the simulated ACL runtime.
#pragma once

#include "../../ffi/acl_sim.h"

// True for the null (default) stream and for streams created and not yet destroyed.
bool acl_sim_stream_valid(void *stream);
