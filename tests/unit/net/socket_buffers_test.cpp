#include "net/socket_buffers.h"

#include <algorithm>
#include <fstream>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

namespace net = tunsocks::net;

namespace {

struct UdpSocket {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ~UdpSocket() { ::close(fd); }
};

int sysctl_value(const char* path) {
  std::ifstream file(path);
  int value = 0;
  file >> value;
  return value;
}

int option_of(int fd, int option) {
  int size = 0;
  socklen_t length = sizeof size;
  ::getsockopt(fd, SOL_SOCKET, option, &size, &length);
  return size;
}

}  // namespace

TEST_CASE("grow_socket_buffers_reaches_the_request_or_the_system_maximum") {
  UdpSocket socket;
  REQUIRE(socket.fd >= 0);
  constexpr int kBytes = 1 << 20;
  const net::SocketBuffers granted = net::grow_socket_buffers(socket.fd, kBytes);
  // Forced (CAP_NET_ADMIN): the request; otherwise capped at net.core.[rw]mem_max. The
  // kernel keeps twice either.
  CHECK(granted.receive >= 2 * std::min(kBytes, sysctl_value("/proc/sys/net/core/rmem_max")));
  CHECK(granted.send >= 2 * std::min(kBytes, sysctl_value("/proc/sys/net/core/wmem_max")));
  CHECK(granted.receive == option_of(socket.fd, SO_RCVBUF));
  CHECK(granted.send == option_of(socket.fd, SO_SNDBUF));
}

TEST_CASE("grow_socket_buffers_never_shrinks_a_larger_buffer") {
  UdpSocket socket;
  REQUIRE(socket.fd >= 0);
  const int large = 100'000;  // under every default net.core.rmem_max (212992)
  REQUIRE(::setsockopt(socket.fd, SOL_SOCKET, SO_RCVBUF, &large, sizeof large) == 0);
  REQUIRE(::setsockopt(socket.fd, SOL_SOCKET, SO_SNDBUF, &large, sizeof large) == 0);
  const net::SocketBuffers granted = net::grow_socket_buffers(socket.fd, 4096);
  CHECK(granted.receive == 2 * large);
  CHECK(granted.send == 2 * large);
}

TEST_CASE("grow_socket_buffers_on_a_closed_descriptor_reports_nothing") {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  ::close(fd);
  const net::SocketBuffers granted = net::grow_socket_buffers(fd, 1 << 20);
  CHECK(granted.receive == 0);
  CHECK(granted.send == 0);
}
