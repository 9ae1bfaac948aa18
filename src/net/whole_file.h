// Reading a whole file into memory with plain read(2). The programs read only small files
// (configuration, /proc and cgroup counters); streams would pull the iostream and locale
// machinery into the binary and, once touched, into the resident set of an idle process.
#pragma once

#include <expected>
#include <string>

namespace tunsocks::net {

// The file's bytes, or the errno of the open or read that failed.
[[nodiscard]] std::expected<std::string, int> read_whole_file(const std::string& path);

}  // namespace tunsocks::net
