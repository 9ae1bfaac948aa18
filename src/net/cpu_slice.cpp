#include "net/cpu_slice.h"

#include <cerrno>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace tunsocks::net {
namespace {

// The kernel's struct sched_attr (include/uapi/linux/sched/types.h); glibc before 2.41
// declares neither the struct nor the call.
struct SchedAttr {
  std::uint32_t size;
  std::uint32_t sched_policy;
  std::uint64_t sched_flags;
  std::int32_t sched_nice;
  std::uint32_t sched_priority;
  std::uint64_t sched_runtime;
  std::uint64_t sched_deadline;
  std::uint64_t sched_period;
  std::uint32_t sched_util_min;
  std::uint32_t sched_util_max;
};

}  // namespace

std::expected<void, int> request_cpu_slice(std::uint32_t microseconds) {
#if defined(__linux__) && defined(SYS_sched_setattr)
  if (sched_getscheduler(0) != SCHED_OTHER) return {};
  // The call sets the nice value too: pass the current one (lowering it would need
  // CAP_SYS_NICE, and it is not ours to change).
  errno = 0;
  int nice = getpriority(PRIO_PROCESS, 0);
  if (nice == -1 && errno != 0) return std::unexpected(-errno);
  SchedAttr attr{};
  attr.size = sizeof attr;
  attr.sched_policy = SCHED_OTHER;
  attr.sched_nice = nice;
  attr.sched_runtime = std::uint64_t{microseconds} * 1000;
  if (syscall(SYS_sched_setattr, 0, &attr, 0) != 0) return std::unexpected(-errno);
  return {};
#else
  (void)microseconds;
  return std::unexpected(-ENOSYS);
#endif
}

}  // namespace tunsocks::net
