// socks_load: the load generator of the socksd benchmark (bench/socksd/run).
//
// One binary, five modes, loopback only, SOCKS5 CONNECT without auth (or "direct" for
// the path without a proxy). Python cannot drive multi-Gbit/s, so the data path is here;
// the orchestration (starting proxies, /proc readings, the report) is in bench.py.
//
//   socks_load server [--listen 127.0.0.1:0] [--threads 2]
//       One server for every mode. The first byte a client sends picks what it gets:
//       'D' the server sends without end (download), 'U' it reads and discards (upload),
//       'E' it echoes every later byte, 'C' LEN(2 bytes) it echoes LEN bytes and then
//       closes first. Prints `listening on HOST:PORT` once ready.
//   socks_load stream --proxy ADDR|direct --target ADDR [--streams 1] [--seconds 5]
//                     [--dir down|up]
//       N parallel bulk streams for T seconds; prints {"bytes","seconds","gbit_s"}.
//   socks_load rate --proxy ADDR|direct --target ADDR [--seconds 5] [--workers 4]
//                   [--size 100]
//       Back-to-back short sessions: connect, CONNECT, SIZE bytes echoed, the server
//       closes, the client sees EOF and closes (SIZE <= 65535). Prints
//       {"sessions","errors","per_second","p50_ms","p99_ms"}.
//   socks_load rtt --proxy ADDR|direct --target ADDR [--count 5000] [--size 64]
//       One relayed session, then COUNT round trips of SIZE bytes (send, wait for the whole
//       echo) one after the other, after 100 unmeasured ones. Prints
//       {"round_trips","errors","median_us","p99_us","size"}: the latency a proxy adds to
//       every request/response exchange, without connection set-up.
//   socks_load hold --proxy ADDR|direct --target ADDR [--count 1000]
//       Opens COUNT relayed sessions (each proven by a 1-byte echo), prints
//       {"held","errors","seconds"}, keeps them open until stdin reaches EOF.
//
// Exit status: 0 when the mode ran (errors are reported in the JSON), 2 for bad usage.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kBulk = 256 * 1024;

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "socks_load: %s (see the comment at the top of socks_load.cpp)\n", why);
  std::exit(2);
}

struct Endpoint {
  sockaddr_storage ss{};
  socklen_t len = 0;
};

std::optional<Endpoint> parse_endpoint(const std::string& text) {
  std::string host;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') return {};
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) return {};
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p < 0 || p > 65535) return {};
  Endpoint ep;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ep.ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ep.ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(p));
    ep.len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(p));
    ep.len = sizeof(sockaddr_in6);
  } else {
    return {};
  }
  return ep;
}

std::string to_text(const sockaddr_storage& ss) {
  // snprintf rather than operator+: g++ 12 warns falsely (-Wrestrict) on string concatenation.
  char ip[INET6_ADDRSTRLEN] = {};
  char out[INET6_ADDRSTRLEN + 16] = {};
  if (ss.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof ip);
    std::snprintf(out, sizeof out, "%s:%u", ip, unsigned{ntohs(v4->sin_port)});
  } else {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof ip);
    std::snprintf(out, sizeof out, "[%s]:%u", ip, unsigned{ntohs(v6->sin6_port)});
  }
  return out;
}

struct Args {
  std::map<std::string, std::string> kv;
  std::string get(const std::string& k, const std::string& def) const {
    auto it = kv.find(k);
    return it == kv.end() ? def : it->second;
  }
  long num(const std::string& k, long def) const {
    auto it = kv.find(k);
    if (it == kv.end()) return def;
    char* end = nullptr;
    long v = std::strtol(it->second.c_str(), &end, 10);
    if (*end != '\0' || v < 0) usage(("bad number for --" + k).c_str());
    return v;
  }
};

Args parse_args(int argc, char** argv, int first) {
  Args a;
  for (int i = first; i < argc; i += 2) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0 || i + 1 >= argc) usage(("bad argument " + k).c_str());
    a.kv[k.substr(2)] = argv[i + 1];
  }
  return a;
}

void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

