#include "net/endpoint.h"

#include <netinet/in.h>
#include <string>

#include <doctest/doctest.h>

using tunsocks::net::Endpoint;

TEST_CASE("endpoint_parse_ipv4_and_bracketed_ipv6") {
  auto v4 = Endpoint::parse("127.0.0.1:1080");
  REQUIRE(v4.has_value());
  CHECK(v4->ip.to_string() == "127.0.0.1");
  CHECK(v4->port == 1080);
  CHECK(v4->to_string() == "127.0.0.1:1080");

  auto v6 = Endpoint::parse("[::1]:0");
  REQUIRE(v6.has_value());
  CHECK(v6->ip.is_v6());
  CHECK(v6->port == 0);
  CHECK(v6->to_string() == "[::1]:0");

  auto max = Endpoint::parse("0.0.0.0:65535");
  REQUIRE(max.has_value());
  CHECK(max->port == 65535);
}

TEST_CASE("endpoint_parse_errors") {
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
                          "127.0.0.1:80x", "::1:80", "[::1]", "[::1]80", "[127.0.0.1]:80",
                          "[::1:80", "localhost:80", ":80", "", "1.2.3.4:+80"}) {
    auto parsed = Endpoint::parse(bad);
    CHECK_MESSAGE(!parsed.has_value(), bad);
    if (!parsed) CHECK(parsed.error().find("expected ADDR:PORT") != std::string::npos);
  }
}

TEST_CASE("endpoint_to_sockaddr_and_back") {
  auto storage = tunsocks::net::parse_endpoint("[2001:db8::5]:443");
  REQUIRE(storage.has_value());
  CHECK(storage->ss_family == AF_INET6);
  auto* sa = reinterpret_cast<const sockaddr*>(&*storage);
  CHECK(tunsocks::net::sockaddr_port(sa) == 443);
  CHECK(tunsocks::net::sockaddr_length(sa) == sizeof(sockaddr_in6));
  CHECK(tunsocks::net::format_sockaddr(sa) == "[2001:db8::5]:443");

  auto v4 = tunsocks::net::parse_endpoint("192.0.2.1:8080");
  REQUIRE(v4.has_value());
  auto* sa4 = reinterpret_cast<const sockaddr*>(&*v4);
  CHECK(tunsocks::net::sockaddr_length(sa4) == sizeof(sockaddr_in));
  CHECK(tunsocks::net::format_sockaddr(sa4) == "192.0.2.1:8080");
}
