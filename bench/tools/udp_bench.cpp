// udp_bench: UDP and DNS figures for the tunsocks benchmark (bench/tunsocks/run).
//
//   udp_bench server --listen IP:PORT
//       One UDP socket. A datagram starting with 'E' is echoed; one starting with 'S'
//       (sink) is only counted; 'Q' is answered with the count of sink datagrams seen
//       from that sender so far, as text. Prints `listening on IP:PORT`; runs until killed.
//   udp_bench rtt --connect IP:PORT [--size 64] [--count 5000] [--warmup 200]
//       One socket; COUNT times: send SIZE bytes, wait for the echo (1 s, then counted as
//       lost and the next one is sent; no retry). Prints {"size","count","lost","p50_us",
//       "p99_us","min_us","max_us","mean_us"} over the answered ones.
//   udp_bench flood --connect IP:PORT [--size 512] [--seconds 5]
//       One socket sends sink datagrams as fast as sendto() returns for SECONDS, waits
//       1 s, asks the server how many arrived. Prints {"size","sent","received",
//       "sent_per_s","received_per_s","loss_share"}: one-way datagrams per second with loss.
//   udp_bench dns --connect IP:PORT [--seconds 5] [--window 32] [--names 1000]
//       A queries for n<i>.bench.test (i cycling over NAMES), WINDOW in flight on one
//       socket; a query unanswered for 1 s counts as lost and is replaced. Prints
//       {"queries","answers","lost","qps","p50_us","p99_us"}; only replies with an ID in
//       flight, QR set, RCODE 0 and at least one answer count.
//   udp_bench fresh --connect IP:PORT [--seconds 10] [--window 16] [--size 40]
//                   [--count N] [--gap-ms MS]
//       DNS-like traffic from short-lived sockets: every query is one echo datagram from a
//       new socket (a new source port), which is closed once its reply came or after 1 s
//       (a timeout; no retry). WINDOW queries in flight; with COUNT, that many queries
//       (or fewer when the time is up); GAP between one send and the next. Prints
//       {"window","seconds", "queries","answers","timeouts","wrong","qps","p50_us","p99_us",...};
//       only byte-exact echoes count as answers.
//   udp_bench echo --connect IP:PORT [--pps 50000] [--seconds 10] [--size 64] [--tick-us 1000]
//       Paced echo on one socket: every TICK the datagrams due by then at PPS are sent in
//       one sendmmsg (a late tick catches up), each numbered with bytes that follow from
//       its number; replies are read in between. After the last send, 1 s for stragglers.
//       Prints {"pps","size","seconds","sent","received","lost","loss_share","duplicates",
//       "wrong","reordered","sent_per_s","p50_us","p99_us",...}: only byte-exact echoes of
//       a datagram sent count, the latency is from its send to its echo.
//
// Exit status: 0 when the measurement ran, 1 on a socket error, 2 for bad usage.

#include <array>
#include <numeric>
#include <poll.h>
#include <random>
#include <sys/socket.h>
#include <unordered_map>

#include "tcp_tool.h"

namespace {

using namespace tcp_tool;

int udp_socket(int family, int size = 4 << 20) {
  const int fd = ::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  // Root may go beyond net.core.rmem_max: the tool must not be where datagrams are lost.
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  return fd;
}

// Paced echo at 100k/s: a busy machine can leave a reader descheduled for 100 ms and more,
// and a 64-byte datagram over a veth costs up to a few KiB of buffer. The tools' sockets
// are not where the path under test may lose datagrams.
constexpr int kEchoSocketBuffer = 64 << 20;

int connected_socket(const Endpoint& peer, int buffer = 4 << 20) {
  const int fd = udp_socket(peer.family(), buffer);
  if (::connect(fd, peer.raw(), peer.length) != 0) die("connect");
  return fd;
}

// recv with a deadline in ms; -1 on timeout.
ssize_t recv_within(int fd, std::uint8_t* buffer, std::size_t size, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) <= 0) return -1;
  return ::recv(fd, buffer, size, 0);
}

std::string key_of(const sockaddr_storage& address, socklen_t length) {
  return std::string(reinterpret_cast<const char*>(&address), length);
}

