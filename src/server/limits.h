// Connection limits: a total and a per-client-address cap. Pure bookkeeping (no I/O), so
// the accept path asks one question and the tests can ask it too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <unordered_map>

#include "net/ip.h"

namespace tunsocks::server {

class ConnectionLimiter {
 public:
  enum class Refusal : std::uint8_t { none, total, per_client };

  ConnectionLimiter(std::uint32_t max_total, std::uint32_t max_per_client)
      : max_total_(max_total), max_per_client_(max_per_client) {}

  // Counts the connection when it fits; otherwise says which limit it hit. IPv4-mapped
  // IPv6 clients count as their IPv4 address (the same host).
  [[nodiscard]] Refusal try_acquire(const net::IpAddress& client);
  // Gives back what try_acquire() counted.
  void release(const net::IpAddress& client);

  [[nodiscard]] std::size_t total() const { return total_; }
  [[nodiscard]] std::size_t for_client(const net::IpAddress& client) const;
  [[nodiscard]] std::uint32_t max_total() const { return max_total_; }
  [[nodiscard]] std::uint32_t max_per_client() const { return max_per_client_; }

 private:
  std::uint32_t max_total_;
  std::uint32_t max_per_client_;
  std::size_t total_ = 0;
  std::unordered_map<net::IpAddress, std::uint32_t, net::IpAddressHash> per_client_;
};

[[nodiscard]] std::string_view describe(ConnectionLimiter::Refusal refusal);

}  // namespace tunsocks::server
