// conn_rate: new TCP connections per second for short HTTP-like exchanges, for the
// tunsocks benchmark (bench/tunsocks/run).
//
//   conn_rate server --listen IP:PORT [--response 100]
//       Per connection: reads a request up to its blank line ("\r\n\r\n"), answers an
//       HTTP/1.0-style response of RESPONSE bytes (headers + body) and closes, as an
//       HTTP/1.0 server does. The server closing first keeps TIME_WAIT on the server side,
//       so the client's ephemeral ports are never exhausted by a long run. Prints
//       `listening on IP:PORT` once ready; runs until killed.
//   conn_rate client --connect IP:PORT [--seconds 10] [--concurrency 8] [--request 100]
//       CONCURRENCY threads, each back to back: connect, send a REQUEST-byte GET, read the
//       response to EOF, close. Each exchange is timed (connect to EOF). Prints one JSON
//       line: {"seconds","concurrency","connections","errors","per_second","p50_ms",
//       "p90_ms","p99_ms","max_ms","response_bytes","errors_by_kind":{...}}.
//
// Exit status: 0 when the measurement ran (errors are reported in the JSON), 2 for bad usage.

#include <atomic>
#include <mutex>
#include <sys/epoll.h>
#include <thread>
#include <unordered_map>

#include "tcp_tool.h"

namespace {

using namespace tcp_tool;

constexpr std::string_view kEndOfHeaders = "\r\n\r\n";

struct ServerConnection {
  std::string request;
  std::string pending;  // response bytes not yet written
  bool answered = false;
};

std::string make_response(std::size_t size) {
  // Headers first; the body fills the rest so the whole response is `size` bytes.
  std::string response;
  for (std::size_t body = 0;; ++body) {
    response =
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body) +
        "\r\n\r\n";
    if (response.size() + body >= size) {
      response.append(body, 'x');
      return response;
    }
  }
}

std::string make_request(std::size_t size) {
  std::string request = "GET /conn_rate HTTP/1.0\r\nHost: bench\r\nX-Pad: ";
  const std::size_t fixed = request.size() + 2 + kEndOfHeaders.size();
  request.append(size > fixed ? size - fixed : 0, 'p');
  return request + "\r\n" + std::string(kEndOfHeaders);
}

[[noreturn]] void serve(const Endpoint& listen_address, std::size_t response_size) {
  const std::string response = make_response(response_size);
  const int listener = listen_on(listen_address);
  const int epoll = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll < 0) die("epoll_create1");
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = listener;
  ::epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event);
  std::unordered_map<int, ServerConnection> connections;
  std::vector<char> buffer(16 * 1024);
  std::vector<epoll_event> events(256);

  auto drop = [&](int fd) {
    ::epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    connections.erase(fd);
  };
  // true when the response is fully written (then the connection is closed).
  auto flush = [&](int fd, ServerConnection& connection) {
    while (!connection.pending.empty()) {
      const ssize_t n =
          ::send(fd, connection.pending.data(), connection.pending.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) {
        epoll_event change{};
        change.events = EPOLLOUT;
        change.data.fd = fd;
        ::epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &change);
        return false;
      }
      if (n <= 0) break;
      connection.pending.erase(0, static_cast<std::size_t>(n));
    }
    drop(fd);
    return true;
  };

  for (;;) {
    const int ready = wait_events(epoll, events, -1);
    for (int i = 0; i < ready; ++i) {
      const int fd = events[i].data.fd;
      if (fd == listener) {
        accept_pending(epoll, listener,
                       [&](int client) { connections.emplace(client, ServerConnection{}); });
        continue;
      }
      auto found = connections.find(fd);
      if (found == connections.end()) continue;
      ServerConnection& connection = found->second;
      if (connection.answered) {
        flush(fd, connection);
        continue;
      }
      const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) {
        drop(fd);
        continue;
      }
      connection.request.append(buffer.data(), static_cast<std::size_t>(n));
      if (connection.request.find(kEndOfHeaders) != std::string::npos) {
        connection.answered = true;
        connection.pending = response;
        flush(fd, connection);
      } else if (connection.request.size() > 64 * 1024) {
        drop(fd);
      }
    }
  }
}