[[noreturn]] void serve(const Endpoint& listen_address) {
  const int fd = udp_socket(listen_address.family(), kEchoSocketBuffer);
  if (::bind(fd, listen_address.raw(), listen_address.length) != 0) die("bind");
  std::printf("listening on %s\n", to_string(listen_address).c_str());
  std::fflush(stdout);
  std::unordered_map<std::string, std::uint64_t> sunk;
  // Batched both ways (recvmmsg, sendmmsg): the server shares the machine's cores with the
  // path under test, and at 100k echoes/s one syscall per datagram would be its bottleneck.
  constexpr std::size_t kBatch = 64;
  std::vector<std::vector<std::uint8_t>> buffers(kBatch, std::vector<std::uint8_t>(65536));
  std::array<iovec, kBatch> iov{};
  std::array<sockaddr_storage, kBatch> peers{};
  std::array<mmsghdr, kBatch> in{}, out{};
  std::array<std::string, kBatch> counts;
  std::array<iovec, kBatch> count_iov{};
  for (;;) {
    for (std::size_t i = 0; i < kBatch; ++i) {
      iov[i] = {buffers[i].data(), buffers[i].size()};
      in[i] = {};
      in[i].msg_hdr.msg_name = &peers[i];
      in[i].msg_hdr.msg_namelen = sizeof peers[i];
      in[i].msg_hdr.msg_iov = &iov[i];
      in[i].msg_hdr.msg_iovlen = 1;
    }
    const int n = ::recvmmsg(fd, in.data(), kBatch, MSG_WAITFORONE, nullptr);
    if (n <= 0) continue;
    unsigned replies = 0;
    for (int i = 0; i < n; ++i) {
      const std::uint8_t kind = in[i].msg_len > 0 ? buffers[i][0] : 0;
      const std::string key =
          kind == 'S' || kind == 'Q' ? key_of(peers[i], in[i].msg_hdr.msg_namelen) : std::string();
      mmsghdr& reply = out[replies];
      reply = {};
      reply.msg_hdr.msg_name = &peers[i];
      reply.msg_hdr.msg_namelen = in[i].msg_hdr.msg_namelen;
      if (kind == 'E') {
        iov[i].iov_len = in[i].msg_len;
        reply.msg_hdr.msg_iov = &iov[i];
      } else if (kind == 'S') {
        ++sunk[key];
        continue;
      } else if (kind == 'Q') {
        counts[i] = std::to_string(sunk[key]);
        count_iov[i] = {counts[i].data(), counts[i].size()};
        reply.msg_hdr.msg_iov = &count_iov[i];
      } else {
        continue;
      }
      reply.msg_hdr.msg_iovlen = 1;
      ++replies;
    }
    // A reply the kernel refuses (a peer gone: ECONNREFUSED) is skipped, not retried.
    for (unsigned done = 0; done < replies;) {
      const int sent = ::sendmmsg(fd, out.data() + done, replies - done, 0);
      done += sent > 0 ? static_cast<unsigned>(sent) : 1;
    }
  }
}

void print_latencies(std::vector<double>& samples) {
  std::sort(samples.begin(), samples.end());
  const double mean =
      samples.empty() ? 0 : std::accumulate(samples.begin(), samples.end(), 0.0) / samples.size();
  std::printf("\"p50_us\":%.1f,\"p99_us\":%.1f,\"min_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f}\n",
              percentile(samples, 0.5), percentile(samples, 0.99),
              samples.empty() ? 0 : samples.front(), samples.empty() ? 0 : samples.back(), mean);
}

int rtt(const Options& options) {
  const Endpoint peer = options.endpoint("--connect");
  const auto size = static_cast<std::size_t>(options.number("--size", 64, 1, 65000));
  const long count = options.number("--count", 5000, 1, 10'000'000);
  const long warmup = options.number("--warmup", 200, 0, 1'000'000);
  const int fd = connected_socket(peer);
  std::vector<std::uint8_t> payload(size, 'x');
  std::vector<std::uint8_t> reply(65536);
  payload[0] = 'E';
  std::vector<double> samples;
  long lost = 0;
  for (long i = 0; i < warmup + count; ++i) {
    std::memcpy(payload.data() + 1, &i, std::min(size - 1, sizeof i));
    const auto start = Clock::now();
    if (::send(fd, payload.data(), size, 0) < 0) die("send");
    // A reply to an earlier, late datagram is not this one's: wait for the right bytes.
    for (;;) {
      const ssize_t n = recv_within(fd, reply.data(), reply.size(), 1000);
      if (n < 0) {
        if (i >= warmup) ++lost;
        break;
      }
      if (static_cast<std::size_t>(n) == size &&
          std::equal(payload.begin(), payload.end(), reply.begin())) {
        if (i >= warmup) samples.push_back(seconds_since(start) * 1e6);
        break;
      }
    }
  }
  std::printf("{\"size\":%zu,\"count\":%ld,\"lost\":%ld,", size, count, lost);
  print_latencies(samples);
  return 0;
}

