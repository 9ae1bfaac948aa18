// Addresses and codes as text, and the address helpers.
#include <algorithm>
#include <arpa/inet.h>
#include <random>
#include <set>

#include "check.h"

namespace tunsocks::socks::test {
namespace {

Address v6(std::initializer_list<unsigned> groups, std::uint16_t port = 443) {
  std::array<std::uint8_t, 16> ip{};
  std::size_t i = 0;
  for (const unsigned g : groups) {
    ip[i++] = static_cast<std::uint8_t>(g >> 8);
    ip[i++] = static_cast<std::uint8_t>(g & 0xFF);
  }
  return Address::ipv6(ip, port);
}

TEST_CASE("to_string_ipv4_dotted") {
  CHECK(to_string(Address::ipv4({1, 2, 3, 4}, 80)) == "1.2.3.4:80");
  CHECK(to_string(Address::ipv4({0, 0, 0, 0}, 0)) == "0.0.0.0:0");
  CHECK(to_string(Address::ipv4({255, 255, 255, 255}, 65535)) == "255.255.255.255:65535");
}

TEST_CASE("to_string_ipv6_rfc5952_form") {
  CHECK(to_string(v6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 1})) == "[2001:db8::1]:443");
  CHECK(to_string(v6({0, 0, 0, 0, 0, 0, 0, 0})) == "[::]:443");
  CHECK(to_string(v6({0, 0, 0, 0, 0, 0, 0, 1})) == "[::1]:443");
  CHECK(to_string(v6({1, 0, 0, 0, 0, 0, 0, 0})) == "[1::]:443");
  // A single zero group stays; the longest run wins; the first of equal runs wins.
  CHECK(to_string(v6({0x2001, 0xdb8, 0, 1, 1, 1, 1, 1})) == "[2001:db8:0:1:1:1:1:1]:443");
  CHECK(to_string(v6({0x2001, 0, 0, 1, 0, 0, 0, 1})) == "[2001:0:0:1::1]:443");
  CHECK(to_string(v6({0x2001, 0xdb8, 0, 0, 1, 0, 0, 1})) == "[2001:db8::1:0:0:1]:443");
  CHECK(to_string(v6({0xABCD, 0xEF01, 0x2345, 0x6789, 0xABCD, 0xEF01, 0x2345, 0x6789})) ==
        "[abcd:ef01:2345:6789:abcd:ef01:2345:6789]:443");
  // IPv4-mapped addresses keep the dotted quad (RFC 5952, section 5).
  CHECK(to_string(v6({0, 0, 0, 0, 0, 0xFFFF, 0xC000, 0x0201})) == "[::ffff:192.0.2.1]:443");
}

TEST_CASE("to_string_ipv6_agrees_with_inet_ntop") {
  // Random addresses, zero groups made common so that runs of every length occur. Addresses
  // under ::/96 are skipped: glibc prints those in the deprecated IPv4-compatible form.
  std::mt19937 random(1928);
  for (int round = 0; round < 20000; ++round) {
    std::array<std::uint8_t, 16> ip{};
    for (std::size_t g = 0; g < 8; ++g) {
      if (random() % 2 == 0) continue;
      ip[2 * g] = static_cast<std::uint8_t>(random());
      ip[2 * g + 1] = static_cast<std::uint8_t>(random());
    }
    if (std::all_of(ip.begin(), ip.begin() + 12, [](std::uint8_t b) { return b == 0; })) continue;
    char expected[INET6_ADDRSTRLEN];
    REQUIRE(inet_ntop(AF_INET6, ip.data(), expected, sizeof expected) != nullptr);
    CAPTURE(expected);
    REQUIRE(to_string(Address::ipv6(ip, 1)) == "[" + std::string(expected) + "]:1");
  }
}

TEST_CASE("to_string_domain_escapes_control_bytes") {
  // A hostile name must not be able to start a fake log line or send terminal escapes.
  CHECK(to_string(Address::name("example.com", 443)) == "example.com:443");
  CHECK(to_string(Address::name("evil\r\nINFO forged", 1)) == "evil\\x0d\\x0aINFO\\x20forged:1");
  CHECK(to_string(Address::name("\x1b[31mred", 1)) == "\\x1b[31mred:1");
  CHECK(to_string(Address::name(std::string("a\0b", 3), 1)) == "a\\x00b:1");
  CHECK(to_string(Address::name("back\\slash", 1)) == "back\\x5cslash:1");
  CHECK(to_string(Address::name("\x7f\x80\xff", 1)) == "\\x7f\\x80\\xff:1");
}

