// The DNS client's bookkeeping for relayed queries: tunsocks sends every application's
// relayed DNS query through ONE UDP association (a resolver library that uses a fresh
// source port per query would otherwise open a SOCKS session per query, which peers do and
// which makes page loads several times slower). Queries from different sockets may carry
// the same ID, so each gets a fresh ID of ours on the way out, and the reply is mapped
// back to the socket, the address it asked and its own ID.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <unordered_map>

#include "net/endpoint.h"

namespace tunsocks::tunnel {

class DnsIdMap {
 public:
  struct Query {
    net::Endpoint app;     // the application's socket
    net::Endpoint asked;   // the resolver address it sent to (replies come from there)
    std::uint16_t id = 0;  // its own query ID
    std::uint64_t sent_ms = 0;
  };

  // An unanswered query is forgotten after this long (resolvers retry after 1-5 s).
  static constexpr std::uint64_t kLifetimeMs = 10'000;
  // At most this many queries in flight; beyond, new ones are dropped (and counted).
  static constexpr std::size_t kMaxInFlight = 8192;

  DnsIdMap();

  // Our ID for `query`; nullopt when too many are in flight.
  [[nodiscard]] std::optional<std::uint16_t> add(const Query& query, std::uint64_t now_ms);
  // The query our ID `id` stands for, removed from the map; nullopt for an unknown or
  // expired ID (a late or forged reply).
  [[nodiscard]] std::optional<Query> take(std::uint16_t id, std::uint64_t now_ms);
  [[nodiscard]] std::size_t in_flight() const { return queries_.size(); }

 private:
  void expire(std::uint64_t now_ms);

  std::unordered_map<std::uint16_t, Query> queries_;
  // Random IDs: an off-path attacker must not be able to predict the next one (RFC 5452).
  std::mt19937 random_;
  std::uint64_t next_sweep_ms_ = 0;
};

}  // namespace tunsocks::tunnel
