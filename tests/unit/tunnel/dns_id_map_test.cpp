#include "tunnel/dns_id_map.h"

#include <set>

#include <doctest/doctest.h>

using tunsocks::net::Endpoint;
using tunsocks::tunnel::DnsIdMap;

namespace {

DnsIdMap::Query query_from(std::uint16_t port, std::uint16_t id) {
  DnsIdMap::Query query;
  query.app = *Endpoint::parse("172.19.0.1:" + std::to_string(port));
  query.asked = *Endpoint::parse("10.53.0.53:53");
  query.id = id;
  return query;
}

}  // namespace

TEST_CASE("same_application_ids_get_distinct_ids_and_map_back") {
  DnsIdMap map;
  // Two sockets, the same query ID: both must come back to their own socket.
  auto first = map.add(query_from(40001, 0x1234), 0);
  auto second = map.add(query_from(40002, 0x1234), 0);
  REQUIRE(first.has_value());
  REQUIRE(second.has_value());
  CHECK(*first != *second);
  auto back = map.take(*second, 5);
  REQUIRE(back.has_value());
  CHECK(back->app.port == 40002);
  CHECK(back->id == 0x1234);
  CHECK(back->asked.to_string() == "10.53.0.53:53");
  // A second reply with the same ID is not delivered twice.
  CHECK_FALSE(map.take(*second, 5).has_value());
  CHECK(map.take(*first, 5)->app.port == 40001);
  CHECK(map.in_flight() == 0);
}

TEST_CASE("unknown_and_expired_ids_are_refused") {
  DnsIdMap map;
  auto id = map.add(query_from(40001, 1), 1000);
  REQUIRE(id.has_value());
  CHECK_FALSE(map.take(static_cast<std::uint16_t>(*id + 1), 1000).has_value());
  CHECK_FALSE(map.take(*id, 1000 + DnsIdMap::kLifetimeMs + 1).has_value());
}

TEST_CASE("in_flight_queries_are_bounded_and_expire") {
  DnsIdMap map;
  std::set<std::uint16_t> ids;
  for (std::size_t i = 0; i < DnsIdMap::kMaxInFlight; ++i) {
    auto id = map.add(query_from(static_cast<std::uint16_t>(1024 + i % 60000), 7), 0);
    REQUIRE(id.has_value());
    ids.insert(*id);
  }
  CHECK(ids.size() == DnsIdMap::kMaxInFlight);
  CHECK_FALSE(map.add(query_from(50000, 7), 0).has_value());
  // Once they have expired, room comes back.
  CHECK(map.add(query_from(50000, 7), DnsIdMap::kLifetimeMs + 1).has_value());
  CHECK(map.in_flight() == 1);
}