int flood(const Options& options) {
  const Endpoint peer = options.endpoint("--connect");
  const auto size = static_cast<std::size_t>(options.number("--size", 512, 1, 65000));
  const double seconds = static_cast<double>(options.number("--seconds", 5, 1, 3600));
  const int fd = connected_socket(peer);
  std::vector<std::uint8_t> payload(size, 's');
  payload[0] = 'S';
  std::uint64_t sent = 0;
  const auto start = Clock::now();
  while (seconds_since(start) < seconds) {
    for (int i = 0; i < 64; ++i) {
      if (::send(fd, payload.data(), size, 0) == static_cast<ssize_t>(size)) ++sent;
    }
  }
  const double elapsed = seconds_since(start);
  ::usleep(1'000'000);  // what is still queued somewhere arrives or is lost by now
  std::uint8_t reply[64];
  std::uint64_t received = 0;
  bool answered = false;
  for (int attempt = 0; attempt < 5 && !answered; ++attempt) {
    const std::uint8_t query = 'Q';
    ::send(fd, &query, 1, 0);
    const ssize_t n = recv_within(fd, reply, sizeof reply - 1, 1000);
    if (n > 0) {
      reply[n] = 0;
      received = std::strtoull(reinterpret_cast<const char*>(reply), nullptr, 10);
      answered = true;
    }
  }
  if (!answered) {
    std::fprintf(stderr, "udp_bench: the server did not answer the count query\n");
    return 1;
  }
  std::printf(
      "{\"size\":%zu,\"seconds\":%.3f,\"sent\":%llu,\"received\":%llu,\"sent_per_s\":%.0f,"
      "\"received_per_s\":%.0f,\"loss_share\":%.4f}\n",
      size, elapsed, static_cast<unsigned long long>(sent),
      static_cast<unsigned long long>(received), sent / elapsed, received / elapsed,
      sent ? 1.0 - static_cast<double>(received) / sent : 0.0);
  return 0;
}

std::vector<std::uint8_t> dns_query(std::uint16_t id, long index) {
  std::vector<std::uint8_t> out = {static_cast<std::uint8_t>(id >> 8),
                                   static_cast<std::uint8_t>(id),
                                   0x01,
                                   0x00,
                                   0,
                                   1,
                                   0,
                                   0,
                                   0,
                                   0,
                                   0,
                                   0};
  const std::string first = "n" + std::to_string(index);
  for (const std::string& label : {first, std::string("bench"), std::string("test")}) {
    out.push_back(static_cast<std::uint8_t>(label.size()));
    out.insert(out.end(), label.begin(), label.end());
  }
  out.insert(out.end(), {0, 0, 1, 0, 1});  // root, type A, class IN
  return out;
}

