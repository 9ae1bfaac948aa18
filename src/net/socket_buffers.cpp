#include "net/socket_buffers.h"

#include <sys/socket.h>

namespace tunsocks::net {
namespace {

int current_size(int fd, int option) {
  int size = 0;
  socklen_t length = sizeof size;
  if (::getsockopt(fd, SOL_SOCKET, option, &size, &length) != 0) return 0;
  return size;
}

int grow(int fd, int option, int forced_option, int bytes) {
  const int before = current_size(fd, option);
  // The kernel keeps twice what it is asked for (getsockopt reports that figure).
  if (before / 2 >= bytes) return before;
  if (::setsockopt(fd, SOL_SOCKET, forced_option, &bytes, sizeof bytes) == 0) {
    return current_size(fd, option);
  }
  ::setsockopt(fd, SOL_SOCKET, option, &bytes, sizeof bytes);
  // Capped at a maximum below what the socket had (rmem_max under rmem_default): undo.
  if (const int after = current_size(fd, option); after < before) {
    const int half = before / 2;
    ::setsockopt(fd, SOL_SOCKET, option, &half, sizeof half);
  }
  return current_size(fd, option);
}

}  // namespace

SocketBuffers grow_socket_buffers(int fd, int bytes) {
  return {.receive = grow(fd, SO_RCVBUF, SO_RCVBUFFORCE, bytes),
          .send = grow(fd, SO_SNDBUF, SO_SNDBUFFORCE, bytes)};
}

}  // namespace tunsocks::net
