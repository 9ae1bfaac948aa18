#include "net/whole_file.h"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace tunsocks::net {

std::expected<std::string, int> read_whole_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::unexpected(errno);
  std::string text;
  char chunk[16384];
  for (;;) {
    const ssize_t got = ::read(fd, chunk, sizeof chunk);
    if (got > 0) {
      text.append(chunk, static_cast<std::size_t>(got));
    } else if (got == 0) {
      break;
    } else if (errno != EINTR) {
      const int error = errno;
      ::close(fd);
      return std::unexpected(error);
    }
  }
  ::close(fd);
  return text;
}

}  // namespace tunsocks::net
