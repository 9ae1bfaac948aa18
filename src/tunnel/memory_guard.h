// Memory-aware admission of new flows. Under a cgroup memory limit (a container, a systemd
// unit's MemoryMax) a socksifier that answers every SYN grows until the OOM killer ends
// every flow at once; refusing new flows near the limit keeps the open ones alive.
//
// The guard finds the process's memory cgroup (v2 memory.max, else v1
// memory.limit_in_bytes) from /proc/self/cgroup each time it looks, so a process moved into
// a cgroup after start is covered. It looks at most every kRefreshMs, and only when asked.
// The measure is the working set: usage minus inactive file pages. The page cache our log
// writes fill is charged to the cgroup too, but the kernel reclaims it before it kills.
// Hysteresis: refuse above kHighPercent of the limit, admit again below kLowPercent.
// The cgroup files must be visible: `ip netns exec` remounts /sys and hides /sys/fs/cgroup
// (the guard then sees no limit and admits everything); `nsenter --net` or --netns do not.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tunsocks::tunnel {

// Where one cgroup's memory figures are (absolute paths).
struct CgroupMemoryFiles {
  std::string limit;         // memory.max (v2) or memory.limit_in_bytes (v1)
  std::string usage;         // memory.current or memory.usage_in_bytes
  std::string stat;          // memory.stat
  std::string inactive_key;  // inactive_file (v2) or total_inactive_file (v1)
};

// The memory files of the cgroup named in `proc_self_cgroup` (the text of
// /proc/self/cgroup), under `root` (normally /sys/fs/cgroup); v2 when `v2_exists` says
// its memory.max exists, else v1. nullopt when no memory cgroup is named.
[[nodiscard]] std::optional<CgroupMemoryFiles> cgroup_memory_files(
    std::string_view proc_self_cgroup, std::string_view root,
    bool (*v2_exists)(const std::string&));

// A limit file's value: nullopt for "max" (v2) or a v1 "unlimited" (at least 2^62), or text
// that is no number.
[[nodiscard]] std::optional<std::uint64_t> parse_memory_limit(std::string_view text);

// The value of `key` in a memory.stat text ("key value" lines); 0 when absent.
[[nodiscard]] std::uint64_t memory_stat_value(std::string_view stat, std::string_view key);

class MemoryGuard {
 public:
  static constexpr std::uint64_t kRefreshMs = 50;
  static constexpr std::uint64_t kHighPercent = 90;
  static constexpr std::uint64_t kLowPercent = 80;

  // Whether a new flow may open now (`now_ms`: the loop's clock). Counts refusals.
  [[nodiscard]] bool admit(std::uint64_t now_ms);
  // For tests: judge figures instead of reading the cgroup.
  [[nodiscard]] bool judge(std::uint64_t working_set, std::optional<std::uint64_t> limit);

  [[nodiscard]] std::uint64_t refusals() const { return refusals_; }
  [[nodiscard]] std::uint64_t limit() const { return limit_.value_or(0); }  // 0: none
  [[nodiscard]] std::uint64_t working_set() const { return working_set_; }

 private:
  void refresh();

  std::uint64_t next_refresh_ms_ = 0;
  std::optional<std::uint64_t> limit_;
  std::uint64_t working_set_ = 0;
  bool refusing_ = false;
  std::uint64_t refusals_ = 0;
};

}  // namespace tunsocks::tunnel
