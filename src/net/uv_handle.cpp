#include "net/uv_handle.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace tunsocks::net {

std::string uv_error_name(int code) {
  // uv_err_name() allocates (and leaks) a string for codes it does not know; the _r form
  // does not.
  char buffer[64];
  return uv_err_name_r(code, buffer, sizeof buffer);
}

std::string uv_error_message(int code) {
  char buffer[128];
  return uv_strerror_r(code, buffer, sizeof buffer);
}

std::string UvError::name() const {
  return uv_error_name(code);
}
std::string UvError::message() const {
  return uv_error_message(code);
}

void close_with_reset(uv_tcp_t* handle, uv_close_cb callback) {
  uv_os_fd_t fd = -1;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(handle), &fd) == 0) {
    linger option{1, 0};
    // Failure only means the peer sees a FIN instead of an RST; closing matters more.
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, sizeof option);
  }
  uv_close(reinterpret_cast<uv_handle_t*>(handle), callback);
}

bool peer_reset(const uv_stream_t* tcp_stream) {
  uv_os_fd_t fd = -1;
  if (uv_fileno(reinterpret_cast<const uv_handle_t*>(tcp_stream), &fd) != 0) return false;
  // The kernel records the reset in the pending socket error, which only a failing read
  // or this query consumes; libuv's shortcut to EOF performed neither.
  int error = 0;
  socklen_t length = sizeof error;
  return getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error != 0;
}

bool tcp_local_address(const uv_tcp_t* handle, sockaddr_storage& out) {
  int length = sizeof out;
  out = {};
  return uv_tcp_getsockname(handle, reinterpret_cast<sockaddr*>(&out), &length) == 0;
}

bool tcp_peer_address(const uv_tcp_t* handle, sockaddr_storage& out) {
  int length = sizeof out;
  out = {};
  return uv_tcp_getpeername(handle, reinterpret_cast<sockaddr*>(&out), &length) == 0;
}

}  // namespace tunsocks::net
