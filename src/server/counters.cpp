#include "server/counters.h"

namespace tunsocks::server {

std::string Counters::to_json() const {
  std::string out = "{";
  auto add = [&](const char* key, std::uint64_t value) {
    if (out.size() > 1) out += ',';
    out += '"';
    out += key;
    out += "\":";
    out += std::to_string(value);
  };
  add("sessions_open", sessions_open);
  add("sessions_total", sessions_total);
  add("bytes_up", bytes_up);
  add("bytes_down", bytes_down);
  add("auth_failures", auth_failures);
  add("denied", denied);
  add("udp_associations_open", udp_associations_open);
  add("udp_datagrams_up", udp_datagrams_up);
  add("udp_datagrams_down", udp_datagrams_down);
  add("udp_datagrams_dropped", udp_datagrams_dropped);
  add("handshake_timeouts", handshake_timeouts);
  add("idle_timeouts", idle_timeouts);
  add("limit_refusals", limit_refusals);
  add("connect_failures", connect_failures);
  add("resolve_failures", resolve_failures);
  out += '}';
  return out;
}

}  // namespace tunsocks::server
