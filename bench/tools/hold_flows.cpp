// hold_flows: open many TCP connections and keep them open and idle, for the memory
// figures of the tunsocks benchmark (bench/tunsocks/run).
//
//   hold_flows server --listen IP:PORT
//       Accepts every connection and holds it; echoes whatever a connection sends (the
//       client's one-byte proof). Prints `listening on IP:PORT` once ready; runs until
//       killed.
//   hold_flows client --connect IP:PORT [--count 1000] [--parallel 256] [--timeout 120]
//                     [--close fin|reset]
//       Opens COUNT connections, at most PARALLEL being set up at a time (non-blocking
//       connects on epoll). Each one counts as held once a one-byte echo has come back
//       through it, which proves the whole path (through tunsocks: the lwIP pcb, the SOCKS
//       session and the server's socket) exists. Prints one JSON line
//       {"requested","held","failed","seconds","errors_by_kind":{...}} and then holds
//       every connection, idle, until SIGTERM or SIGINT; then closes them all and exits.
//       `fin` (default) is an ordinary close; `reset` sends RSTs (no TIME_WAIT), but a
//       burst of thousands of RSTs can overflow a TUN queue, and a lost RST is never
//       retransmitted.
//
// Exit status: 0 when the run completed (failures are reported in the JSON), 2 for bad usage.

#include <signal.h>
#include <sys/epoll.h>
#include <unordered_map>

#include "tcp_tool.h"

namespace {

using namespace tcp_tool;

[[noreturn]] void serve(const Endpoint& listen_address) {
  const int listener = listen_on(listen_address, 65535);
  const int epoll = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll < 0) die("epoll_create1");
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = listener;
  ::epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event);
  std::vector<epoll_event> events(1024);
  char buffer[512];
  for (;;) {
    const int ready = wait_events(epoll, events, -1);
    for (int i = 0; i < ready; ++i) {
      const int fd = events[i].data.fd;
      if (fd == listener) {
        const int stopped = accept_pending(epoll, listener, [](int) {});
        if (stopped == EMFILE || stopped == ENFILE) {
          std::fprintf(stderr, "hold_flows: accept: %s\n", std::strerror(stopped));
        }
        continue;
      }
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) {
        ::epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nullptr);
        ::close(fd);
        continue;
      }
      // The echo is a byte or two: it always fits the empty send buffer of an idle flow.
      (void)::send(fd, buffer, static_cast<std::size_t>(n), MSG_NOSIGNAL);
    }
  }
}

enum class Stage { connecting, awaiting_echo };

int client(const Endpoint& target, long count, long parallel, long timeout_s, bool reset) {
  // Blocked before any thread or socket exists, so sigwait() below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  const int epoll = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll < 0) die("epoll_create1");
  std::unordered_map<int, Stage> in_setup;
  std::vector<int> held;
  held.reserve(static_cast<std::size_t>(count));
  std::map<std::string, long> errors;
  long started = 0;
  long failed = 0;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::seconds(timeout_s);

  auto fail = [&](int fd, const char* what, int error) {
    ::epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nullptr);
    close_with_reset(fd);
    in_setup.erase(fd);
    ++failed;
    ++errors[std::string(what) + ":" + (error ? strerrorname_np(error) : "eof")];
  };

  std::vector<epoll_event> events(1024);
  while ((started < count || !in_setup.empty()) && Clock::now() < deadline) {
    while (started < count && static_cast<long>(in_setup.size()) < parallel) {
      ++started;
      const int fd = ::socket(target.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        ++failed;
        ++errors[std::string("socket:") + strerrorname_np(errno)];
        continue;
      }
      if (::connect(fd, target.raw(), target.length) < 0 && errno != EINPROGRESS) {
        ++failed;
        ++errors[std::string("connect:") + strerrorname_np(errno)];
        ::close(fd);
        continue;
      }
      in_setup.emplace(fd, Stage::connecting);
      epoll_event added{};
      added.events = EPOLLOUT;
      added.data.fd = fd;
      ::epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &added);
    }
    const int ready = wait_events(epoll, events, 100);
    for (int i = 0; i < ready; ++i) {
      const int fd = events[i].data.fd;
      auto found = in_setup.find(fd);
      if (found == in_setup.end()) continue;
      if (found->second == Stage::connecting) {
        int error = 0;
        socklen_t length = sizeof error;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
        const char proof = 'h';
        if (error != 0) {
          fail(fd, "connect", error);
        } else if (::send(fd, &proof, 1, MSG_NOSIGNAL) != 1) {
          fail(fd, "send", errno);
        } else {
          found->second = Stage::awaiting_echo;
          epoll_event change{};
          change.events = EPOLLIN;
          change.data.fd = fd;
          ::epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &change);
        }
        continue;
      }
      char echo = 0;
      const ssize_t n = ::recv(fd, &echo, 1, 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n != 1) {
        fail(fd, "echo", n < 0 ? errno : 0);
        continue;
      }
      // Held: idle from now on, out of the epoll set.
      ::epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nullptr);
      in_setup.erase(found);
      held.push_back(fd);
    }
  }
  for (const auto& [fd, stage] : in_setup) {
    close_with_reset(fd);
    ++failed;
    ++errors[stage == Stage::connecting ? "connect:timeout" : "echo:timeout"];
  }
  in_setup.clear();
  failed += count - started;

  std::string kinds = "{";
  for (const auto& [kind, n] : errors) {
    if (kinds.size() > 1) kinds += ",";
    kinds += "\"" + kind + "\":" + std::to_string(n);
  }
  kinds += "}";
  std::printf(
      "{\"requested\":%ld,\"held\":%zu,\"failed\":%ld,\"seconds\":%.3f,"
      "\"errors_by_kind\":%s}\n",
      count, held.size(), failed, seconds_since(start), kinds.c_str());
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  for (const int fd : held) {
    if (reset) {
      close_with_reset(fd);
    } else {
      ::close(fd);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  g_program = "hold_flows";
  if (argc < 2) usage("usage: hold_flows server|client [options]");
  const std::string_view mode = argv[1];
  const rlim_t limit = raise_fd_limit();
  if (mode == "server") {
    const Options options(argc, argv, 2, {"--listen"});
    serve(options.endpoint("--listen"));
  }
  if (mode == "client") {
    const Options options(argc, argv, 2,
                          {"--connect", "--count", "--parallel", "--timeout", "--close"});
    const long count = options.number("--count", 1000, 1, 10'000'000);
    if (static_cast<rlim_t>(count) + 16 > limit) {
      std::fprintf(stderr, "hold_flows: --count %ld needs more descriptors than the limit %llu\n",
                   count, static_cast<unsigned long long>(limit));
      return 2;
    }
    const std::string close = options.text("--close", "fin");
    if (close != "fin" && close != "reset") usage("--close is fin or reset");
    return client(options.endpoint("--connect"), count, options.number("--parallel", 256, 1, 65535),
                  options.number("--timeout", 120, 1, 3600), close == "reset");
  }
  usage("the mode is server or client");
}
