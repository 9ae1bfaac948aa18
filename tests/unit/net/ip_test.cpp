#include "net/ip.h"

#include <netdb.h>
#include <string>
#include <vector>

#include <doctest/doctest.h>

using tunsocks::net::AddressClass;
using tunsocks::net::Cidr;
using tunsocks::net::classify;
using tunsocks::net::IpAddress;

namespace {

IpAddress ip(const char* text) {
  auto a = IpAddress::parse(text);
  REQUIRE_MESSAGE(a.has_value(), text);
  return *a;
}

AddressClass class_of(const char* text) {
  return classify(ip(text));
}

// What a resolver makes of `name`: every address getaddrinfo returns (numeric forms are
// parsed locally, "localhost" comes from /etc/hosts: no network is needed).
std::vector<IpAddress> resolve(const char* name) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  std::vector<IpAddress> out;
  if (getaddrinfo(name, "80", &hints, &result) != 0) return out;
  for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    if (auto a = IpAddress::from_sockaddr(ai->ai_addr)) out.push_back(*a);
  }
  freeaddrinfo(result);
  return out;
}

}  // namespace

TEST_CASE("parse_accepts_canonical_forms_and_round_trips") {
  CHECK(ip("127.0.0.1").to_string() == "127.0.0.1");
  CHECK(ip("::1").to_string() == "::1");
  CHECK(ip("2001:DB8:0:0::1").to_string() == "2001:db8::1");
  CHECK(ip("::ffff:127.0.0.1").is_v6());
  CHECK(ip("10.1.2.3").v4_value() == 0x0a010203u);
}

TEST_CASE("parse_rejects_loose_ipv4_spellings_and_zones") {
  // Configs must say what they mean; only resolvers accept these (and are judged after).
  for (const char* bad : {"127.1", "0x7f.0.0.1", "2130706433", "017.0.0.1", "1.2.3.4 ", "",
                          "fe80::1%eth0", "1.2.3.256", "::ffff:1.2.3", "localhost"}) {
    CHECK_MESSAGE(!IpAddress::parse(bad).has_value(), bad);
  }
}

TEST_CASE("unmapped_turns_ipv4_mapped_into_ipv4") {
  CHECK(ip("::ffff:10.0.0.1").unmapped() == ip("10.0.0.1"));
  CHECK(ip("::10.0.0.1").unmapped() == ip("::10.0.0.1"));
  CHECK(ip("10.0.0.1").unmapped() == ip("10.0.0.1"));
}

TEST_CASE("sockaddr_round_trip") {
  for (const char* text : {"192.0.2.7", "2001:db8::7"}) {
    auto storage = ip(text).to_sockaddr(8080);
    auto back = IpAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&storage));
    REQUIRE(back.has_value());
    CHECK(*back == ip(text));
  }
  sockaddr_storage unix_family{};
  unix_family.ss_family = AF_UNIX;
  CHECK(!IpAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&unix_family)).has_value());
}

TEST_CASE("classify_ipv4_special_ranges") {
  CHECK(class_of("0.0.0.0") == AddressClass::unspecified);
  CHECK(class_of("0.1.2.3") == AddressClass::this_network);
  CHECK(class_of("127.0.0.1") == AddressClass::loopback);
  CHECK(class_of("127.255.255.254") == AddressClass::loopback);
  CHECK(class_of("10.20.30.40") == AddressClass::private_use);
  CHECK(class_of("172.16.0.1") == AddressClass::private_use);
  CHECK(class_of("172.31.255.255") == AddressClass::private_use);
  CHECK(class_of("172.32.0.1") == AddressClass::global);
  CHECK(class_of("192.168.1.1") == AddressClass::private_use);
  CHECK(class_of("100.64.0.1") == AddressClass::shared);
  CHECK(class_of("100.127.255.255") == AddressClass::shared);
  CHECK(class_of("100.128.0.1") == AddressClass::global);
  CHECK(class_of("169.254.169.254") == AddressClass::link_local);
  CHECK(class_of("224.0.0.251") == AddressClass::multicast);
  CHECK(class_of("239.255.255.250") == AddressClass::multicast);
  CHECK(class_of("255.255.255.255") == AddressClass::broadcast);
  CHECK(class_of("240.0.0.1") == AddressClass::reserved);
  CHECK(class_of("192.0.2.1") == AddressClass::documentation);
  CHECK(class_of("198.51.100.1") == AddressClass::documentation);
  CHECK(class_of("203.0.113.1") == AddressClass::documentation);
  CHECK(class_of("198.18.0.1") == AddressClass::benchmarking);
  CHECK(class_of("198.19.255.255") == AddressClass::benchmarking);
  CHECK(class_of("198.20.0.1") == AddressClass::global);
  CHECK(class_of("192.0.0.8") == AddressClass::protocol);
  CHECK(class_of("192.88.99.1") == AddressClass::reserved);
  CHECK(class_of("8.8.8.8") == AddressClass::global);
  CHECK(class_of("1.1.1.1") == AddressClass::global);
}

TEST_CASE("classify_ipv6_special_ranges") {
  CHECK(class_of("::") == AddressClass::unspecified);
  CHECK(class_of("::1") == AddressClass::loopback);
  CHECK(class_of("fe80::1") == AddressClass::link_local);
  CHECK(class_of("febf::1") == AddressClass::link_local);
  CHECK(class_of("fec0::1") == AddressClass::unique_local);
  CHECK(class_of("fc00::1") == AddressClass::unique_local);
  CHECK(class_of("fd12:3456::1") == AddressClass::unique_local);
  CHECK(class_of("ff02::1") == AddressClass::multicast);
  CHECK(class_of("2001:db8::1") == AddressClass::documentation);
  CHECK(class_of("3fff::1") == AddressClass::documentation);
  CHECK(class_of("2001:2::1") == AddressClass::benchmarking);
  CHECK(class_of("100::1") == AddressClass::reserved);
  CHECK(class_of("2001:10::1") == AddressClass::protocol);
  CHECK(class_of("64:ff9b:1::1") == AddressClass::protocol);
  CHECK(class_of("4000::1") == AddressClass::reserved);
  CHECK(class_of("2606:4700::1111") == AddressClass::global);
  CHECK(class_of("2a00:1450:4001:80b::200e") == AddressClass::global);
}

