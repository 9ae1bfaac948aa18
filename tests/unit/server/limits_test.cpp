#include "server/limits.h"

#include <string>

#include <doctest/doctest.h>

#include "server/counters.h"

using tunsocks::net::IpAddress;
using tunsocks::server::ConnectionLimiter;
using Refusal = ConnectionLimiter::Refusal;

namespace {
IpAddress ip(const char* text) {
  return *IpAddress::parse(text);
}
}  // namespace

TEST_CASE("limits_per_client") {
  ConnectionLimiter limiter(100, 2);
  CHECK(limiter.try_acquire(ip("127.0.0.1")) == Refusal::none);
  CHECK(limiter.try_acquire(ip("127.0.0.1")) == Refusal::none);
  CHECK(limiter.try_acquire(ip("127.0.0.1")) == Refusal::per_client);
  // The same host spelled as IPv4-mapped IPv6 shares the count.
  CHECK(limiter.try_acquire(ip("::ffff:127.0.0.1")) == Refusal::per_client);
  CHECK(limiter.try_acquire(ip("127.0.0.2")) == Refusal::none);
  CHECK(limiter.total() == 3);
  CHECK(limiter.for_client(ip("127.0.0.1")) == 2);
  limiter.release(ip("127.0.0.1"));
  CHECK(limiter.try_acquire(ip("::ffff:127.0.0.1")) == Refusal::none);
  CHECK(limiter.for_client(ip("127.0.0.1")) == 2);
}

TEST_CASE("limits_total") {
  ConnectionLimiter limiter(3, 10);
  CHECK(limiter.try_acquire(ip("10.0.0.1")) == Refusal::none);
  CHECK(limiter.try_acquire(ip("10.0.0.2")) == Refusal::none);
  CHECK(limiter.try_acquire(ip("10.0.0.3")) == Refusal::none);
  CHECK(limiter.try_acquire(ip("10.0.0.4")) == Refusal::total);
  CHECK(limiter.for_client(ip("10.0.0.4")) == 0);
  limiter.release(ip("10.0.0.2"));
  CHECK(limiter.total() == 2);
  CHECK(limiter.try_acquire(ip("10.0.0.4")) == Refusal::none);
  // Releasing what was never counted changes nothing.
  limiter.release(ip("192.0.2.1"));
  CHECK(limiter.total() == 3);
  CHECK(describe(Refusal::per_client) == "max_connections_per_client");
}

TEST_CASE("counters_json_has_every_key") {
  tunsocks::server::Counters c;
  c.sessions_total = 7;
  c.bytes_down = 1u << 20;
  std::string json = c.to_json();
  for (const char* key :
       {"sessions_open", "sessions_total", "bytes_up", "bytes_down", "auth_failures", "denied",
        "udp_associations_open", "udp_datagrams_dropped", "handshake_timeouts", "limit_refusals"}) {
    CHECK_MESSAGE(json.find("\"" + std::string(key) + "\":") != std::string::npos, key);
  }
  CHECK(json.find("\"sessions_total\":7") != std::string::npos);
  CHECK(json.find("\"bytes_down\":1048576") != std::string::npos);
  CHECK(json.front() == '{');
  CHECK(json.back() == '}');
  CHECK(json.find(' ') == std::string::npos);
}
