// socksd's counters: what SIGUSR1 prints as one `counters {...}` JSON line. Per-event
// things (a dropped datagram, a refused connection) are counted here, never logged one
// line each.
#pragma once

#include <cstdint>
#include <string>

namespace tunsocks::server {

struct Counters {
  std::uint64_t sessions_open = 0;
  std::uint64_t sessions_total = 0;
  std::uint64_t bytes_up = 0;    // client → destination (TCP payload and UDP payload)
  std::uint64_t bytes_down = 0;  // destination → client
  std::uint64_t auth_failures = 0;
  std::uint64_t denied = 0;  // requests refused by a rule or the safe defaults
  std::uint64_t udp_associations_open = 0;
  std::uint64_t udp_datagrams_up = 0;
  std::uint64_t udp_datagrams_down = 0;
  std::uint64_t udp_datagrams_dropped = 0;
  std::uint64_t handshake_timeouts = 0;
  std::uint64_t idle_timeouts = 0;
  std::uint64_t limit_refusals = 0;  // connections over max_connections(_per_client), and
                                     // UDP ASSOCIATEs over max_udp_associations
  std::uint64_t connect_failures = 0;
  std::uint64_t resolve_failures = 0;

  // {"sessions_open":1,...} in a fixed key order, no spaces.
  [[nodiscard]] std::string to_json() const;
};

}  // namespace tunsocks::server
