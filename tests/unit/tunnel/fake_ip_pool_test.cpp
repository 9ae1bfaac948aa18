#include "tunnel/fake_ip_pool.h"

#include <doctest/doctest.h>

namespace {

using namespace tunsocks;
using namespace tunsocks::tunnel;

}  // namespace

TEST_CASE("same_name_gets_the_same_addresses") {
  FakeIpPool pool;
  auto a = pool.assign("example.com");
  auto b = pool.assign("example.org");
  REQUIRE(a.has_value());
  REQUIRE(b.has_value());
  CHECK(*a != *b);
  CHECK(pool.assign("example.com") == a);
  CHECK(FakeIpPool::ipv4(*a).to_string() == "198.18.0.1");
  CHECK(FakeIpPool::ipv6(*a).to_string() == "fc00::c612:1");
  REQUIRE(pool.name_of(FakeIpPool::ipv4(*b)) != nullptr);
  CHECK(*pool.name_of(FakeIpPool::ipv4(*b)) == "example.org");
  CHECK(*pool.name_of(FakeIpPool::ipv6(*b)) == "example.org");
  CHECK(pool.size() == 2);
}

TEST_CASE("addresses_outside_the_pool_or_unassigned_have_no_name") {
  FakeIpPool pool;
  (void)pool.assign("example.com");
  CHECK(pool.name_of(*net::IpAddress::parse("10.0.0.1")) == nullptr);
  CHECK(pool.name_of(*net::IpAddress::parse("198.18.0.0")) == nullptr);
  CHECK(pool.name_of(*net::IpAddress::parse("198.18.0.2")) == nullptr);
  CHECK(pool.name_of(*net::IpAddress::parse("198.20.0.1")) == nullptr);
  CHECK(pool.name_of(*net::IpAddress::parse("fd00::c612:1")) == nullptr);
  CHECK(pool.contains(*net::IpAddress::parse("198.19.255.255")));
  CHECK_FALSE(pool.contains(*net::IpAddress::parse("198.20.0.0")));
}

TEST_CASE("full_pool_recycles_the_least_recently_used_entry") {
  FakeIpPool pool(3);
  const auto a = *pool.assign("a.test");
  const auto b = *pool.assign("b.test");
  const auto c = *pool.assign("c.test");
  (void)pool.assign("a.test");  // a is used again: b is now the oldest
  const auto d = *pool.assign("d.test");
  CHECK(d == b);
  CHECK(*pool.name_of(FakeIpPool::ipv4(d)) == "d.test");
  CHECK(pool.assign("a.test") == a);
  CHECK(pool.assign("c.test") == c);
  CHECK(pool.size() == 3);
}

TEST_CASE("entries_held_by_open_flows_are_not_recycled") {
  FakeIpPool pool(2);
  const auto a = *pool.assign("a.test");
  const auto b = *pool.assign("b.test");
  pool.acquire(FakeIpPool::ipv4(a));
  pool.acquire(FakeIpPool::ipv6(b));
  CHECK_FALSE(pool.assign("c.test").has_value());  // both held: nothing to give
  pool.release(FakeIpPool::ipv4(a));
  const auto c = pool.assign("c.test");
  REQUIRE(c.has_value());
  CHECK(*c == a);
  CHECK(*pool.name_of(FakeIpPool::ipv4(b)) == "b.test");
  CHECK(pool.refs(FakeIpPool::ipv4(b)) == 1);
  pool.release(FakeIpPool::ipv4(b));
  pool.release(FakeIpPool::ipv4(b));  // one release too many is harmless
  CHECK(pool.refs(FakeIpPool::ipv4(b)) == 0);
}
