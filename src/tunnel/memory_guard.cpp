#include "tunnel/memory_guard.h"

#include <charconv>
#include <unistd.h>

#include "net/log.h"
#include "net/whole_file.h"

namespace tunsocks::tunnel {
namespace {

// A counter file that cannot be read reads as empty: the guard then has no limit to act on.
std::string read_small_file(const std::string& path) {
  return net::read_whole_file(path).value_or(std::string{});
}

std::optional<std::uint64_t> parse_number(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
    text.remove_suffix(1);
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

bool file_exists(const std::string& path) {
  return ::access(path.c_str(), R_OK) == 0;
}

}  // namespace

std::optional<CgroupMemoryFiles> cgroup_memory_files(std::string_view proc_self_cgroup,
                                                     std::string_view root,
                                                     bool (*v2_exists)(const std::string&)) {
  std::optional<std::string> v1_path;
  std::optional<std::string> v2_path;
  while (!proc_self_cgroup.empty()) {
    const std::size_t eol = proc_self_cgroup.find('\n');
    std::string_view line = proc_self_cgroup.substr(0, eol);
    proc_self_cgroup.remove_prefix(eol == std::string_view::npos ? proc_self_cgroup.size()
                                                                 : eol + 1);
    // "hierarchy-id:controller,controller:path"; v2 is "0::path".
    const std::size_t first = line.find(':');
    const std::size_t second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    const std::string_view controllers = line.substr(first + 1, second - first - 1);
    const std::string path(line.substr(second + 1));
    if (controllers.empty()) {
      v2_path = path;
      continue;
    }
    std::string_view rest = controllers;
    while (!rest.empty()) {
      const std::size_t comma = rest.find(',');
      if (rest.substr(0, comma) == "memory") v1_path = path;
      rest.remove_prefix(comma == std::string_view::npos ? rest.size() : comma + 1);
    }
  }
  const std::string base(root);
  if (v2_path) {
    const std::string dir = base + (*v2_path == "/" ? "" : *v2_path);
    if (v2_exists(dir + "/memory.max")) {
      return CgroupMemoryFiles{dir + "/memory.max", dir + "/memory.current", dir + "/memory.stat",
                               "inactive_file"};
    }
  }
  if (v1_path) {
    const std::string dir = base + "/memory" + (*v1_path == "/" ? "" : *v1_path);
    return CgroupMemoryFiles{dir + "/memory.limit_in_bytes", dir + "/memory.usage_in_bytes",
                             dir + "/memory.stat", "total_inactive_file"};
  }
  return std::nullopt;
}

std::optional<std::uint64_t> parse_memory_limit(std::string_view text) {
  const auto value = parse_number(text);
  // v1 writes "no limit" as the largest page-aligned signed 64-bit value.
  if (!value || *value >= (std::uint64_t{1} << 62)) return std::nullopt;
  return value;
}

std::uint64_t memory_stat_value(std::string_view stat, std::string_view key) {
  while (!stat.empty()) {
    const std::size_t eol = stat.find('\n');
    const std::string_view line = stat.substr(0, eol);
    stat.remove_prefix(eol == std::string_view::npos ? stat.size() : eol + 1);
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == ' ') {
      return parse_number(line.substr(key.size() + 1)).value_or(0);
    }
  }
  return 0;
}

bool MemoryGuard::admit(std::uint64_t now_ms) {
  if (now_ms >= next_refresh_ms_) {
    next_refresh_ms_ = now_ms + kRefreshMs;
    refresh();
  }
  if (!refusing_) return true;
  ++refusals_;
  return false;
}

bool MemoryGuard::judge(std::uint64_t working_set, std::optional<std::uint64_t> limit) {
  working_set_ = working_set;
  limit_ = limit;
  const bool was_refusing = refusing_;
  if (!limit) {
    refusing_ = false;
  } else if (working_set * 100 >= *limit * kHighPercent) {
    refusing_ = true;
  } else if (working_set * 100 < *limit * kLowPercent) {
    refusing_ = false;
  }
  if (refusing_ && !was_refusing) {
    TS_LOG_WARN(
        "memory: working set %llu of the cgroup's %llu bytes (%llu%% or more): refusing new "
        "flows (counted in memory_refusals) until below %llu%%",
        static_cast<unsigned long long>(working_set), static_cast<unsigned long long>(*limit),
        static_cast<unsigned long long>(kHighPercent),
        static_cast<unsigned long long>(kLowPercent));
  } else if (was_refusing && !refusing_) {
    TS_LOG_INFO("memory: working set %llu bytes, below %llu%% of the limit: accepting new flows",
                static_cast<unsigned long long>(working_set),
                static_cast<unsigned long long>(kLowPercent));
  }
  return !refusing_;
}

void MemoryGuard::refresh() {
  const auto files =
      cgroup_memory_files(read_small_file("/proc/self/cgroup"), "/sys/fs/cgroup", file_exists);
  if (!files) {
    (void)judge(0, std::nullopt);
    return;
  }
  const auto limit = parse_memory_limit(read_small_file(files->limit));
  const std::uint64_t usage = parse_number(read_small_file(files->usage)).value_or(0);
  const std::uint64_t inactive =
      memory_stat_value(read_small_file(files->stat), files->inactive_key);
  (void)judge(usage > inactive ? usage - inactive : 0, limit);
}

}  // namespace tunsocks::tunnel