bool write_all(int fd, const void* data, std::size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool read_exact(int fd, void* data, std::size_t n) {
  auto* p = static_cast<uint8_t*>(data);
  while (n > 0) {
    ssize_t r = ::recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// ------------------------------------------------------------------------- client side

struct Route {
  std::optional<Endpoint> proxy;  // empty: direct
  Endpoint target;
};

Route parse_route(const Args& a) {
  Route r;
  auto target = parse_endpoint(a.get("target", ""));
  if (!target) usage("--target HOST:PORT is required");
  r.target = *target;
  std::string proxy = a.get("proxy", "");
  if (proxy.empty()) usage("--proxy HOST:PORT|direct is required");
  if (proxy != "direct") {
    r.proxy = parse_endpoint(proxy);
    if (!r.proxy) usage("bad --proxy");
  }
  return r;
}

// Connects (through the proxy when there is one) and sends the server's opcode.
// Returns the fd, or -1. Sequential greeting/request: some proxies drop pipelined bytes.
int open_session(const Route& r, char opcode) {
  const Endpoint& first = r.proxy ? *r.proxy : r.target;
  int fd = ::socket(first.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&first.ss), first.len) != 0) {
    ::close(fd);
    return -1;
  }
  if (r.proxy) {
    const uint8_t greet[] = {5, 1, 0};
    uint8_t sel[2];
    if (!write_all(fd, greet, sizeof greet) || !read_exact(fd, sel, 2) || sel[0] != 5 || sel[1] != 0) {
      ::close(fd);
      return -1;
    }
    uint8_t req[22] = {5, 1, 0};
    std::size_t n = 3;
    if (r.target.ss.ss_family == AF_INET) {
      const auto* v4 = reinterpret_cast<const sockaddr_in*>(&r.target.ss);
      req[n++] = 1;
      std::memcpy(req + n, &v4->sin_addr, 4);
      n += 4;
      std::memcpy(req + n, &v4->sin_port, 2);
    } else {
      const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&r.target.ss);
      req[n++] = 4;
      std::memcpy(req + n, &v6->sin6_addr, 16);
      n += 16;
      std::memcpy(req + n, &v6->sin6_port, 2);
    }
    n += 2;
    uint8_t head[4];
    if (!write_all(fd, req, n) || !read_exact(fd, head, 4) || head[0] != 5 || head[1] != 0) {
      ::close(fd);
      return -1;
    }
    std::size_t rest = head[3] == 1 ? 4 + 2 : head[3] == 4 ? 16 + 2 : 0;
    uint8_t tail[260];
    if (head[3] == 3) {
      uint8_t len = 0;
      if (!read_exact(fd, &len, 1)) {
        ::close(fd);
        return -1;
      }
      rest = std::size_t{len} + 2;
    }
    if (rest == 0 || !read_exact(fd, tail, rest)) {
      ::close(fd);
      return -1;
    }
  }
  if (!write_all(fd, &opcode, 1)) {
    ::close(fd);
    return -1;
  }
  return fd;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int run_stream(const Args& a) {
  Route route = parse_route(a);
  const long streams = std::max(1L, a.num("streams", 1));
  const double seconds = static_cast<double>(std::max(1L, a.num("seconds", 5)));
  const std::string dir = a.get("dir", "down");
  if (dir != "down" && dir != "up") usage("--dir down|up");
  const bool down = dir == "down";

  std::vector<int> fds;
  for (long i = 0; i < streams; ++i) {
    int fd = open_session(route, down ? 'D' : 'U');
    if (fd < 0) {
      std::printf("{\"error\":\"could not open stream %ld: %s\"}\n", i, std::strerror(errno));
      return 0;
    }
    timeval tv{0, 200000};  // wake up to look at the clock
    setsockopt(fd, SOL_SOCKET, down ? SO_RCVTIMEO : SO_SNDTIMEO, &tv, sizeof tv);
    fds.push_back(fd);
  }
  std::atomic<uint64_t> total{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  Clock::time_point t0;
  Clock::time_point deadline;
  for (int fd : fds) {
    threads.emplace_back([&, fd] {
      std::vector<uint8_t> buf(kBulk, 0x5a);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      uint64_t mine = 0;
      while (Clock::now() < deadline) {
        ssize_t n = down ? ::recv(fd, buf.data(), buf.size(), 0)
                         : ::send(fd, buf.data(), buf.size(), MSG_NOSIGNAL);
        if (n > 0) {
          mine += static_cast<uint64_t>(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
          continue;
        } else {
          break;
        }
      }
      total += mine;
    });
  }
  t0 = Clock::now();
  deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  go.store(true, std::memory_order_release);
  for (auto& t : threads) t.join();
  double elapsed = seconds_since(t0);
  for (int fd : fds) ::close(fd);
  double bytes = static_cast<double>(total.load());
  std::printf("{\"bytes\":%.0f,\"seconds\":%.3f,\"gbit_s\":%.3f,\"streams\":%ld,\"dir\":\"%s\"}\n", bytes,
              elapsed, bytes * 8 / elapsed / 1e9, streams, dir.c_str());
  return 0;
}

int run_rate(const Args& a) {
  Route route = parse_route(a);
  const long workers = std::max(1L, a.num("workers", 4));
  const double seconds = static_cast<double>(std::max(1L, a.num("seconds", 5)));
  const auto size = static_cast<std::size_t>(std::clamp(a.num("size", 100), 1L, 65535L));
  std::atomic<uint64_t> ok{0};
  std::atomic<uint64_t> errors{0};
  std::vector<std::vector<float>> lat(static_cast<std::size_t>(workers));
  const Clock::time_point t0 = Clock::now();
  const auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> threads;
  for (long w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      std::vector<uint8_t> out(size + 2, 0x42);
      out[0] = static_cast<uint8_t>(size >> 8);
      out[1] = static_cast<uint8_t>(size & 0xff);
      std::vector<uint8_t> in(size + 1);
      auto& mine = lat[static_cast<std::size_t>(w)];
      while (Clock::now() < deadline) {
        auto s0 = Clock::now();
        int fd = open_session(route, 'C');
        // The server echoes SIZE bytes and closes first; the session is done at its EOF.
        bool good = fd >= 0 && write_all(fd, out.data(), size + 2) && read_exact(fd, in.data(), size) &&
                    std::memcmp(in.data(), out.data() + 2, size) == 0 && ::recv(fd, in.data(), 1, 0) == 0;
        if (fd >= 0) ::close(fd);
        if (good) {
          ++ok;
          mine.push_back(static_cast<float>(seconds_since(s0) * 1000));
        } else {
          ++errors;
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  double elapsed = seconds_since(t0);
  std::vector<float> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double q) {
    return all.empty() ? 0.0 : static_cast<double>(all[static_cast<std::size_t>(q * static_cast<double>(all.size() - 1))]);
  };
  std::printf("{\"sessions\":%llu,\"errors\":%llu,\"seconds\":%.3f,\"per_second\":%.1f,"
              "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"workers\":%ld,\"size\":%zu}\n",
              static_cast<unsigned long long>(ok.load()), static_cast<unsigned long long>(errors.load()),
              elapsed, static_cast<double>(ok.load()) / elapsed, pct(0.5), pct(0.99), workers, size);
  return 0;
}

int run_rtt(const Args& a) {
  Route route = parse_route(a);
  const long count = std::max(1L, a.num("count", 5000));
  const auto size = static_cast<std::size_t>(std::clamp(a.num("size", 64), 1L, 65536L));
  constexpr long kWarmUp = 100;  // first-use costs (page faults, caches) are not the figure
  int fd = open_session(route, 'E');
  if (fd < 0) {
    std::printf("{\"error\":\"could not open the session: %s\"}\n", std::strerror(errno));
    return 0;
  }
  std::vector<uint8_t> out(size);
  std::vector<uint8_t> in(size);
  std::vector<float> us;
  us.reserve(static_cast<std::size_t>(count));
  uint64_t errors = 0;
  for (long i = 0; i < kWarmUp + count; ++i) {
    for (std::size_t j = 0; j < size; ++j) out[j] = static_cast<uint8_t>(i + static_cast<long>(j));
    auto t0 = Clock::now();
    if (!write_all(fd, out.data(), size) || !read_exact(fd, in.data(), size) || in != out) {
      ++errors;
      break;  // a broken stream cannot be resynchronized
    }
    if (i >= kWarmUp) us.push_back(static_cast<float>(seconds_since(t0) * 1e6));
  }
  ::close(fd);
  std::sort(us.begin(), us.end());
  auto pct = [&](double q) {
    return us.empty() ? 0.0 : static_cast<double>(us[static_cast<std::size_t>(q * static_cast<double>(us.size() - 1))]);
  };
  std::printf("{\"round_trips\":%zu,\"errors\":%llu,\"median_us\":%.1f,\"p99_us\":%.1f,\"size\":%zu}\n",
              us.size(), static_cast<unsigned long long>(errors), pct(0.5), pct(0.99), size);
  return 0;
}

int run_hold(const Args& a) {
  Route route = parse_route(a);
  const long count = a.num("count", 1000);
  raise_fd_limit();
  std::vector<int> fds;
  uint64_t errors = 0;
  const Clock::time_point t0 = Clock::now();
  for (long i = 0; i < count; ++i) {
    int fd = open_session(route, 'E');
    uint8_t b = 0x33;
    uint8_t back = 0;
    if (fd >= 0 && write_all(fd, &b, 1) && read_exact(fd, &back, 1) && back == b) {
      fds.push_back(fd);
    } else {
      if (fd >= 0) ::close(fd);
      ++errors;
    }
  }
  std::printf("{\"held\":%zu,\"errors\":%llu,\"seconds\":%.3f}\n", fds.size(),
              static_cast<unsigned long long>(errors), seconds_since(t0));
  std::fflush(stdout);
  char sink[256];
  while (::read(STDIN_FILENO, sink, sizeof sink) > 0) {
  }
  for (int fd : fds) ::close(fd);
  return 0;
}

// ------------------------------------------------------------------------- server side

struct Conn {
  int fd = -1;
  char mode = 0;  // 0 until the opcode (and for 'C' its 2-byte length) arrived
  std::vector<uint8_t> head;  // opcode bytes received so far
  std::size_t remaining = 0;  // 'C': bytes still to echo before the server closes
  std::vector<char> pending;  // echo bytes not yet written, from pending_off on
  std::size_t pending_off = 0;
};

class Worker {
 public:
  Worker() : ep_(epoll_create1(EPOLL_CLOEXEC)), bulk_(kBulk, 0xa5), buf_(kBulk) {}

  void adopt(int fd) {
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = c.get();
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      ::close(fd);
      return;
    }
    c.release();  // owned by the epoll set until drop()
  }

  [[noreturn]] void run() {
    epoll_event evs[256];
    for (;;) {
      int n = epoll_wait(ep_, evs, 256, -1);
      for (int i = 0; i < n; ++i) on_event(static_cast<Conn*>(evs[i].data.ptr), evs[i].events);
    }
  }

 private:
  void drop(Conn* c) {
    epoll_ctl(ep_, EPOLL_CTL_DEL, c->fd, nullptr);
    ::close(c->fd);
    delete c;
  }

  void want(Conn* c, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = c;
    epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &ev);
  }

  void on_event(Conn* c, uint32_t events) {
    if (c->mode == 'D') {
      if (events & (EPOLLERR | EPOLLHUP)) return drop(c);
      if (events & EPOLLIN) {  // EOF or stray bytes from the client
        ssize_t r = ::recv(c->fd, buf_.data(), buf_.size(), 0);
        if (r == 0 || (r < 0 && errno != EAGAIN)) return drop(c);
      }
      for (int i = 0; i < 16; ++i) {
        ssize_t w = ::send(c->fd, bulk_.data(), bulk_.size(), MSG_NOSIGNAL);
        if (w < 0) {
          if (errno == EAGAIN) return;
          return drop(c);
        }
      }
      return;
    }
    if (events & EPOLLOUT) {
      while (c->pending_off < c->pending.size()) {
        ssize_t w = ::send(c->fd, c->pending.data() + c->pending_off, c->pending.size() - c->pending_off,
                           MSG_NOSIGNAL);
        if (w < 0) {
          if (errno == EAGAIN) return;
          return drop(c);
        }
        c->pending_off += static_cast<std::size_t>(w);
      }
      c->pending.clear();
      c->pending_off = 0;
      want(c, EPOLLIN);
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    for (int round = 0; round < 16; ++round) {
      ssize_t r = ::recv(c->fd, buf_.data(), buf_.size(), 0);
      if (r == 0) return drop(c);
      if (r < 0) {
        if (errno == EAGAIN) return;
        return drop(c);
      }
      std::size_t off = 0;
      if (c->mode == 0) {
        if (c->head.empty()) c->head.push_back(buf_[off++]);
        const char op = static_cast<char>(c->head[0]);
        const std::size_t need = op == 'C' ? 3 : 1;
        while (off < static_cast<std::size_t>(r) && c->head.size() < need) c->head.push_back(buf_[off++]);
        if (c->head.size() < need) continue;
        c->mode = op;
        if (op == 'C') c->remaining = std::size_t{c->head[1]} << 8 | c->head[2];
        if (c->mode == 'D') {
          want(c, EPOLLIN | EPOLLOUT);
          return;
        }
        if (c->mode != 'U' && c->mode != 'E' && c->mode != 'C') return drop(c);
      }
      if (c->mode == 'C') {
        // Echo `remaining` bytes, then FIN first: the TIME_WAIT lands on this side (the
        // listening port), not on an ephemeral port of the proxy or the client, so a long
        // rate run does not exhaust ephemeral ports for the servers measured after it.
        std::size_t n = std::min(c->remaining, static_cast<std::size_t>(r) - off);
        if (n > 0 && !write_all(c->fd, buf_.data() + off, n)) return drop(c);
        c->remaining -= n;
        if (c->remaining == 0) ::shutdown(c->fd, SHUT_WR);
        continue;
      }
      if (c->mode == 'E' && static_cast<std::size_t>(r) > off) {
        const char* p = reinterpret_cast<const char*>(buf_.data()) + off;
        std::size_t n = static_cast<std::size_t>(r) - off;
        if (c->pending.empty()) {
          ssize_t w = ::send(c->fd, p, n, MSG_NOSIGNAL);
          if (w < 0 && errno != EAGAIN) return drop(c);
          std::size_t done = w > 0 ? static_cast<std::size_t>(w) : 0;
          p += done;
          n -= done;
        }
        if (n > 0) {
          c->pending.insert(c->pending.end(), p, p + n);
          want(c, EPOLLOUT);
          return;
        }
      }
    }
  }

  int ep_;
  std::vector<uint8_t> bulk_;
  std::vector<uint8_t> buf_;
};

int run_server(const Args& a) {
  raise_fd_limit();
  auto ep = parse_endpoint(a.get("listen", "127.0.0.1:0"));
  if (!ep) usage("bad --listen");
  const long nthreads = std::max(1L, a.num("threads", 2));
  int lfd = ::socket(ep->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (lfd < 0 || ::bind(lfd, reinterpret_cast<const sockaddr*>(&ep->ss), ep->len) != 0 || ::listen(lfd, 4096) != 0) {
    std::fprintf(stderr, "socks_load server: cannot listen on %s: %s\n", a.get("listen", "").c_str(),
                 std::strerror(errno));
    return 1;
  }
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  getsockname(lfd, reinterpret_cast<sockaddr*>(&bound), &blen);
  std::vector<std::unique_ptr<Worker>> workers;
  for (long i = 0; i < nthreads; ++i) {
    workers.push_back(std::make_unique<Worker>());
    std::thread([w = workers.back().get()] { w->run(); }).detach();
  }
  std::printf("listening on %s\n", to_text(bound).c_str());
  std::fflush(stdout);
  for (std::size_t next = 0;; ++next) {
    int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      std::perror("accept");
      return 1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    workers[next % workers.size()]->adopt(fd);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage("a mode is required: server, stream, rate, rtt or hold");
  std::string mode = argv[1];
  Args a = parse_args(argc, argv, 2);
  if (mode == "server") return run_server(a);
  if (mode == "stream") return run_stream(a);
  if (mode == "rate") return run_rate(a);
  if (mode == "rtt") return run_rtt(a);
  if (mode == "hold") return run_hold(a);
  usage(("unknown mode " + mode).c_str());
}
