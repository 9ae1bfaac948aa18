#include "tunnel/memory_guard.h"

#include <doctest/doctest.h>

using namespace tunsocks::tunnel;

namespace {
bool always(const std::string&) {
  return true;
}
bool never(const std::string&) {
  return false;
}
}  // namespace

TEST_CASE("cgroup_v2_memory_files_come_from_the_unified_line") {
  const auto files =
      cgroup_memory_files("0::/system.slice/tunsocks.service\n", "/sys/fs/cgroup", always);
  REQUIRE(files);
  CHECK(files->limit == "/sys/fs/cgroup/system.slice/tunsocks.service/memory.max");
  CHECK(files->usage == "/sys/fs/cgroup/system.slice/tunsocks.service/memory.current");
  CHECK(files->inactive_key == "inactive_file");
}

TEST_CASE("cgroup_v1_memory_when_the_unified_group_has_no_memory_controller") {
  const char* text = "9:name=systemd:/\n4:memory:/box/ts\n3:cpu,cpuacct:/\n0::/\n";
  const auto files = cgroup_memory_files(text, "/sys/fs/cgroup", never);
  REQUIRE(files);
  CHECK(files->limit == "/sys/fs/cgroup/memory/box/ts/memory.limit_in_bytes");
  CHECK(files->usage == "/sys/fs/cgroup/memory/box/ts/memory.usage_in_bytes");
  CHECK(files->inactive_key == "total_inactive_file");
  // Joined controllers ("cpu,memory") count too; the root group has no suffix.
  const auto joined = cgroup_memory_files("5:cpu,memory:/\n", "/r", never);
  REQUIRE(joined);
  CHECK(joined->limit == "/r/memory/memory.limit_in_bytes");
}

TEST_CASE("no_memory_cgroup_named") {
  CHECK_FALSE(cgroup_memory_files("", "/sys/fs/cgroup", never));
  CHECK_FALSE(cgroup_memory_files("0::/\n1:cpu:/\ngarbage\n", "/sys/fs/cgroup", never));
}

TEST_CASE("memory_limits_max_and_v1_unlimited_are_no_limit") {
  CHECK(parse_memory_limit("67108864\n") == 67108864u);
  CHECK_FALSE(parse_memory_limit("max\n"));
  CHECK_FALSE(parse_memory_limit("9223372036854771712\n"));
  CHECK_FALSE(parse_memory_limit(""));
  CHECK_FALSE(parse_memory_limit("12x"));
}

TEST_CASE("memory_stat_value_by_exact_key") {
  const char* stat = "inactive_file_x 5\ninactive_file 4096\ntotal_inactive_file 8192\n";
  CHECK(memory_stat_value(stat, "inactive_file") == 4096u);
  CHECK(memory_stat_value(stat, "total_inactive_file") == 8192u);
  CHECK(memory_stat_value(stat, "anon") == 0u);
}

TEST_CASE("memory_guard_refuses_above_the_high_mark_until_below_the_low_mark") {
  MemoryGuard guard;
  CHECK(guard.judge(50, 100));
  CHECK_FALSE(guard.judge(90, 100));
  CHECK_FALSE(guard.judge(85, 100));  // between the marks: still refusing (hysteresis)
  CHECK(guard.judge(79, 100));
  CHECK(guard.judge(89, 100));             // between the marks from below: still admitting
  CHECK(guard.judge(1000, std::nullopt));  // no limit, never refused
}
