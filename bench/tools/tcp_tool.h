// Small pieces shared by the tunsocks benchmark's tools (rtt, conn_rate, hold_flows):
// endpoint parsing, sockets, the file-descriptor limit, options, percentiles. Header only,
// so each tool still builds with one g++ call (bench/tunsocks/run).
#pragma once

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <optional>
#include <string>
#include <string_view>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace tcp_tool {

using Clock = std::chrono::steady_clock;

inline const char* g_program = "tool";

[[noreturn]] inline void usage(const char* why) {
  std::fprintf(stderr, "%s: %s (see the comment at the top of %s.cpp)\n", g_program, why,
               g_program);
  std::exit(2);
}

[[noreturn]] inline void die(const char* what) {
  std::fprintf(stderr, "%s: %s: %s\n", g_program, what, std::strerror(errno));
  std::exit(1);
}

struct Endpoint {
  sockaddr_storage address{};
  socklen_t length = 0;

  const sockaddr* raw() const { return reinterpret_cast<const sockaddr*>(&address); }
  int family() const { return address.ss_family; }
};

// "1.2.3.4:80" or "[fd00::1]:80".
inline std::optional<Endpoint> parse_endpoint(std::string_view text) {
  std::string host;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  char* end = nullptr;
  const long number = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || number < 0 || number > 65535) return std::nullopt;
  Endpoint endpoint;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&endpoint.address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&endpoint.address);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(number));
    endpoint.length = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(number));
    endpoint.length = sizeof(sockaddr_in6);
  } else {
    return std::nullopt;
  }
  return endpoint;
}

inline std::string to_string(const Endpoint& endpoint) {
  char text[INET6_ADDRSTRLEN] = {};
  char out[INET6_ADDRSTRLEN + 8] = {};
  if (endpoint.family() == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&endpoint.address);
    ::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    std::snprintf(out, sizeof out, "%s:%u", text, ntohs(v4->sin_port));
  } else {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&endpoint.address);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    std::snprintf(out, sizeof out, "[%s]:%u", text, ntohs(v6->sin6_port));
  }
  return out;
}

// Options as "--name value" pairs after the mode word; every one must be known.
class Options {
 public:
  Options(int argc, char** argv, int first, std::vector<std::string_view> known) {
    for (int i = first; i < argc; i += 2) {
      const std::string_view name = argv[i];
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        usage(("unknown option " + std::string(name)).c_str());
      }
      if (i + 1 >= argc) usage(("missing value for " + std::string(name)).c_str());
      values_[std::string(name)] = argv[i + 1];
    }
  }

  std::string text(const std::string& name, std::string fallback) const {
    const auto found = values_.find(name);
    return found == values_.end() ? fallback : found->second;
  }

  long number(const std::string& name, long fallback, long low, long high) const {
    const auto found = values_.find(name);
    if (found == values_.end()) return fallback;
    char* end = nullptr;
    const long value = std::strtol(found->second.c_str(), &end, 10);
    if (found->second.empty() || *end != '\0' || value < low || value > high) {
      usage((name + " wants a whole number in " + std::to_string(low) + ".." + std::to_string(high))
                .c_str());
    }
    return value;
  }

  Endpoint endpoint(const std::string& name) const {
    const auto found = values_.find(name);
    if (found == values_.end()) usage((name + " is required").c_str());
    auto endpoint = parse_endpoint(found->second);
    if (!endpoint) usage((name + " wants IP:PORT or [IPv6]:PORT").c_str());
    return *endpoint;
  }

 private:
  std::map<std::string, std::string> values_;
};

// Every tool may hold thousands of sockets: use whatever the hard limit allows.
inline rlim_t raise_fd_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
  return limit.rlim_cur;
}

inline void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) die("fcntl O_NONBLOCK");
}

inline void set_nodelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Waits for events on `epoll` (retrying EINTR); returns how many are in `events`.
inline int wait_events(int epoll, std::vector<epoll_event>& events, int timeout_ms) {
  for (;;) {
    const int ready =
        ::epoll_wait(epoll, events.data(), static_cast<int>(events.size()), timeout_ms);
    if (ready >= 0) return ready;
    if (errno != EINTR) die("epoll_wait");
  }
}

// Accepts every pending connection on `listener`, each non-blocking, without Nagle and
// watched for input on `epoll`; `on_client(fd)` records it. Returns the errno that ended
// the batch (EAGAIN normally; EMFILE/ENFILE when out of descriptors).
template <class OnClient>
int accept_pending(int epoll, int listener, OnClient on_client) {
  for (;;) {
    const int client = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client < 0) return errno;
    set_nodelay(client);
    on_client(client);
    epoll_event added{};
    added.events = EPOLLIN;
    added.data.fd = client;
    ::epoll_ctl(epoll, EPOLL_CTL_ADD, client, &added);
  }
}

// Close with a reset instead of a FIN: nothing is left in TIME_WAIT.
inline void close_with_reset(int fd) {
  const linger option{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, sizeof option);
  ::close(fd);
}

// A non-blocking listening socket on `endpoint` (port 0: any). Prints
// "listening on IP:PORT" with the real port once ready, the line the run script waits for.
inline int listen_on(const Endpoint& endpoint, int backlog = 4096) {
  const int fd = ::socket(endpoint.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, endpoint.raw(), endpoint.length) < 0) die("bind");
  if (::listen(fd, backlog) < 0) die("listen");
  Endpoint bound;
  bound.length = sizeof bound.address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound.address), &bound.length);
  std::printf("listening on %s\n", to_string(bound).c_str());
  std::fflush(stdout);
  return fd;
}

// Blocking helpers for the client sides; false on error or EOF.
inline bool write_all(int fd, const std::uint8_t* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

inline bool read_exact(int fd, std::uint8_t* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::recv(fd, data, size, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Nearest-rank percentile (q in 0..1) of sorted samples.
inline double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

}  // namespace tcp_tool
