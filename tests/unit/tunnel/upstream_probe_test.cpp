#include "tunnel/upstream_probe.h"

#include <arpa/inet.h>
#include <cstring>
#include <functional>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <doctest/doctest.h>

namespace {

using namespace tunsocks;
using Bytes = std::vector<std::uint8_t>;

// A loopback listener whose one connection is handled by `script` on its own thread.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::function<void(int fd)> script) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(listener_, 1) == 0);
    socklen_t length = sizeof address;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    std::memcpy(&upstream_.address, &address, sizeof address);
    thread_ = std::thread([this, script = std::move(script)] {
      pollfd waiting{listener_, POLLIN, 0};
      if (::poll(&waiting, 1, 5000) != 1) return;
      const int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) return;
      script(fd);
      ::close(fd);
    });
  }
  ~ScriptedServer() {
    thread_.join();
    ::close(listener_);
  }
  tunnel::Upstream& upstream() { return upstream_; }

 private:
  int listener_ = -1;
  tunnel::Upstream upstream_;
  std::thread thread_;
};

// Reads until `count` bytes came or the peer stops sending for a second.
Bytes read_bytes(int fd, std::size_t count) {
  Bytes got;
  std::uint8_t chunk[256];
  while (got.size() < count) {
    pollfd waiting{fd, POLLIN, 0};
    if (::poll(&waiting, 1, 1000) != 1) break;
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) break;
    got.insert(got.end(), chunk, chunk + n);
  }
  return got;
}

void send_bytes(int fd, const Bytes& bytes) {
  CHECK(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
}

// Waits (up to 2 s) for the probe to hang up.
void wait_for_close(int fd) {
  (void)read_bytes(fd, 1'000'000);
}

const Bytes kGreeting = {0x05, 0x01, 0x00};
const Bytes kProbeRequest = {0x05, 0x01, 0x00, 0x01, 0, 0, 0, 0, 0, 0};  // CONNECT 0.0.0.0:0
const Bytes kRefused = {0x05, 0x05, 0x00, 0x01, 0, 0, 0, 0, 0, 0};

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& part : parts)
    out.insert(out.end(), part.begin(), part.end());
  return out;
}

}  // namespace

TEST_CASE("probe_finds_a_server_that_answers_a_pipelined_request") {
  Bytes received;
  {
    ScriptedServer server([&](int fd) {
      received = read_bytes(fd, kGreeting.size() + kProbeRequest.size());
      send_bytes(fd, cat({{0x05, 0x00}, kRefused}));
      wait_for_close(fd);
    });
    const auto result = tunnel::probe_upstream(server.upstream(), 0);
    CHECK(result.unreachable.empty());
    CHECK(result.pipelining);
    CHECK(result.no_pipelining.empty());
    CHECK_FALSE(result.refused);
  }
  CHECK(received == cat({kGreeting, kProbeRequest}));  // both in the first bytes sent
}

TEST_CASE("probe_with_credentials_pipelines_them_too") {
  Bytes received;
  const Bytes auth = {0x01, 5, 'a', 'l', 'i', 'c', 'e', 2, 'p', 'w'};
  {
    ScriptedServer server([&](int fd) {
      received = read_bytes(fd, 3 + auth.size() + kProbeRequest.size());
      send_bytes(fd, cat({{0x05, 0x02, 0x01, 0x00}, kRefused}));
      wait_for_close(fd);
    });
    server.upstream().handshake.credentials = tunnel::Credentials{"alice", "pw"};
    const auto result = tunnel::probe_upstream(server.upstream(), 0);
    CHECK(result.pipelining);
  }
  CHECK(received == cat({{0x05, 0x01, 0x02}, auth, kProbeRequest}));
}