TEST_CASE("socks5_reply_codes_have_distinct_names") {
  std::set<std::string_view> names;
  for (unsigned rep = 0x00; rep <= 0x08; ++rep) {
    names.insert(describe(static_cast<Socks5Reply>(rep)));
  }
  CHECK(names.size() == 9);
  CHECK(describe(Socks5Reply::succeeded) == "succeeded");
  CHECK(describe(Socks5Reply::general_failure) == "general SOCKS server failure");
  CHECK(describe(Socks5Reply::not_allowed) == "connection not allowed by ruleset");
  CHECK(describe(Socks5Reply::network_unreachable) == "network unreachable");
  CHECK(describe(Socks5Reply::host_unreachable) == "host unreachable");
  CHECK(describe(Socks5Reply::connection_refused) == "connection refused");
  CHECK(describe(Socks5Reply::ttl_expired) == "TTL expired");
  CHECK(describe(Socks5Reply::command_not_supported) == "command not supported");
  CHECK(describe(Socks5Reply::address_type_not_supported) == "address type not supported");
  CHECK(describe(static_cast<Socks5Reply>(0x09)) == "unassigned SOCKS5 reply code");
}

TEST_CASE("socks4_reply_codes_have_distinct_names") {
  std::set<std::string_view> names;
  for (unsigned cd = 0x5A; cd <= 0x5D; ++cd)
    names.insert(describe(static_cast<Socks4Reply>(cd)));
  CHECK(names.size() == 4);
  CHECK(describe(Socks4Reply::granted) == "request granted");
  CHECK(describe(static_cast<Socks4Reply>(0x00)) == "unknown SOCKS4 reply code");
}

TEST_CASE("commands_have_names") {
  CHECK(describe(Command::connect) == "CONNECT");
  CHECK(describe(Command::bind) == "BIND");
  CHECK(describe(Command::udp_associate) == "UDP ASSOCIATE");
  CHECK(describe(static_cast<Command>(0x09)) == "unknown command");
}

TEST_CASE("error_codes_have_distinct_names") {
  std::set<std::string_view> names;
  for (unsigned code = 0; code <= static_cast<unsigned>(Errc::empty_field); ++code) {
    names.insert(describe(static_cast<Errc>(code)));
  }
  CHECK(names.size() == static_cast<std::size_t>(Errc::empty_field) + 1);
  CHECK(names.count("unknown error") == 0);
  CHECK(describe(Errc::bad_address_type) == "bad address type");
  CHECK(to_string(Error{Errc::bad_address_type, 3, 0x08, "ATYP"}) ==
        "bad address type (ATYP at byte 3)");
}

TEST_CASE("encoded_size_of_each_address_type") {
  CHECK(encoded_size(Address::ipv4({1, 2, 3, 4}, 80)) == 7);
  CHECK(encoded_size(Address::ipv6({}, 80)) == 19);
  CHECK(encoded_size(Address::name("a", 80)) == 5);
  CHECK(encoded_size(Address::name(name_of_length(255), 80)) == 259);
  // What the writers refuse has no size.
  CHECK(encoded_size(Address::name("", 80)) == 0);
  CHECK(encoded_size(Address::name(name_of_length(256), 80)) == 0);
  Address bad_type = Address::ipv4({1, 2, 3, 4}, 80);
  bad_type.type = static_cast<AddressType>(0x02);
  CHECK(encoded_size(bad_type) == 0);
}

TEST_CASE("address_factories_fill_only_their_fields") {
  const Address v4 = Address::ipv4({1, 2, 3, 4}, 80);
  CHECK(v4.type == AddressType::ipv4);
  CHECK(v4.ip == std::array<std::uint8_t, 16>{1, 2, 3, 4});
  CHECK(v4.domain.empty());
  CHECK(v4.port == 80);
  const Address name = Address::name("example.com", 443);
  CHECK(name.type == AddressType::domain);
  CHECK(name.ip == std::array<std::uint8_t, 16>{});
  CHECK(name.domain == "example.com");
}

}  // namespace
}  // namespace tunsocks::socks::test
