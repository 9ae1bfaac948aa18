#include "tunnel/upstream_url.h"

#include <doctest/doctest.h>

using tunsocks::tunnel::parse_upstream_url;
using tunsocks::tunnel::SocksVersion;

TEST_CASE("socks5_url_with_credentials_and_port") {
  auto url = parse_upstream_url("socks5://alice:s%40cret@proxy.example:1081");
  REQUIRE(url.has_value());
  CHECK(url->version == SocksVersion::socks5);
  CHECK_FALSE(url->remote_dns);
  REQUIRE(url->credentials.has_value());
  CHECK(url->credentials->user == "alice");
  CHECK(url->credentials->password == "s@cret");
  CHECK(url->host == "proxy.example");
  CHECK(url->port == 1081);
  CHECK(url->display() == "socks5://alice:***@proxy.example:1081");
}

TEST_CASE("every_scheme_maps_to_version_and_name_handling") {
  CHECK(parse_upstream_url("socks5h://h:1")->remote_dns);
  CHECK(parse_upstream_url("socks4://h:1")->version == SocksVersion::socks4);
  CHECK_FALSE(parse_upstream_url("socks4://h:1")->remote_dns);
  CHECK(parse_upstream_url("socks4a://h:1")->remote_dns);
}

TEST_CASE("ipv6_host_in_brackets_and_default_port") {
  auto url = parse_upstream_url("socks5://[2001:db8::1]:9050");
  REQUIRE(url.has_value());
  CHECK(url->host == "2001:db8::1");
  CHECK(url->port == 9050);
  CHECK(url->display() == "socks5://[2001:db8::1]:9050");
  CHECK(parse_upstream_url("socks5://127.0.0.1")->port == 1080);
  CHECK(parse_upstream_url("socks5://127.0.0.1/")->port == 1080);
}

TEST_CASE("bad_urls_say_what_is_wrong") {
  CHECK(parse_upstream_url("127.0.0.1:1080").error().find("needs a scheme") != std::string::npos);
  CHECK(parse_upstream_url("http://h:1").error().find("unknown upstream scheme") !=
        std::string::npos);
  CHECK(parse_upstream_url("socks5://h:0").error().find("not 1..65535") != std::string::npos);
  CHECK(parse_upstream_url("socks5://h:70000").error().find("not 1..65535") != std::string::npos);
  CHECK(parse_upstream_url("socks5://h:").error().find("not 1..65535") != std::string::npos);
  CHECK(parse_upstream_url("socks5://:1080").error().find("no host") != std::string::npos);
  CHECK(parse_upstream_url("socks5://[::1:1080").error().find("unclosed") != std::string::npos);
  CHECK(parse_upstream_url("socks5://u:p%4@h:1").error().find("escape") != std::string::npos);
  CHECK(parse_upstream_url("socks5://:p@h:1").error().find("user name is empty") !=
        std::string::npos);
  CHECK(parse_upstream_url("socks5://h:1/path").error().find("no path") != std::string::npos);
}
