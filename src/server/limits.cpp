#include "server/limits.h"

namespace tunsocks::server {

ConnectionLimiter::Refusal ConnectionLimiter::try_acquire(const net::IpAddress& client) {
  if (total_ >= max_total_) return Refusal::total;
  auto& count = per_client_[client.unmapped()];
  if (count >= max_per_client_) {
    if (count == 0) per_client_.erase(client.unmapped());
    return Refusal::per_client;
  }
  ++count;
  ++total_;
  return Refusal::none;
}

void ConnectionLimiter::release(const net::IpAddress& client) {
  auto it = per_client_.find(client.unmapped());
  if (it == per_client_.end()) return;
  if (--it->second == 0) per_client_.erase(it);
  if (total_ > 0) --total_;
}

std::size_t ConnectionLimiter::for_client(const net::IpAddress& client) const {
  auto it = per_client_.find(client.unmapped());
  return it == per_client_.end() ? 0 : it->second;
}

std::string_view describe(ConnectionLimiter::Refusal refusal) {
  switch (refusal) {
    case ConnectionLimiter::Refusal::none:
      return "none";
    case ConnectionLimiter::Refusal::total:
      return "max_connections";
    case ConnectionLimiter::Refusal::per_client:
      return "max_connections_per_client";
  }
  return "?";
}

}  // namespace tunsocks::server
