// rtt: round-trip time of small request/response messages on one TCP connection, for the
// tunsocks benchmark (bench/tunsocks/run).
//
//   rtt server --listen IP:PORT
//       Echoes every byte back on every connection (epoll, one thread). Prints
//       `listening on IP:PORT` once ready; runs until killed.
//   rtt client --connect IP:PORT [--size 64] [--count 5000] [--warmup 200]
//              [--socks5 IP:PORT]
//       One connection (TCP_NODELAY), then COUNT times: send SIZE bytes, wait until all
//       SIZE come back. Each round trip is timed with the monotonic clock; the first
//       WARMUP are not counted. With --socks5 the connection goes through that SOCKS5
//       server (no authentication, CONNECT to the --connect address), which separates
//       the proxy's share of a round trip from the socksifier's. Prints one JSON line:
//       {"size","count","connect_us","p50_us","p90_us","p99_us","min_us","max_us","mean_us"}.
//
// Exit status: 0 when the measurement ran, 1 when the connection failed, 2 for bad usage.

#include <numeric>
#include <sys/epoll.h>
#include <unordered_map>

#include "tcp_tool.h"

namespace {

using namespace tcp_tool;

struct EchoConnection {
  std::vector<std::uint8_t> pending;  // read but not yet written back
};

[[noreturn]] void serve(const Endpoint& listen_address) {
  const int listener = listen_on(listen_address);
  const int epoll = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll < 0) die("epoll_create1");
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = listener;
  ::epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event);
  std::unordered_map<int, EchoConnection> connections;
  std::vector<std::uint8_t> buffer(64 * 1024);
  std::vector<epoll_event> events(64);

  auto drop = [&](int fd) {
    ::epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    connections.erase(fd);
  };
  // Writes what is pending; waits for EPOLLOUT (and stops reading) while the peer is slow.
  auto flush = [&](int fd, EchoConnection& connection) {
    while (!connection.pending.empty()) {
      const ssize_t n =
          ::send(fd, connection.pending.data(), connection.pending.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (n <= 0) return false;
      connection.pending.erase(connection.pending.begin(), connection.pending.begin() + n);
    }
    epoll_event change{};
    change.events = connection.pending.empty() ? EPOLLIN : EPOLLOUT;
    change.data.fd = fd;
    ::epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &change);
    return true;
  };

  for (;;) {
    const int ready = wait_events(epoll, events, -1);
    for (int i = 0; i < ready; ++i) {
      const int fd = events[i].data.fd;
      if (fd == listener) {
        accept_pending(epoll, listener,
                       [&](int client) { connections.emplace(client, EchoConnection{}); });
        continue;
      }
      auto found = connections.find(fd);
      if (found == connections.end()) continue;
      EchoConnection& connection = found->second;
      if (events[i].events & EPOLLOUT) {
        if (!flush(fd, connection)) drop(fd);
        continue;
      }
      const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) {
        drop(fd);
        continue;
      }
      connection.pending.insert(connection.pending.end(), buffer.data(), buffer.data() + n);
      if (!flush(fd, connection)) drop(fd);
    }
  }
}