TEST_CASE("probe_leaves_pipelining_off_for_a_server_that_drops_pipelined_bytes") {
  // As microsocks does: the greeting is answered, the bytes read with it are dropped, and
  // the server waits for a request.
  ScriptedServer server([&](int fd) {
    (void)read_bytes(fd, kGreeting.size() + kProbeRequest.size());
    send_bytes(fd, {0x05, 0x00});
    wait_for_close(fd);
  });
  const auto result = tunnel::probe_upstream(server.upstream(), 0, {.answer_ms = 200});
  CHECK(result.unreachable.empty());
  CHECK_FALSE(result.pipelining);
  CHECK_FALSE(result.refused);
  CHECK(result.no_pipelining == "no answer to a request sent behind the greeting within 200 ms");
}

TEST_CASE("probe_reports_a_refused_method_and_a_closed_connection") {
  {
    ScriptedServer server([&](int fd) {
      (void)read_bytes(fd, kGreeting.size() + kProbeRequest.size());
      send_bytes(fd, {0x05, 0xFF});
      wait_for_close(fd);
    });
    const auto result = tunnel::probe_upstream(server.upstream(), 0);
    CHECK_FALSE(result.pipelining);
    CHECK(result.refused);
    CHECK(result.no_pipelining.starts_with("no acceptable method"));
  }
  {
    ScriptedServer server([&](int fd) { (void)read_bytes(fd, 1); });
    const auto result = tunnel::probe_upstream(server.upstream(), 0);
    CHECK_FALSE(result.pipelining);
    CHECK_FALSE(result.refused);
    CHECK(result.no_pipelining == "the upstream closed the connection after a pipelined request");
  }
}

TEST_CASE("probe_of_a_closed_port_says_why_and_socks4_is_not_asked") {
  tunnel::Upstream closed;
  {
    ScriptedServer server([](int) {});
    closed.address = server.upstream().address;
    // The server's one connection: a SOCKS4 upstream is connected to, not asked anything.
    server.upstream().handshake.version = tunnel::SocksVersion::socks4;
    const auto result = tunnel::probe_upstream(server.upstream(), 0);
    CHECK(result.unreachable.empty());
    CHECK_FALSE(result.pipelining);
    CHECK(result.no_pipelining.empty());
  }
  // The listener is closed now.
  const auto result = tunnel::probe_upstream(closed, 0);
  CHECK(result.unreachable == "Connection refused");
  CHECK_FALSE(result.pipelining);
}

TEST_CASE("probe_gives_up_when_cancelled_instead_of_waiting_out_its_timeout") {
  // A server that never answers, a probe that would wait a minute for it: cancelled from
  // another thread, it ends with the reason, not with the timeout's.
  std::atomic<bool> cancel{false};
  ScriptedServer server([&](int fd) {
    (void)read_bytes(fd, kGreeting.size() + kProbeRequest.size());
    cancel = true;
    wait_for_close(fd);
  });
  const auto result =
      tunnel::probe_upstream(server.upstream(), 0, {.answer_ms = 60'000, .cancel = &cancel});
  CHECK(result.unreachable.empty());
  CHECK_FALSE(result.pipelining);
  CHECK(result.no_pipelining == tunnel::kProbeCancelled);
}

TEST_CASE("probe_cancelled_before_it_starts_stops_at_its_first_wait") {
  // Connecting to a loopback listener completes at once; the cancel is seen before the
  // probe waits for that, so it reports the cancel as the reason, and asks nothing.
  std::atomic<bool> cancel{true};
  Bytes received{0xFF};
  tunnel::ProbeResult result;
  {
    ScriptedServer server([&](int fd) { received = read_bytes(fd, 1'000'000); });
    result =
        tunnel::probe_upstream(server.upstream(), 0, {.connect_ms = 60'000, .cancel = &cancel});
  }  // the server's thread has seen the probe hang up
  CHECK(result.unreachable == tunnel::kProbeCancelled);
  CHECK_FALSE(result.pipelining);
  CHECK(result.no_pipelining.empty());
  CHECK(received.empty());
}
