// The whole server in-process, on loopback with port 0: a libuv loop on a background
// thread, plain blocking sockets as clients and destinations in the test thread. Every
// wait has a deadline (a failure bound, not a timing assertion), and every test ends with
// the server stopped, all handles closed and uv_loop_close() == 0.
#include "server/server.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <optional>
#include <poll.h>
#include <signal.h>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <doctest/doctest.h>
#include <uv.h>

#include "net/log.h"
#include "net/uv_handle.h"

namespace net = tunsocks::net;
namespace config = tunsocks::config;
using tunsocks::server::Server;

namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes hex(std::string_view text) {
  Bytes out;
  std::string digits;
  for (char c : text) {
    if (c == ' ') continue;
    digits.push_back(c);
    if (digits.size() == 2) {
      out.push_back(static_cast<std::uint8_t>(std::stoul(digits, nullptr, 16)));
      digits.clear();
    }
  }
  return out;
}

// Log lines, captured from the loop thread.
struct LogCapture {
  std::mutex mutex;
  std::vector<std::string> lines;
  LogCapture() {
    net::set_log_sink(
        [](void* self, std::string_view line) {
          auto* capture = static_cast<LogCapture*>(self);
          std::lock_guard lock(capture->mutex);
          capture->lines.emplace_back(line);
        },
        this);
  }
  ~LogCapture() { net::reset_log_sink(); }
  std::vector<std::string> matching(std::string_view needle) {
    std::lock_guard lock(mutex);
    std::vector<std::string> out;
    for (const auto& l : lines) {
      if (l.find(needle) != std::string::npos) out.push_back(l);
    }
    return out;
  }
};

config::SocksdConfig base_config(const char* listen = "127.0.0.1:0") {
  config::SocksdConfig c;
  c.listen = {*net::Endpoint::parse(listen)};
  return c;
}

class TestServer {
 public:
  explicit TestServer(config::SocksdConfig c) {
    // What socksd's main() does: a write to a reset peer must be EPIPE, not a signal.
    ::signal(SIGPIPE, SIG_IGN);
    REQUIRE(uv_loop_init(&loop_) == 0);
    server_ = std::make_unique<Server>(&loop_, std::move(c));
    auto started = server_->start();
    REQUIRE_MESSAGE(started.has_value(), (started ? "" : started.error()));
    REQUIRE(stop_.init([&](uv_async_t* a) { return uv_async_init(&loop_, a, &on_stop); }) == 0);
    stop_.get()->data = this;
    server_->set_stopped_callback([](void* self) { static_cast<TestServer*>(self)->stop_.close(); },
                                  this);
    port_ = server_->listening().front().port;
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }
  ~TestServer() { stop(); }

  std::uint16_t port() const { return port_; }

  // Shuts the server down (drain included) and waits for the loop to finish.
  void stop() {
    if (!thread_.joinable()) return;
    uv_async_send(stop_.get());
    thread_.join();
    CHECK(server_->session_count() == 0);
    counters_ = server_->counters();
    server_.reset();
    CHECK(uv_loop_close(&loop_) == 0);
  }
  const tunsocks::server::Counters& counters() const { return counters_; }

 private:
  static void on_stop(uv_async_t* async) {
    static_cast<TestServer*>(async->data)->server_->shutdown();
  }

  uv_loop_t loop_{};
  std::unique_ptr<Server> server_;
  net::UvHandle<uv_async_t> stop_;
  std::thread thread_;
  std::uint16_t port_ = 0;
  tunsocks::server::Counters counters_;
};