// RFC 1928 CONNECT without authentication, blocking; false (with a message) on failure.
bool socks5_connect(int fd, const Endpoint& target) {
  std::vector<std::uint8_t> request = {5, 1, 0};
  std::uint8_t answer[22] = {};
  if (!write_all(fd, request.data(), request.size()) || !read_exact(fd, answer, 2) ||
      answer[0] != 5 || answer[1] != 0) {
    std::fprintf(stderr, "rtt: the SOCKS5 server refused the no-authentication method\n");
    return false;
  }
  request = {5, 1, 0};
  if (target.family() == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&target.address);
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(&v4->sin_addr);
    request.push_back(1);
    request.insert(request.end(), bytes, bytes + 4);
    request.insert(request.end(), reinterpret_cast<const std::uint8_t*>(&v4->sin_port),
                   reinterpret_cast<const std::uint8_t*>(&v4->sin_port) + 2);
  } else {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&target.address);
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(&v6->sin6_addr);
    request.push_back(4);
    request.insert(request.end(), bytes, bytes + 16);
    request.insert(request.end(), reinterpret_cast<const std::uint8_t*>(&v6->sin6_port),
                   reinterpret_cast<const std::uint8_t*>(&v6->sin6_port) + 2);
  }
  if (!write_all(fd, request.data(), request.size()) || !read_exact(fd, answer, 4) ||
      answer[1] != 0) {
    std::fprintf(stderr, "rtt: SOCKS5 CONNECT failed (reply %u)\n", answer[1]);
    return false;
  }
  const std::size_t rest = answer[3] == 1 ? 6 : answer[3] == 4 ? 18 : 0;
  return rest != 0 && read_exact(fd, answer, rest);
}

int client(const Endpoint& target, const std::optional<Endpoint>& proxy, std::size_t size,
           long count, long warmup) {
  const Endpoint& first_hop = proxy ? *proxy : target;
  const int fd = ::socket(first_hop.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  set_nodelay(fd);
  const auto connect_start = Clock::now();
  if (::connect(fd, first_hop.raw(), first_hop.length) < 0) {
    std::fprintf(stderr, "rtt: connect to %s: %s\n", to_string(first_hop).c_str(),
                 std::strerror(errno));
    return 1;
  }
  if (proxy && !socks5_connect(fd, target)) return 1;
  const double connect_us = seconds_since(connect_start) * 1e6;

  std::vector<std::uint8_t> request(size);
  std::vector<std::uint8_t> response(size);
  for (std::size_t i = 0; i < size; ++i)
    request[i] = static_cast<std::uint8_t>('a' + i % 26);
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(count));
  for (long i = 0; i < warmup + count; ++i) {
    request[0] = static_cast<std::uint8_t>(i);
    const auto start = Clock::now();
    if (!write_all(fd, request.data(), size) || !read_exact(fd, response.data(), size)) {
      std::fprintf(stderr, "rtt: connection lost after %ld round trips: %s\n", i,
                   std::strerror(errno));
      return 1;
    }
    const double us = seconds_since(start) * 1e6;
    if (response != request) {
      std::fprintf(stderr, "rtt: round trip %ld came back altered\n", i);
      return 1;
    }
    if (i >= warmup) samples.push_back(us);
  }
  ::close(fd);

  std::sort(samples.begin(), samples.end());
  const double mean =
      std::accumulate(samples.begin(), samples.end(), 0.0) / static_cast<double>(samples.size());
  std::printf(
      "{\"size\":%zu,\"count\":%ld,\"connect_us\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,"
      "\"p99_us\":%.1f,\"min_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f}\n",
      size, count, connect_us, percentile(samples, 0.50), percentile(samples, 0.90),
      percentile(samples, 0.99), samples.front(), samples.back(), mean);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  g_program = "rtt";
  if (argc < 2) usage("usage: rtt server|client [options]");
  const std::string_view mode = argv[1];
  if (mode == "server") {
    const Options options(argc, argv, 2, {"--listen"});
    raise_fd_limit();
    serve(options.endpoint("--listen"));
  }
  if (mode == "client") {
    const Options options(argc, argv, 2,
                          {"--connect", "--size", "--count", "--warmup", "--socks5"});
    std::optional<Endpoint> proxy;
    if (!options.text("--socks5", "").empty()) proxy = options.endpoint("--socks5");
    return client(options.endpoint("--connect"), proxy,
                  static_cast<std::size_t>(options.number("--size", 64, 1, 1 << 20)),
                  options.number("--count", 5000, 1, 100'000'000),
                  options.number("--warmup", 200, 0, 100'000'000));
  }
  usage("the mode is server or client");
}