struct ThreadResult {
  std::vector<double> latencies_ms;
  std::map<std::string, long> errors;
  std::size_t response_bytes = 0;
};

void run_client_thread(const Endpoint& target, const std::string& request,
                       Clock::time_point deadline, ThreadResult& result) {
  std::vector<char> buffer(16 * 1024);
  const timeval timeout{10, 0};
  while (Clock::now() < deadline) {
    const auto start = Clock::now();
    const int fd = ::socket(target.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      ++result.errors[std::string("socket:") + strerrorname_np(errno)];
      continue;
    }
    // SO_SNDTIMEO also bounds connect(): a lost SYN cannot stall a thread for minutes.
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    set_nodelay(fd);
    const char* failed = nullptr;
    std::size_t received = 0;
    if (::connect(fd, target.raw(), target.length) < 0) {
      failed = "connect";
    } else if (!write_all(fd, reinterpret_cast<const std::uint8_t*>(request.data()),
                          request.size())) {
      failed = "send";
    } else {
      for (;;) {
        const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) failed = "recv";
        if (n <= 0) break;
        received += static_cast<std::size_t>(n);
      }
    }
    if (failed == nullptr && received == 0) {
      failed = "empty";
      errno = 0;
    }
    const int error = errno;
    ::close(fd);
    if (failed != nullptr) {
      ++result.errors[std::string(failed) + ":" + (error ? strerrorname_np(error) : "none")];
      continue;
    }
    result.response_bytes = received;
    result.latencies_ms.push_back(seconds_since(start) * 1e3);
  }
}

int client(const Endpoint& target, long seconds, long concurrency, std::size_t request_size) {
  const std::string request = make_request(request_size);
  std::vector<ThreadResult> results(static_cast<std::size_t>(concurrency));
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::seconds(seconds);
  {
    std::vector<std::jthread> threads;
    for (auto& result : results) {
      threads.emplace_back([&target, &request, deadline, &result] {
        run_client_thread(target, request, deadline, result);
      });
    }
  }
  const double elapsed = seconds_since(start);

  std::vector<double> latencies;
  std::map<std::string, long> errors;
  long error_count = 0;
  std::size_t response_bytes = 0;
  for (const auto& result : results) {
    latencies.insert(latencies.end(), result.latencies_ms.begin(), result.latencies_ms.end());
    for (const auto& [kind, count] : result.errors) {
      errors[kind] += count;
      error_count += count;
    }
    response_bytes = std::max(response_bytes, result.response_bytes);
  }
  std::sort(latencies.begin(), latencies.end());
  std::string kinds = "{";
  for (const auto& [kind, count] : errors) {
    if (kinds.size() > 1) kinds += ",";
    kinds += "\"" + kind + "\":" + std::to_string(count);
  }
  kinds += "}";
  std::printf(
      "{\"seconds\":%.3f,\"concurrency\":%ld,\"request_bytes\":%zu,\"response_bytes\":%zu,"
      "\"connections\":%zu,\"errors\":%ld,\"per_second\":%.1f,\"p50_ms\":%.3f,"
      "\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"errors_by_kind\":%s}\n",
      elapsed, concurrency, request.size(), response_bytes, latencies.size(), error_count,
      static_cast<double>(latencies.size()) / elapsed, percentile(latencies, 0.50),
      percentile(latencies, 0.90), percentile(latencies, 0.99),
      latencies.empty() ? 0.0 : latencies.back(), kinds.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  g_program = "conn_rate";
  if (argc < 2) usage("usage: conn_rate server|client [options]");
  const std::string_view mode = argv[1];
  raise_fd_limit();
  if (mode == "server") {
    const Options options(argc, argv, 2, {"--listen", "--response"});
    serve(options.endpoint("--listen"),
          static_cast<std::size_t>(options.number("--response", 100, 1, 1 << 20)));
  }
  if (mode == "client") {
    const Options options(argc, argv, 2, {"--connect", "--seconds", "--concurrency", "--request"});
    return client(options.endpoint("--connect"), options.number("--seconds", 10, 1, 3600),
                  options.number("--concurrency", 8, 1, 1024),
                  static_cast<std::size_t>(options.number("--request", 100, 1, 60 * 1024)));
  }
  usage("the mode is server or client");
}