class Socket {
 public:
  explicit Socket(int fd = -1) : fd_(fd) {}
  Socket(Socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Socket& operator=(Socket&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~Socket() { reset(); }
  void reset() {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

sockaddr_in loopback(std::uint16_t port, const char* ip = "127.0.0.1") {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

Socket connect_to(std::uint16_t port) {
  Socket s(::socket(AF_INET, SOCK_STREAM, 0));
  REQUIRE(s.fd() >= 0);
  sockaddr_in a = loopback(port);
  REQUIRE(::connect(s.fd(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  int one = 1;
  setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return s;
}

Socket listen_on(std::uint16_t& port, int type = SOCK_STREAM) {
  Socket s(::socket(AF_INET, type, 0));
  sockaddr_in a = loopback(0);
  REQUIRE(::bind(s.fd(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  if (type == SOCK_STREAM) REQUIRE(::listen(s.fd(), 16) == 0);
  socklen_t length = sizeof a;
  getsockname(s.fd(), reinterpret_cast<sockaddr*>(&a), &length);
  port = ntohs(a.sin_port);
  return s;
}

bool wait_readable(int fd, int timeout_ms = 5000) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

Socket accept_from(const Socket& listener) {
  REQUIRE(wait_readable(listener.fd()));
  Socket s(::accept(listener.fd(), nullptr, nullptr));
  REQUIRE(s.fd() >= 0);
  return s;
}

void send_all(const Socket& s, const Bytes& data) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(s.fd(), data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    REQUIRE(n > 0);
    sent += static_cast<std::size_t>(n);
  }
}

Bytes recv_exact(const Socket& s, std::size_t count) {
  Bytes out(count);
  std::size_t got = 0;
  while (got < count) {
    REQUIRE_MESSAGE(wait_readable(s.fd()), "waiting for ", count, " bytes, got ", got);
    ssize_t n = ::recv(s.fd(), out.data() + got, count - got, 0);
    REQUIRE_MESSAGE(n > 0, "connection ended after ", got, " of ", count, " bytes");
    got += static_cast<std::size_t>(n);
  }
  return out;
}

// Reads until EOF or reset; returns what arrived, or nullopt if still open at the deadline.
std::optional<Bytes> read_until_closed(const Socket& s, int timeout_ms = 5000) {
  Bytes out;
  for (;;) {
    if (!wait_readable(s.fd(), timeout_ms)) return std::nullopt;
    std::uint8_t buf[4096];
    ssize_t n = ::recv(s.fd(), buf, sizeof buf, 0);
    if (n <= 0) return out;
    out.insert(out.end(), buf, buf + n);
  }
}

Bytes socks5_connect(std::uint16_t port, const char* ip = "127.0.0.1") {
  Bytes r = hex("05 01 00 01");
  in_addr a{};
  inet_pton(AF_INET, ip, &a);
  auto* b = reinterpret_cast<const std::uint8_t*>(&a);
  r.insert(r.end(), b, b + 4);
  r.push_back(static_cast<std::uint8_t>(port >> 8));
  r.push_back(static_cast<std::uint8_t>(port));
  return r;
}

std::uint16_t closed_port() {
  std::uint16_t port = 0;
  { Socket s = listen_on(port); }
  return port;
}

}  // namespace

TEST_CASE("server_connect_relays_both_ways_with_half_close") {
  LogCapture logs;
  std::uint16_t dst_port = 0;
  Socket dst_listener = listen_on(dst_port);
  TestServer server(base_config());

  Socket client = connect_to(server.port());
  send_all(client, hex("05 01 00"));
  CHECK(recv_exact(client, 2) == hex("05 00"));
  send_all(client, socks5_connect(dst_port));
  Bytes reply = recv_exact(client, 10);
  CHECK(reply[1] == 0x00);
  CHECK(reply[3] == 0x01);
  CHECK((reply[8] << 8 | reply[9]) != 0);  // BND.PORT: the outbound socket's real port
  Socket dst = accept_from(dst_listener);

  send_all(client, Bytes{'p', 'i', 'n', 'g'});
  CHECK(recv_exact(dst, 4) == Bytes{'p', 'i', 'n', 'g'});
  Bytes big(300 * 1024);
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<std::uint8_t>(i * 7);
  send_all(dst, big);
  CHECK(recv_exact(client, big.size()) == big);

  // Half-close from the destination: the client sees EOF and can still send.
  ::shutdown(dst.fd(), SHUT_WR);
  auto rest = read_until_closed(client);
  REQUIRE(rest.has_value());
  CHECK(rest->empty());
  send_all(client, Bytes{'b', 'y', 'e'});
  CHECK(recv_exact(dst, 3) == Bytes{'b', 'y', 'e'});
  ::shutdown(client.fd(), SHUT_WR);
  auto dst_rest = read_until_closed(dst);
  REQUIRE(dst_rest.has_value());
  CHECK(dst_rest->empty());
  client.reset();
  dst.reset();

  server.stop();
  CHECK(server.counters().sessions_total == 1);
  CHECK(server.counters().sessions_open == 0);
  CHECK(server.counters().bytes_up == 7);
  CHECK(server.counters().bytes_down == big.size());
  auto lines = logs.matching("session id=1 ");
  REQUIRE(lines.size() == 1);
  std::string expected_tail =
      " user=- proto=socks5 cmd=connect dst=127.0.0.1:" + std::to_string(dst_port) +
      " reply=succeeded up=7 down=" + std::to_string(big.size()) + " ms=";
  CHECK(lines[0].find(expected_tail) != std::string::npos);
  CHECK(lines[0].ends_with(" end=eof"));
  CHECK(lines[0].find(" INFO session id=1 client=127.0.0.1:") != std::string::npos);
}

namespace {

// A CONNECT session through `server` to a fresh destination: {client, destination}.
std::pair<Socket, Socket> open_relay(const TestServer& server) {
  std::uint16_t dst_port = 0;
  Socket dst_listener = listen_on(dst_port);
  Socket client = connect_to(server.port());
  Bytes all = hex("05 01 00");
  Bytes request = socks5_connect(dst_port);
  all.insert(all.end(), request.begin(), request.end());
  send_all(client, all);
  CHECK(recv_exact(client, 2) == hex("05 00"));
  CHECK(recv_exact(client, 10)[1] == 0x00);
  return {std::move(client), accept_from(dst_listener)};
}

Bytes patterned(std::size_t size, unsigned seed) {
  Bytes out(size);
  for (std::size_t i = 0; i < size; ++i)
    out[i] = static_cast<std::uint8_t>((i * 131 + seed) ^ (i >> 11));
  return out;
}

// Enough to move a session past Relay::kSpliceAfter, i.e. onto the splice(2) engine.
constexpr std::size_t kPastSplice = 2 * 1024 * 1024;

// Debug lines on for one test (the splice engine says when it takes over).
struct DebugLogs {
  DebugLogs() { net::set_log_level(net::LogLevel::debug); }
  ~DebugLogs() { net::set_log_level(net::LogLevel::info); }
};

}  // namespace

TEST_CASE("server_spliced_relay_moves_every_byte_both_ways_then_half_closes") {
  LogCapture logs;
  DebugLogs debug;
  TestServer server(base_config());
  auto [client, dst] = open_relay(server);

  // Both directions at once, each bigger than the socket buffers: the relay must keep
  // reading one way while the other is blocked on its receiver.
  Bytes up = patterned(kPastSplice, 1);
  Bytes down = patterned(kPastSplice + 12345, 2);
  std::thread uploader([&] { send_all(client, up); });
  std::thread downloader([&] { send_all(dst, down); });
  Bytes got_down = recv_exact(client, down.size());
  Bytes got_up = recv_exact(dst, up.size());
  uploader.join();
  downloader.join();
  CHECK(got_down == down);
  CHECK(got_up == up);

  // Half-close after splicing: the client's FIN reaches the destination, which can still
  // answer; then its FIN ends the session cleanly.
  ::shutdown(client.fd(), SHUT_WR);
  auto dst_rest = read_until_closed(dst);
  REQUIRE(dst_rest.has_value());
  CHECK(dst_rest->empty());
  send_all(dst, Bytes{'l', 'a', 's', 't'});
  ::shutdown(dst.fd(), SHUT_WR);
  auto client_rest = read_until_closed(client);
  REQUIRE(client_rest.has_value());
  CHECK(*client_rest == Bytes{'l', 'a', 's', 't'});
  client.reset();
  dst.reset();

  server.stop();
  CHECK(server.counters().bytes_up == up.size());
  CHECK(server.counters().bytes_down == down.size() + 4);
  auto lines = logs.matching("session id=1 ");
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].find(" up=" + std::to_string(up.size()) +
                      " down=" + std::to_string(down.size() + 4) + " ") != std::string::npos);
  CHECK(lines[0].ends_with(" end=eof"));
  CHECK(logs.matching("sid=1 relay spliced after ").size() == 1);
}

TEST_CASE("server_relay_without_descriptors_for_pipes_stays_buffered_and_whole") {
  LogCapture logs;
  DebugLogs debug;
  TestServer server(base_config());
  auto [client, dst] = open_relay(server);
  // Descriptors for a pipe only past three quarters of the limit (every free number below
  // the highest open one taken, three free above it): the bulk session must go on with the
  // buffered engine. (Not none at all: under UBSan every virtual call checks its object
  // through a pipe of the sanitizer's own, and fails without a descriptor for it.)
  int highest = 0;
  for (int fd = 0; fd < 4096; ++fd) {
    if (fcntl(fd, F_GETFD) != -1) highest = fd;
  }
  rlimit saved{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0);
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(highest + 4);
  REQUIRE(setrlimit(RLIMIT_NOFILE, &tight) == 0);
  std::vector<int> fillers;  // the free numbers below the highest, taken: a pipe gets none
  for (int fd = ::dup(0); fd >= 0; fd = ::dup(0)) {
    if (fd > highest) {
      ::close(fd);
      break;
    }
    fillers.push_back(fd);
  }
  Bytes down = patterned(kPastSplice, 4);
  std::thread downloader([&] { send_all(dst, down); });
  Bytes got = recv_exact(client, down.size());
  downloader.join();
  for (int fd : fillers)
    ::close(fd);
  REQUIRE(setrlimit(RLIMIT_NOFILE, &saved) == 0);
  CHECK(got == down);
  ::shutdown(dst.fd(), SHUT_WR);
  auto rest = read_until_closed(client);
  REQUIRE(rest.has_value());
  CHECK(rest->empty());
  client.reset();
  dst.reset();
  server.stop();
  CHECK(server.counters().bytes_down == down.size());
  CHECK(logs.matching("relay spliced after ").empty());
  auto lines = logs.matching("session id=1 ");
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].ends_with(" end=eof"));
}

namespace {

void reset_socket(Socket& s) {
  linger l{1, 0};
  REQUIRE(setsockopt(s.fd(), SOL_SOCKET, SO_LINGER, &l, sizeof l) == 0);
  s.reset();
}

// Reads until the connection ends; true when it ended with a reset, not a FIN.
bool ends_with_reset(const Socket& s) {
  for (;;) {
    REQUIRE_MESSAGE(wait_readable(s.fd()), "the connection stayed open");
    std::uint8_t buf[65536];
    ssize_t n = ::recv(s.fd(), buf, sizeof buf, 0);
    if (n > 0) continue;
    return n < 0 && errno == ECONNRESET;
  }
}

}  // namespace

TEST_CASE("server_reset_mid_relay_becomes_a_reset_on_the_other_side") {
  // Both engines: a few bytes keep the session buffered, kPastSplice moves it to splice.
  for (std::size_t before : {std::size_t{3}, kPastSplice}) {
    for (bool destination_resets : {true, false}) {
      CAPTURE(before);
      CAPTURE(destination_resets);
      LogCapture logs;
      DebugLogs debug;
      TestServer server(base_config());
      auto [client, dst] = open_relay(server);
      Bytes down = patterned(before, 3);
      std::thread downloader([&] { send_all(dst, down); });
      CHECK(recv_exact(client, down.size()) == down);
      downloader.join();
      if (destination_resets) {
        reset_socket(dst);
        CHECK(ends_with_reset(client));
      } else {
        reset_socket(client);
        CHECK(ends_with_reset(dst));
      }
      server.stop();
      auto lines = logs.matching("session id=1 ");
      REQUIRE(lines.size() == 1);
      CHECK(lines[0].find(" down=" + std::to_string(before) + " ") != std::string::npos);
      CHECK(lines[0].ends_with(" end=reset"));
      CHECK(logs.matching("sid=1 relay spliced after ").size() == (before > 3 ? 1U : 0U));
    }
  }
}

TEST_CASE("server_pipelined_request_and_data_reach_the_destination") {
  std::uint16_t dst_port = 0;
  Socket dst_listener = listen_on(dst_port);
  TestServer server(base_config());
  Socket client = connect_to(server.port());
  Bytes all = hex("05 01 00");
  Bytes request = socks5_connect(dst_port);
  all.insert(all.end(), request.begin(), request.end());
  all.insert(all.end(), {'e', 'a', 'r', 'l', 'y'});
  send_all(client, all);
  CHECK(recv_exact(client, 2) == hex("05 00"));
  CHECK(recv_exact(client, 10)[1] == 0x00);
  Socket dst = accept_from(dst_listener);
  CHECK(recv_exact(dst, 5) == Bytes{'e', 'a', 'r', 'l', 'y'});
}

namespace {

// Everything that arrives in one recv() once `s` is readable: the bytes of one send on the
// server's side (loopback delivers a small write as one segment).
Bytes recv_once(const Socket& s) {
  REQUIRE(wait_readable(s.fd()));
  Bytes out(512);
  ssize_t n = ::recv(s.fd(), out.data(), out.size(), 0);
  REQUIRE(n > 0);
  out.resize(static_cast<std::size_t>(n));
  return out;
}

}  // namespace

TEST_CASE("server_pipelined_greeting_and_connect_get_both_replies_in_one_write") {
  std::uint16_t dst_port = 0;
  Socket dst_listener = listen_on(dst_port);
  TestServer server(base_config());
  Socket client = connect_to(server.port());
  Bytes all = hex("05 01 00");
  Bytes request = socks5_connect(dst_port);
  all.insert(all.end(), request.begin(), request.end());
  send_all(client, all);
  Socket dst = accept_from(dst_listener);
  sockaddr_in outbound{};
  socklen_t length = sizeof outbound;
  REQUIRE(::getpeername(dst.fd(), reinterpret_cast<sockaddr*>(&outbound), &length) == 0);
  std::uint16_t bound_port = ntohs(outbound.sin_port);

  // The method selection waited for the CONNECT reply: both arrive together, in order.
  Bytes expected = hex("05 00  05 00 00 01 7f 00 00 01");
  expected.push_back(static_cast<std::uint8_t>(bound_port >> 8));
  expected.push_back(static_cast<std::uint8_t>(bound_port));
  CHECK(recv_once(client) == expected);
  send_all(client, Bytes{'h', 'i'});
  CHECK(recv_exact(dst, 2) == Bytes{'h', 'i'});
}

TEST_CASE("server_pipelined_greeting_credentials_and_connect_get_three_answers_in_one_write") {
  std::uint16_t dst_port = 0;
  Socket dst_listener = listen_on(dst_port);
  auto c = base_config();
  c.users.push_back({"alice", config::User::Secret::plain, "s3cret", "--user"});
  TestServer server(c);
  Socket client = connect_to(server.port());
  Bytes all = hex("05 01 02  01 05");
  for (char ch : std::string("alice"))
    all.push_back(static_cast<std::uint8_t>(ch));
  all.push_back(6);
  for (char ch : std::string("s3cret"))
    all.push_back(static_cast<std::uint8_t>(ch));
  Bytes request = socks5_connect(dst_port);
  all.insert(all.end(), request.begin(), request.end());
  send_all(client, all);
  Socket dst = accept_from(dst_listener);
  Bytes got = recv_once(client);
  REQUIRE(got.size() == 2 + 2 + 10);
  CHECK(Bytes(got.begin(), got.begin() + 12) == hex("05 02  01 00  05 00 00 01 7f 00 00 01"));
  CHECK((got[12] << 8 | got[13]) != 0);
}

TEST_CASE("server_greeting_alone_is_answered_at_once") {
  // A client that waits for the method selection before sending its request must get it
  // without the server waiting for anything else.
  TestServer server(base_config());
  Socket client = connect_to(server.port());
  send_all(client, hex("05 02 00 02"));
  CHECK(recv_once(client) == hex("05 00"));
}

TEST_CASE("server_connect_refused_gets_0x05_and_close") {
  LogCapture logs;
  TestServer server(base_config());
  Socket client = connect_to(server.port());
  Bytes all = hex("05 01 00");
  Bytes request = socks5_connect(closed_port());
  all.insert(all.end(), request.begin(), request.end());
  send_all(client, all);
  CHECK(recv_exact(client, 2) == hex("05 00"));
  Bytes reply = recv_exact(client, 10);
  CHECK(reply == hex("05 05 00 01 00 00 00 00 00 00"));
  auto rest = read_until_closed(client);
  REQUIRE(rest.has_value());
  CHECK(rest->empty());
  client.reset();
  server.stop();
  CHECK(server.counters().connect_failures == 1);
  auto lines = logs.matching("session id=1 ");
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].find(" reply=connection_refused ") != std::string::npos);
  CHECK(lines[0].ends_with(" end=connect_failed"));
}

TEST_CASE("server_safe_defaults_deny_loopback_on_a_wildcard_listener") {
  LogCapture logs;
  auto c = base_config("0.0.0.0:0");
  c.allow_open = true;
  TestServer server(c);
  std::uint16_t dst_port = 0;
  Socket dst_listener = listen_on(dst_port);
  for (const char* request : {"socks5", "socks4"}) {
    Socket client = connect_to(server.port());
    if (std::string_view(request) == "socks5") {
      Bytes all = hex("05 01 00");
      Bytes r = socks5_connect(dst_port);
      all.insert(all.end(), r.begin(), r.end());
      send_all(client, all);
      CHECK(recv_exact(client, 2) == hex("05 00"));
      CHECK(recv_exact(client, 10)[1] == 0x02);
    } else {
      Bytes r = hex("04 01");
      r.push_back(static_cast<std::uint8_t>(dst_port >> 8));
      r.push_back(static_cast<std::uint8_t>(dst_port));
      Bytes tail = hex("7f 00 00 01 00");
      r.insert(r.end(), tail.begin(), tail.end());
      send_all(client, r);
      CHECK(recv_exact(client, 8)[1] == 0x5b);
    }
    CHECK(read_until_closed(client).has_value());
  }
  server.stop();
  CHECK(server.counters().denied == 2);
  CHECK(logs.matching("denied by the safe defaults: 127.0.0.1 is loopback").size() == 2);
  CHECK(logs.matching("reply=not_allowed").size() == 2);
}

TEST_CASE("server_limit_per_client_refuses_the_extra_connection_only") {
  auto c = base_config();
  c.limits.max_connections_per_client = 1;
  TestServer server(c);
  std::uint16_t dst_port = 0;
  Socket dst_listener = listen_on(dst_port);

  Socket first = connect_to(server.port());
  send_all(first, hex("05 01 00"));
  CHECK(recv_exact(first, 2) == hex("05 00"));  // accepted and counted

  Socket second = connect_to(server.port());
  auto answer = read_until_closed(second);
  REQUIRE_MESSAGE(answer.has_value(), "the refused connection was left open");
  CHECK(answer->empty());

  send_all(first, socks5_connect(dst_port));
  CHECK(recv_exact(first, 10)[1] == 0x00);  // the existing session still works
  Socket dst = accept_from(dst_listener);
  first.reset();
  dst.reset();
  server.stop();
  CHECK(server.counters().limit_refusals == 1);
}

TEST_CASE("server_handshake_timeout_closes_a_silent_client") {
  auto c = base_config();
  c.limits.handshake_timeout_s = 0.2;
  TestServer server(c);
  Socket silent = connect_to(server.port());
  Socket half = connect_to(server.port());
  send_all(half, hex("05 01"));
  CHECK(read_until_closed(silent).has_value());
  CHECK(read_until_closed(half).has_value());
  server.stop();
  CHECK(server.counters().handshake_timeouts == 2);
}

TEST_CASE("server_auth_required_with_plain_user") {
  auto c = base_config();
  c.users.push_back({"alice", config::User::Secret::plain, "s3cret", "--user"});
  TestServer server(c);
  {
    Socket client = connect_to(server.port());
    send_all(client, hex("05 01 00"));
    CHECK(recv_exact(client, 2) == hex("05 ff"));
    CHECK(read_until_closed(client).has_value());
  }
  {
    Socket client = connect_to(server.port());
    Bytes m = hex("05 01 02 01 05");
    for (char ch : std::string("alice"))
      m.push_back(static_cast<std::uint8_t>(ch));
    m.push_back(5);
    for (char ch : std::string("wrong"))
      m.push_back(static_cast<std::uint8_t>(ch));
    send_all(client, m);
    CHECK(recv_exact(client, 2) == hex("05 02"));
    CHECK(recv_exact(client, 2) == hex("01 01"));
    auto rest = read_until_closed(client);
    REQUIRE(rest.has_value());
    CHECK(rest->empty());
  }
  server.stop();
  CHECK(server.counters().auth_failures == 2);
}

TEST_CASE("server_bind_sends_two_replies_and_relays") {
  auto c = base_config();
  c.enable_bind = true;
  TestServer server(c);
  Socket client = connect_to(server.port());
  Bytes all = hex("05 01 00 05 02 00 01 7f 00 00 01 00 00");
  send_all(client, all);
  CHECK(recv_exact(client, 2) == hex("05 00"));
  Bytes first = recv_exact(client, 10);
  REQUIRE(first[1] == 0x00);
  std::uint16_t bind_port = static_cast<std::uint16_t>(first[8] << 8 | first[9]);
  CHECK(first[4] == 127);

  Socket peer(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in a = loopback(bind_port);
  REQUIRE(::connect(peer.fd(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  sockaddr_in local{};
  socklen_t length = sizeof local;
  getsockname(peer.fd(), reinterpret_cast<sockaddr*>(&local), &length);
  Bytes second = recv_exact(client, 10);
  CHECK(second[1] == 0x00);
  CHECK((second[8] << 8 | second[9]) == ntohs(local.sin_port));  // names the peer
  send_all(peer, Bytes{'h', 'i'});
  CHECK(recv_exact(client, 2) == Bytes{'h', 'i'});
  send_all(client, Bytes{'y', 'o'});
  CHECK(recv_exact(peer, 2) == Bytes{'y', 'o'});
}

TEST_CASE("server_bind_disabled_gets_0x07") {
  TestServer server(base_config());
  Socket client = connect_to(server.port());
  send_all(client, hex("05 01 00 05 02 00 01 7f 00 00 01 00 00"));
  CHECK(recv_exact(client, 2) == hex("05 00"));
  CHECK(recv_exact(client, 10)[1] == 0x07);
}

namespace {

// A UDP ASSOCIATE for a client sending from 127.0.0.1:client_udp_port: the control
// connection (the association lives as long as it) and the relay address socksd named.
struct Association {
  Socket control;
  sockaddr_in relay{};
};

Association udp_associate(TestServer& server, std::uint16_t client_udp_port) {
  Association association{connect_to(server.port())};
  Bytes request = hex("05 01 00 05 03 00 01 7f 00 00 01");
  request.push_back(static_cast<std::uint8_t>(client_udp_port >> 8));
  request.push_back(static_cast<std::uint8_t>(client_udp_port));
  send_all(association.control, request);
  CHECK(recv_exact(association.control, 2) == hex("05 00"));
  Bytes reply = recv_exact(association.control, 10);
  REQUIRE(reply[1] == 0x00);
  association.relay = loopback(static_cast<std::uint16_t>(reply[8] << 8 | reply[9]));
  return association;
}

// The SOCKS UDP request header for 127.0.0.1:port (RSV, FRAG 0, IPv4).
Bytes udp_header_to_loopback(std::uint16_t port) {
  Bytes header = hex("00 00 00 01 7f 00 00 01");
  header.push_back(static_cast<std::uint8_t>(port >> 8));
  header.push_back(static_cast<std::uint8_t>(port));
  return header;
}

}  // namespace

TEST_CASE("server_udp_associate_relays_and_filters") {
  TestServer server(base_config());
  std::uint16_t echo_port = 0;
  Socket echo = listen_on(echo_port, SOCK_DGRAM);
  std::uint16_t client_udp_port = 0;
  Socket client_udp = listen_on(client_udp_port, SOCK_DGRAM);

  auto [control, relay] = udp_associate(server, client_udp_port);

  Bytes datagram = udp_header_to_loopback(echo_port);
  datagram.insert(datagram.end(), {'d', 'n', 's'});
  REQUIRE(::sendto(client_udp.fd(), datagram.data(), datagram.size(), 0,
                   reinterpret_cast<sockaddr*>(&relay), sizeof relay) > 0);
  // The echo server answers its sender (the relay's outbound socket).
  REQUIRE(wait_readable(echo.fd()));
  std::uint8_t buf[2048];
  sockaddr_in from{};
  socklen_t from_length = sizeof from;
  ssize_t n =
      ::recvfrom(echo.fd(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_length);
  REQUIRE(n == 3);
  REQUIRE(::sendto(echo.fd(), buf, 3, 0, reinterpret_cast<sockaddr*>(&from), from_length) == 3);
  REQUIRE(wait_readable(client_udp.fd()));
  n = ::recv(client_udp.fd(), buf, sizeof buf, 0);
  REQUIRE(n == 13);
  CHECK(Bytes(buf, buf + 10) == Bytes(datagram.begin(), datagram.begin() + 10));  // real source
  CHECK(Bytes(buf + 10, buf + 13) == Bytes{'d', 'n', 's'});

  // FRAG != 0 is dropped, and so is a datagram from another port of the client's host.
  Bytes fragment = datagram;
  fragment[2] = 1;
  ::sendto(client_udp.fd(), fragment.data(), fragment.size(), 0,
           reinterpret_cast<sockaddr*>(&relay), sizeof relay);
  std::uint16_t other_port = 0;
  Socket other = listen_on(other_port, SOCK_DGRAM);
  ::sendto(other.fd(), datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&relay),
           sizeof relay);
  CHECK(!wait_readable(echo.fd(), 300));
  control.reset();
  server.stop();
  CHECK(server.counters().udp_datagrams_dropped == 2);
  CHECK(server.counters().udp_datagrams_up == 1);
  CHECK(server.counters().udp_datagrams_down == 1);
  CHECK(server.counters().udp_associations_open == 0);
}

TEST_CASE("server_udp_burst_read_together_is_relayed_whole_and_in_order_both_ways") {
  TestServer server(base_config());
  std::uint16_t echo_port = 0;
  Socket echo = listen_on(echo_port, SOCK_DGRAM);
  std::uint16_t client_udp_port = 0;
  Socket client_udp = listen_on(client_udp_port, SOCK_DGRAM);
  // Room for the whole burst on the test's side (best effort without privileges).
  const int room = 1 << 20;
  for (int fd : {echo.fd(), client_udp.fd()})
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &room, sizeof room);

  auto [control, relay] = udp_associate(server, client_udp_port);

  // 40 datagrams back to back each way: a burst waits on socksd's sockets (the case its
  // larger socket buffers are for); one of 60000 bytes fills most of a 64 KiB read block.
  constexpr int kCount = 40;
  const Bytes header = udp_header_to_loopback(echo_port);
  std::vector<Bytes> payloads;
  for (int i = 0; i < kCount; ++i) {
    Bytes payload(i == 20 ? 60000 : static_cast<std::size_t>(1 + i * 20));
    for (std::size_t j = 0; j < payload.size(); ++j)
      payload[j] = static_cast<std::uint8_t>(i * 13 + j);
    Bytes datagram = header;
    datagram.insert(datagram.end(), payload.begin(), payload.end());
    REQUIRE(::sendto(client_udp.fd(), datagram.data(), datagram.size(), 0,
                     reinterpret_cast<sockaddr*>(&relay),
                     sizeof relay) == static_cast<ssize_t>(datagram.size()));
    payloads.push_back(std::move(payload));
  }
  std::vector<std::uint8_t> buf(65536);
  sockaddr_in from{};
  socklen_t from_length = sizeof from;
  for (int i = 0; i < kCount; ++i) {
    REQUIRE(wait_readable(echo.fd()));
    const ssize_t n = ::recvfrom(echo.fd(), buf.data(), buf.size(), 0,
                                 reinterpret_cast<sockaddr*>(&from), &from_length);
    CHECK(Bytes(buf.begin(), buf.begin() + std::max<ssize_t>(n, 0)) == payloads[i]);
  }
  // The echoes go back as a burst too.
  for (int i = 0; i < kCount; ++i) {
    REQUIRE(::sendto(echo.fd(), payloads[i].data(), payloads[i].size(), 0,
                     reinterpret_cast<sockaddr*>(&from),
                     from_length) == static_cast<ssize_t>(payloads[i].size()));
  }
  for (int i = 0; i < kCount; ++i) {
    REQUIRE(wait_readable(client_udp.fd()));
    const ssize_t n = ::recv(client_udp.fd(), buf.data(), buf.size(), 0);
    REQUIRE(n == static_cast<ssize_t>(10 + payloads[i].size()));
    CHECK(Bytes(buf.begin(), buf.begin() + 10) == header);  // the real source
    CHECK(Bytes(buf.begin() + 10, buf.begin() + n) == payloads[i]);
  }
  control.reset();
  server.stop();
  CHECK(server.counters().udp_datagrams_up == kCount);
  CHECK(server.counters().udp_datagrams_down == kCount);
  CHECK(server.counters().udp_datagrams_dropped == 0);
}

TEST_CASE("server_shutdown_drains_then_closes_open_sessions") {
  LogCapture logs;
  auto c = base_config();
  c.limits.drain_timeout_s = 0.2;
  TestServer server(c);
  std::uint16_t dst_port = 0;
  Socket dst_listener = listen_on(dst_port);
  Socket client = connect_to(server.port());
  Bytes all = hex("05 01 00");
  Bytes r = socks5_connect(dst_port);
  all.insert(all.end(), r.begin(), r.end());
  send_all(client, all);
  recv_exact(client, 12);
  Socket dst = accept_from(dst_listener);
  server.stop();  // returns once the drain time closed the session and the loop ended
  CHECK(logs.matching(" end=shutdown").size() == 1);
  CHECK(read_until_closed(client).has_value());
  CHECK(read_until_closed(dst).has_value());
}

TEST_CASE("server_start_fails_on_an_address_in_use") {
  std::uint16_t port = 0;
  Socket taken = listen_on(port);
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    auto c = base_config();
    c.listen.push_back(net::Endpoint{*net::IpAddress::parse("127.0.0.1"), port});
    Server server(&loop, c);
    auto started = server.start();
    REQUIRE(!started.has_value());
    CHECK(started.error().find("cannot listen on 127.0.0.1:" + std::to_string(port)) !=
          std::string::npos);
    CHECK(server.listening().empty());
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  CHECK(uv_loop_close(&loop) == 0);
}
TEST_CASE("safe_defaults_refuse_open_public_listeners") {
  tunsocks::config::SocksdConfig config;
  config.listen = {*tunsocks::net::Endpoint::parse("127.0.0.1:1080"),
                   *tunsocks::net::Endpoint::parse("[::1]:1080")};
  CHECK(tunsocks::server::check_safe_defaults(config).has_value());
  config.listen.push_back(*tunsocks::net::Endpoint::parse("0.0.0.0:1080"));
  auto refused = tunsocks::server::check_safe_defaults(config);
  REQUIRE(!refused.has_value());
  CHECK(refused.error().find("--allow-open") != std::string::npos);
  CHECK(refused.error().find("0.0.0.0:1080") != std::string::npos);
  CHECK(refused.error().find('\n') == std::string::npos);
  config.allow_open = true;
  CHECK(tunsocks::server::check_safe_defaults(config).has_value());
  config.allow_open = false;
  config.users.push_back({"alice", tunsocks::config::User::Secret::plain, "pw", "--user"});
  CHECK(tunsocks::server::check_safe_defaults(config).has_value());
}