int dns(const Options& options) {
  const Endpoint peer = options.endpoint("--connect");
  const double seconds = static_cast<double>(options.number("--seconds", 5, 1, 3600));
  const long window = options.number("--window", 32, 1, 4096);
  const long names = options.number("--names", 1000, 1, 100'000);
  const int fd = connected_socket(peer);
  std::unordered_map<std::uint16_t, Clock::time_point> in_flight;
  std::mt19937 random(12345);
  std::uint64_t queries = 0, answers = 0, lost = 0;
  long next_name = 0;
  std::vector<double> samples;
  std::vector<std::uint8_t> reply(65536);
  auto send_one = [&] {
    std::uint16_t id;
    do {
      id = static_cast<std::uint16_t>(random());
    } while (in_flight.contains(id));
    const auto query = dns_query(id, next_name++ % names);
    if (::send(fd, query.data(), query.size(), 0) < 0) die("send");
    in_flight[id] = Clock::now();
    ++queries;
  };
  const auto start = Clock::now();
  while (static_cast<long>(in_flight.size()) < window)
    send_one();
  auto last_sweep = Clock::now();
  while (seconds_since(start) < seconds) {
    const ssize_t n = recv_within(fd, reply.data(), reply.size(), 100);
    if (n >= 12) {
      const auto id = static_cast<std::uint16_t>(reply[0] << 8 | reply[1]);
      const auto found = in_flight.find(id);
      const bool good =
          (reply[2] & 0x80) != 0 && (reply[3] & 0x0F) == 0 && (reply[6] | reply[7]) != 0;
      if (found != in_flight.end() && good) {
        samples.push_back(seconds_since(found->second) * 1e6);
        in_flight.erase(found);
        ++answers;
      }
    }
    if (seconds_since(last_sweep) > 0.1) {
      last_sweep = Clock::now();
      std::erase_if(in_flight, [&](const auto& entry) {
        if (seconds_since(entry.second) < 1.0) return false;
        ++lost;
        return true;
      });
    }
    while (static_cast<long>(in_flight.size()) < window)
      send_one();
  }
  const double elapsed = seconds_since(start);
  std::printf(
      "{\"window\":%ld,\"seconds\":%.3f,\"queries\":%llu,\"answers\":%llu,\"lost\":%llu,"
      "\"qps\":%.0f,",
      window, elapsed, static_cast<unsigned long long>(queries),
      static_cast<unsigned long long>(answers), static_cast<unsigned long long>(lost),
      answers / elapsed);
  print_latencies(samples);
  return 0;
}

int fresh(const Options& options) {
  const Endpoint peer = options.endpoint("--connect");
  const double seconds = static_cast<double>(options.number("--seconds", 10, 1, 3600));
  const auto window = static_cast<std::size_t>(options.number("--window", 16, 1, 1024));
  const auto size = static_cast<std::size_t>(options.number("--size", 40, 9, 1400));
  // 0: as many as the time allows.
  const auto count = static_cast<std::uint64_t>(options.number("--count", 0, 0, 100'000'000));
  const auto gap = std::chrono::milliseconds(options.number("--gap-ms", 0, 0, 10'000));
  struct Query {
    int fd = -1;
    std::uint64_t serial = 0;
    Clock::time_point sent;
  };
  std::vector<Query> in_flight;
  std::vector<pollfd> polls;
  std::vector<std::uint8_t> payload(size, 'q');
  std::vector<std::uint8_t> reply(2048);
  std::uint64_t serial = 0, queries = 0, answers = 0, timeouts = 0, wrong = 0;
  std::vector<double> samples;
  payload[0] = 'E';
  auto send_one = [&] {
    // A plain socket, not udp_socket(): the point is what a resolver library pays per query.
    const int fd = ::socket(peer.family(), SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket");
    if (::connect(fd, peer.raw(), peer.length) != 0) die("connect");
    ++serial;
    std::memcpy(payload.data() + 1, &serial, sizeof serial);
    if (::send(fd, payload.data(), size, 0) < 0) die("send");
    in_flight.push_back({fd, serial, Clock::now()});
    ++queries;
  };
  const auto start = Clock::now();
  auto next_send = start;
  while (seconds_since(start) < seconds) {
    auto more_to_send = [&] { return count == 0 || queries < count; };
    if (!more_to_send() && in_flight.empty()) break;
    while (more_to_send() && in_flight.size() < window && Clock::now() >= next_send) {
      send_one();
      next_send = Clock::now() + gap;
    }
    polls.clear();
    for (const Query& query : in_flight)
      polls.push_back({query.fd, POLLIN, 0});
    int wait_ms = 10;
    if (gap.count() > 0 && in_flight.empty()) {
      const auto until = std::chrono::ceil<std::chrono::milliseconds>(next_send - Clock::now());
      wait_ms = static_cast<int>(std::clamp<long long>(until.count(), 0, 10));
    }
    ::poll(polls.data(), polls.size(), wait_ms);
    std::vector<Query> still;
    for (std::size_t i = 0; i < in_flight.size(); ++i) {
      Query& query = in_flight[i];
      bool done = false;
      if (polls[i].revents != 0) {
        const ssize_t n = ::recv(query.fd, reply.data(), reply.size(), 0);
        std::memcpy(payload.data() + 1, &query.serial, sizeof query.serial);
        if (n == static_cast<ssize_t>(size) &&
            std::equal(payload.begin(), payload.end(), reply.begin())) {
          samples.push_back(seconds_since(query.sent) * 1e6);
          ++answers;
        } else {
          ++wrong;  // ICMP unreachable (ECONNREFUSED) or other bytes: not an answer
        }
        done = true;
      } else if (seconds_since(query.sent) >= 1.0) {
        ++timeouts;
        done = true;
      }
      if (done) {
        ::close(query.fd);
      } else {
        still.push_back(query);
      }
    }
    in_flight.swap(still);
  }
  const double elapsed = seconds_since(start);
  // What is still in flight at the end is neither answered nor a timeout.
  for (const Query& query : in_flight)
    ::close(query.fd);
  std::printf(
      "{\"window\":%zu,\"seconds\":%.3f,\"queries\":%llu,\"answers\":%llu,\"timeouts\":%llu,"
      "\"wrong\":%llu,\"qps\":%.0f,",
      window, elapsed, static_cast<unsigned long long>(queries - in_flight.size()),
      static_cast<unsigned long long>(answers), static_cast<unsigned long long>(timeouts),
      static_cast<unsigned long long>(wrong), answers / elapsed);
  print_latencies(samples);
  return 0;
}

// The echo mode's datagram number `serial`: 'E', the number, then bytes that follow from it,
// so that an echo is checked byte for byte without keeping what was sent.
void fill_echo_payload(std::vector<std::uint8_t>& payload, std::uint64_t serial) {
  payload[0] = 'E';
  std::memcpy(payload.data() + 1, &serial, sizeof serial);
  for (std::size_t i = 1 + sizeof serial; i < payload.size(); ++i)
    payload[i] = static_cast<std::uint8_t>(serial * 31 + i);
}

int echo(const Options& options) {
  const Endpoint peer = options.endpoint("--connect");
  const long pps = options.number("--pps", 50'000, 1, 2'000'000);
  const long seconds = options.number("--seconds", 10, 1, 600);
  const auto size = static_cast<std::size_t>(options.number("--size", 64, 9, 1400));
  const long tick_us = options.number("--tick-us", 1000, 10, 1'000'000);
  const auto total = static_cast<std::uint64_t>(pps) * static_cast<std::uint64_t>(seconds);
  if (total > 50'000'000) usage("--pps times --seconds may be at most 50000000");
  const int fd = connected_socket(peer, kEchoSocketBuffer);
  const int buffer = 4 << 20;
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buffer, sizeof buffer) != 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
  }

  // Per datagram: when it was sent (µs after start) and whether its echo came.
  std::vector<std::uint32_t> sent_at_us(total);
  std::vector<bool> answered(total);
  std::uint64_t sent = 0, received = 0, duplicates = 0, wrong = 0, reordered = 0;
  std::uint64_t highest = 0;
  bool any = false;
  std::vector<double> samples;
  samples.reserve(total);

  constexpr std::size_t kBatch = 64;
  std::vector<std::vector<std::uint8_t>> out(kBatch, std::vector<std::uint8_t>(size));
  std::vector<std::vector<std::uint8_t>> in(kBatch, std::vector<std::uint8_t>(2048));
  std::vector<std::uint8_t> expected(size);
  std::array<iovec, kBatch> out_iov{}, in_iov{};
  std::array<mmsghdr, kBatch> out_msg{}, in_msg{};
  for (std::size_t i = 0; i < kBatch; ++i) {
    out_iov[i] = {out[i].data(), size};
    in_iov[i] = {in[i].data(), in[i].size()};
  }

  const auto start = Clock::now();
  auto micros = [&] {
    return static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
  };
  auto read_replies = [&] {
    for (;;) {
      for (std::size_t i = 0; i < kBatch; ++i) {
        in_msg[i] = {};
        in_msg[i].msg_hdr.msg_iov = &in_iov[i];
        in_msg[i].msg_hdr.msg_iovlen = 1;
      }
      const int n = ::recvmmsg(fd, in_msg.data(), kBatch, MSG_DONTWAIT, nullptr);
      if (n <= 0) return;  // EAGAIN, or ECONNREFUSED for a datagram nobody took: counted lost
      const std::uint32_t now = micros();
      for (int i = 0; i < n; ++i) {
        const std::uint8_t* reply = in[i].data();
        std::uint64_t serial = 0;
        if (in_msg[i].msg_len != size || reply[0] != 'E') {
          ++wrong;
          continue;
        }
        std::memcpy(&serial, reply + 1, sizeof serial);
        if (serial >= sent) {
          ++wrong;
          continue;
        }
        fill_echo_payload(expected, serial);
        if (!std::equal(expected.begin(), expected.end(), reply)) {
          ++wrong;
        } else if (answered[serial]) {
          ++duplicates;
        } else {
          answered[serial] = true;
          ++received;
          samples.push_back(static_cast<double>(now - sent_at_us[serial]));
          if (any && serial < highest) ++reordered;
          highest = std::max(highest, serial);
          any = true;
        }
      }
    }
  };

  const auto tick = std::chrono::microseconds(tick_us);
  while (sent < total) {
    const double elapsed = seconds_since(start);
    const auto due =
        std::min(total, static_cast<std::uint64_t>(elapsed * static_cast<double>(pps)));
    while (sent < due) {
      const auto count = static_cast<unsigned>(std::min<std::uint64_t>(kBatch, due - sent));
      for (unsigned i = 0; i < count; ++i) {
        fill_echo_payload(out[i], sent + i);
        out_msg[i] = {};
        out_msg[i].msg_hdr.msg_iov = &out_iov[i];
        out_msg[i].msg_hdr.msg_iovlen = 1;
      }
      const std::uint32_t now = micros();
      const int n = ::sendmmsg(fd, out_msg.data(), count, 0);
      if (n < 0) {
        if (errno == EINTR || errno == ENOBUFS || errno == ECONNREFUSED) continue;
        // The socket's send buffer is full: read what came back, send the rest on the next
        // tick (the pace catches up).
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        die("sendmmsg");
      }
      for (int i = 0; i < n; ++i)
        sent_at_us[sent + static_cast<std::uint64_t>(i)] = now;
      sent += static_cast<std::uint64_t>(n);
    }
    read_replies();
    // Until the next tick boundary, or sooner when replies arrive. The boundary follows from
    // the clock, not from the number of wake-ups: each reply wakes this poll early, and a
    // tick advanced per wake-up ran seconds ahead of the clock at high rates, so the client
    // fell silent and then sent everything due in one burst.
    const auto now = Clock::now();
    const auto next_tick =
        start +
        (std::chrono::duration_cast<std::chrono::microseconds>(now - start) / tick + 1) * tick;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(next_tick - now).count();
    timespec timeout{static_cast<time_t>(ns / 1'000'000'000),
                     static_cast<long>(ns % 1'000'000'000)};
    pollfd p{fd, POLLIN, 0};
    ::ppoll(&p, 1, &timeout, nullptr);
  }
  const double send_seconds = seconds_since(start);
  // Stragglers: a second after the last send, or sooner once every echo is in.
  const auto last_send = Clock::now();
  while (received < sent && seconds_since(last_send) < 1.0) {
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 10);
    read_replies();
  }
  std::printf(
      "{\"pps\":%ld,\"size\":%zu,\"seconds\":%.3f,\"sent\":%llu,\"received\":%llu,"
      "\"lost\":%llu,\"loss_share\":%.6f,\"duplicates\":%llu,\"wrong\":%llu,"
      "\"reordered\":%llu,\"sent_per_s\":%.0f,",
      pps, size, send_seconds, static_cast<unsigned long long>(sent),
      static_cast<unsigned long long>(received), static_cast<unsigned long long>(sent - received),
      sent ? static_cast<double>(sent - received) / static_cast<double>(sent) : 0.0,
      static_cast<unsigned long long>(duplicates), static_cast<unsigned long long>(wrong),
      static_cast<unsigned long long>(reordered), static_cast<double>(sent) / send_seconds);
  print_latencies(samples);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  g_program = "udp_bench";
  if (argc < 2) usage("a mode is required: server, rtt, flood, dns, fresh or echo");
  const std::string_view mode = argv[1];
  if (mode == "server") serve(Options(argc, argv, 2, {"--listen"}).endpoint("--listen"));
  if (mode == "rtt")
    return rtt(Options(argc, argv, 2, {"--connect", "--size", "--count", "--warmup"}));
  if (mode == "flood") return flood(Options(argc, argv, 2, {"--connect", "--size", "--seconds"}));
  if (mode == "dns") {
    return dns(Options(argc, argv, 2, {"--connect", "--seconds", "--window", "--names"}));
  }
  if (mode == "fresh") {
    return fresh(Options(argc, argv, 2,
                         {"--connect", "--seconds", "--window", "--size", "--count", "--gap-ms"}));
  }
  if (mode == "echo") {
    return echo(Options(argc, argv, 2, {"--connect", "--pps", "--seconds", "--size", "--tick-us"}));
  }
  usage("unknown mode");
}
