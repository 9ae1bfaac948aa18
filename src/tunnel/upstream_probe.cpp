#include "tunnel/upstream_probe.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/endpoint.h"

namespace tunsocks::tunnel {
namespace {

using Clock = std::chrono::steady_clock;

// Owns the probe's socket: every return path closes it.
class ProbeSocket {
 public:
  explicit ProbeSocket(int fd) : fd_(fd) {}
  ProbeSocket(const ProbeSocket&) = delete;
  ProbeSocket& operator=(const ProbeSocket&) = delete;
  ~ProbeSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int fd() const { return fd_; }

 private:
  int fd_;
};

enum class Wait { ready, timed_out, cancelled };

// Waits for `events` until `deadline`, looking at `cancel` (if any) every kCancelCheckMs.
Wait wait_for(int fd, short events, Clock::time_point deadline, const std::atomic<bool>* cancel) {
  for (;;) {
    if (cancel != nullptr && cancel->load()) return Wait::cancelled;
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return Wait::timed_out;
    if (cancel != nullptr && left > kCancelCheckMs) left = kCancelCheckMs;
    pollfd waiting{fd, events, 0};
    const int ready = ::poll(&waiting, 1, static_cast<int>(left));
    if (ready > 0) return Wait::ready;
    if (ready < 0 && errno != EINTR) return Wait::timed_out;
  }
}

std::string connect_error(int fd, const sockaddr_storage& address, const ProbeTimeouts& timeouts) {
  const auto* target = reinterpret_cast<const sockaddr*>(&address);
  if (::connect(fd, target, net::sockaddr_length(target)) < 0 && errno != EINPROGRESS) {
    return std::strerror(errno);
  }
  switch (wait_for(fd, POLLOUT, Clock::now() + std::chrono::milliseconds(timeouts.connect_ms),
                   timeouts.cancel)) {
    case Wait::ready:
      break;
    case Wait::timed_out:
      return "no answer within " + std::to_string(timeouts.connect_ms) + " ms";
    case Wait::cancelled:
      return kProbeCancelled;
  }
  int code = 0;
  socklen_t length = sizeof code;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length) != 0) return std::strerror(errno);
  return code == 0 ? std::string() : std::strerror(code);
}

// Sends a pipelined handshake for CONNECT 0.0.0.0:0 and reads the answers.
void ask_about_pipelining(int fd, const HandshakeOptions& options, const ProbeTimeouts& timeouts,
                          ProbeResult& result) {
  const int answer_ms = timeouts.answer_ms;
  HandshakeOptions pipelined = options;
  pipelined.pipeline_request = true;
  ClientHandshake handshake(pipelined, socks::Command::connect,
                            socks::Address::ipv4({0, 0, 0, 0}, 0));
  const socks::Bytes question = handshake.take_output();
  // A few dozen bytes into an empty send buffer: one send takes them all or fails.
  if (::send(fd, question.data(), question.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(question.size())) {
    result.no_pipelining = std::string("the handshake could not be sent: ") + std::strerror(errno);
    return;
  }
  const auto deadline = Clock::now() + std::chrono::milliseconds(answer_ms);
  std::uint8_t answer[512];
  while (handshake.status() == ClientHandshake::Status::in_progress) {
    switch (wait_for(fd, POLLIN, deadline, timeouts.cancel)) {
      case Wait::ready:
        break;
      case Wait::timed_out:
        result.no_pipelining = "no answer to a request sent behind the greeting within " +
                               std::to_string(answer_ms) + " ms";
        return;
      case Wait::cancelled:
        result.no_pipelining = kProbeCancelled;
        return;
    }
    const ssize_t got = ::recv(fd, answer, sizeof answer, 0);
    if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) {
      result.no_pipelining = "the upstream closed the connection after a pipelined request";
      return;
    }
    if (got > 0) handshake.feed(socks::ByteView(answer, static_cast<std::size_t>(got)));
  }
  if (handshake.status() == ClientHandshake::Status::succeeded ||
      handshake.failure() == HandshakeFailure::request_rejected) {
    result.pipelining = true;  // whatever the reply said, it answered the pipelined request
    return;
  }
  result.refused = handshake.failure() == HandshakeFailure::no_acceptable_method ||
                   handshake.failure() == HandshakeFailure::auth_rejected;
  result.no_pipelining = std::string(describe(handshake.failure())) + ": " + handshake.detail();
}

}  // namespace

ProbeResult probe_upstream(const Upstream& upstream, std::uint32_t fwmark, ProbeTimeouts timeouts) {
  ProbeResult result;
  const ProbeSocket socket(
      ::socket(upstream.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (socket.fd() < 0) {
    result.unreachable = std::strerror(errno);
    return result;
  }
  if (fwmark != 0) ::setsockopt(socket.fd(), SOL_SOCKET, SO_MARK, &fwmark, sizeof fwmark);
  result.unreachable = connect_error(socket.fd(), upstream.address, timeouts);
  if (result.unreachable.empty() && upstream.handshake.version == SocksVersion::socks5) {
    ask_about_pipelining(socket.fd(), upstream.handshake, timeouts, result);
  }
  return result;
}

}  // namespace tunsocks::tunnel
