#include "tunnel/dns_id_map.h"

#include <iterator>

namespace tunsocks::tunnel {

DnsIdMap::DnsIdMap() : random_(std::random_device{}()) {}

std::optional<std::uint16_t> DnsIdMap::add(const Query& query, std::uint64_t now_ms) {
  expire(now_ms);
  if (queries_.size() >= kMaxInFlight) return std::nullopt;
  // With at most 8192 of 65536 IDs taken, a free one is found in a few draws.
  for (int attempt = 0; attempt < 64; ++attempt) {
    const auto id = static_cast<std::uint16_t>(random_());
    auto [slot, inserted] = queries_.try_emplace(id, query);
    if (inserted) {
      slot->second.sent_ms = now_ms;
      return id;
    }
  }
  return std::nullopt;
}

std::optional<DnsIdMap::Query> DnsIdMap::take(std::uint16_t id, std::uint64_t now_ms) {
  auto found = queries_.find(id);
  if (found == queries_.end()) return std::nullopt;
  Query query = found->second;
  queries_.erase(found);
  if (now_ms - query.sent_ms > kLifetimeMs) return std::nullopt;
  return query;
}

void DnsIdMap::expire(std::uint64_t now_ms) {
  // A sweep at most once a second keeps add() O(1) on average.
  if (now_ms < next_sweep_ms_) return;
  next_sweep_ms_ = now_ms + 1000;
  for (auto it = queries_.begin(); it != queries_.end();) {
    it = now_ms - it->second.sent_ms > kLifetimeMs ? queries_.erase(it) : std::next(it);
  }
}

}  // namespace tunsocks::tunnel