TEST_CASE("classify_ipv6_forms_by_their_embedded_ipv4") {
  // IPv4-mapped, IPv4-compatible, NAT64 and 6to4 reach the embedded IPv4 host.
  CHECK(class_of("::ffff:127.0.0.1") == AddressClass::loopback);
  CHECK(class_of("::ffff:7f00:1") == AddressClass::loopback);
  CHECK(class_of("::127.0.0.1") == AddressClass::loopback);
  CHECK(class_of("::ffff:10.0.0.1") == AddressClass::private_use);
  CHECK(class_of("::ffff:0.0.0.0") == AddressClass::unspecified);
  CHECK(class_of("::ffff:169.254.169.254") == AddressClass::link_local);
  CHECK(class_of("64:ff9b::127.0.0.1") == AddressClass::loopback);
  CHECK(class_of("64:ff9b::10.1.1.1") == AddressClass::private_use);
  CHECK(class_of("64:ff9b::8.8.8.8") == AddressClass::global);
  CHECK(class_of("2002:7f00:1::") == AddressClass::loopback);
  CHECK(class_of("2002:c0a8:101::1") == AddressClass::private_use);
  CHECK(class_of("2002:808:808::1") == AddressClass::global);
  CHECK(class_of("::ffff:8.8.8.8") == AddressClass::global);
  // Teredo embedding a loopback client (inverted bits) is judged by that client.
  CHECK(class_of("2001:0:4136:e378:8000:63bf:80ff:fffe") == AddressClass::loopback);
  // RFC 4380's example: server 65.54.227.120, client 192.0.2.45 (documentation).
  CHECK(class_of("2001:0:4136:e378:8000:63bf:3fff:fdd2") == AddressClass::documentation);
}

TEST_CASE("every_resolver_spelling_of_loopback_is_loopback_after_resolution") {
  // The proxy judges what the resolver returned, never the text the client sent.
  for (const char* name : {"127.0.0.1", "127.1", "127.0.1", "0x7f.1", "0x7f000001", "2130706433",
                           "017700000001", "0177.0.0.1", "127.000.000.001", "::1",
                           "::ffff:127.0.0.1", "::127.0.0.1", "0:0:0:0:0:0:0:1", "localhost"}) {
    auto addresses = resolve(name);
    REQUIRE_MESSAGE(!addresses.empty(), name);
    for (const auto& a : addresses) {
      CHECK_MESSAGE(classify(a) == AddressClass::loopback, name, " -> ", a.to_string());
    }
  }
  for (const char* name : {"0", "0.0.0.0", "0x0", "::"}) {
    for (const auto& a : resolve(name)) {
      CHECK_MESSAGE(tunsocks::net::is_special(classify(a)), name, " -> ", a.to_string());
    }
  }
}

TEST_CASE("cidr_parse_and_contains") {
  auto ten = Cidr::parse("10.0.0.0/8");
  REQUIRE(ten.has_value());
  CHECK(ten->contains(ip("10.255.1.2")));
  CHECK(!ten->contains(ip("11.0.0.1")));
  CHECK(ten->contains(ip("::ffff:10.9.9.9")));  // the same host, spelled as IPv6
  CHECK(!ten->contains(ip("::10.9.9.9")));
  CHECK(ten->to_string() == "10.0.0.0/8");

  auto doc6 = Cidr::parse("2001:db8::/32");
  REQUIRE(doc6.has_value());
  CHECK(doc6->contains(ip("2001:db8:ffff::1")));
  CHECK(!doc6->contains(ip("2001:db9::1")));
  CHECK(!doc6->contains(ip("10.0.0.1")));

  auto odd = Cidr::parse("192.168.0.0/23");
  REQUIRE(odd.has_value());
  CHECK(odd->contains(ip("192.168.1.255")));
  CHECK(!odd->contains(ip("192.168.2.0")));

  auto all4 = Cidr::parse("0.0.0.0/0");
  REQUIRE(all4.has_value());
  CHECK(all4->contains(ip("8.8.8.8")));
  CHECK(!all4->contains(ip("::1")));

  auto host = Cidr::parse("::1");
  REQUIRE(host.has_value());
  CHECK(host->prefix() == 128);
  CHECK(host->contains(ip("::1")));
  CHECK(!host->contains(ip("::2")));
}

TEST_CASE("cidr_parse_errors_say_what_was_expected") {
  auto host_bits = Cidr::parse("10.1.2.3/8");
  REQUIRE(!host_bits.has_value());
  CHECK(host_bits.error().find("host bits") != std::string::npos);
  auto long_prefix = Cidr::parse("10.0.0.0/33");
  REQUIRE(!long_prefix.has_value());
  CHECK(long_prefix.error().find("0..32") != std::string::npos);
  CHECK(!Cidr::parse("10.0.0.0/").has_value());
  CHECK(!Cidr::parse("10.0.0.0/8x").has_value());
  CHECK(!Cidr::parse("/8").has_value());
  CHECK(!Cidr::parse("example.com/8").has_value());
  CHECK(!Cidr::parse("::/129").has_value());
}
