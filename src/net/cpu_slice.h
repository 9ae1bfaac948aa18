// Asks the kernel's scheduler for a shorter time slice for the calling thread, a hint for
// latency-bound event loops (socksd's loop wakes up for every relayed chunk and every
// handshake step and runs for a few microseconds each time).
//
// Linux 6.12+ (EEVDF) takes sched_attr.sched_runtime of a SCHED_OTHER thread as the slice
// it asks for (clamped to 0.1..100 ms). A shorter slice gives the thread earlier
// deadlines, so it runs sooner after a wake-up and is preempted less by the peers it just
// woke; it does not give it a larger share of the CPU. No privilege is needed. Older
// kernels accept and ignore the value.
#pragma once

#include <cstdint>
#include <expected>

namespace tunsocks::net {

// For the calling thread; `microseconds` > 0. Keeps the policy and the nice value; a
// thread that is not SCHED_OTHER (a policy an administrator chose) is left alone, which
// counts as success. The error is a negative errno (net::uv_error_name names it).
[[nodiscard]] std::expected<void, int> request_cpu_slice(std::uint32_t microseconds);

}  // namespace tunsocks::net
