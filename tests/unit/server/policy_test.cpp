#include "server/policy.h"

#include <netdb.h>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "config/socksd_config.h"

using tunsocks::config::Command;
using tunsocks::config::parse_socksd_config;
using tunsocks::config::Rule;
using tunsocks::net::IpAddress;
using tunsocks::server::Decision;
using tunsocks::server::domain_matches;
using tunsocks::server::Policy;
using tunsocks::server::RequestFacts;
using Kind = Decision::Kind;

namespace {

std::vector<Rule> rules_from(const std::string& json) {
  auto config = parse_socksd_config("{\"rules\": " + json + "}", "rules.json");
  REQUIRE_MESSAGE(config.has_value(), (config ? "" : config.error().to_string()));
  return config->rules;
}

IpAddress ip(const char* text) {
  return *IpAddress::parse(text);
}

RequestFacts connect_to(const char* address, std::uint16_t port) {
  RequestFacts f;
  f.command = Command::connect;
  f.client = ip("127.0.0.1");
  f.address = ip(address);
  f.port = port;
  return f;
}

RequestFacts connect_name(const char* domain, std::uint16_t port) {
  RequestFacts f;
  f.command = Command::connect;
  f.client = ip("127.0.0.1");
  f.domain = domain;
  f.port = port;
  return f;
}

}  // namespace

TEST_CASE("domain_suffix_matches_on_label_boundaries") {
  CHECK(domain_matches("example.com", "example.com"));
  CHECK(domain_matches("a.example.com", "example.com"));
  CHECK(domain_matches("a.b.example.com", "example.com"));
  CHECK(!domain_matches("badexample.com", "example.com"));
  CHECK(!domain_matches("example.com.evil", "example.com"));
  CHECK(!domain_matches("com", "example.com"));
  CHECK(domain_matches("x.com", "com"));
}

TEST_CASE("rules_first_match_wins") {
  Policy policy(rules_from(R"([
      {"action": "allow", "destinations": ["10.1.0.0/16"]},
      {"action": "deny", "destinations": ["10.0.0.0/8"]},
      {"action": "allow"}])"),
                false);
  auto d = policy.decide(connect_to("10.1.2.3", 80), false);
  CHECK(d.kind == Kind::allow);
  CHECK(d.rule == 0u);
  d = policy.decide(connect_to("10.2.0.1", 80), false);
  CHECK(d.kind == Kind::deny);
  CHECK(d.rule == 1u);
  CHECK(d.reason.find("rule 1 (/rules/1)") != std::string::npos);
  d = policy.decide(connect_to("192.0.2.1", 80), false);
  CHECK(d.kind == Kind::allow);
  CHECK(d.rule == 2u);
}

TEST_CASE("rules_no_match_allows") {
  Policy policy(rules_from(R"([{"action": "deny", "ports": [25]}])"), false);
  auto d = policy.decide(connect_to("192.0.2.1", 80), false);
  CHECK(d.kind == Kind::allow);
  CHECK(!d.rule.has_value());
  CHECK(policy.decide(connect_to("192.0.2.1", 25), false).denied());
}

TEST_CASE("rules_fields_are_anded") {
  Policy policy(rules_from(R"([{"action": "deny", "commands": ["connect"], "ports": ["8000-8100"],
      "destinations": ["192.0.2.0/24"], "users": ["alice"], "clients": ["127.0.0.0/8"]}])"),
                false);
  RequestFacts f = connect_to("192.0.2.9", 8050);
  f.user = "alice";
  CHECK(policy.decide(f, false).denied());
  RequestFacts other_port = f;
  other_port.port = 8101;
  CHECK(policy.decide(other_port, false).allowed());
  RequestFacts other_user = f;
  other_user.user = "bob";
  CHECK(policy.decide(other_user, false).allowed());
  RequestFacts no_user = f;
  no_user.user = "";
  CHECK(policy.decide(no_user, false).allowed());  // "users" never matches anonymous clients
  RequestFacts other_client = f;
  other_client.client = ip("192.168.1.1");
  CHECK(policy.decide(other_client, false).allowed());
  RequestFacts bind = f;
  bind.command = Command::bind;
  CHECK(policy.decide(bind, false).allowed());
  RequestFacts other_dst = f;
  other_dst.address = ip("198.51.100.1");
  CHECK(policy.decide(other_dst, false).allowed());
}

TEST_CASE("rules_domain_deny_decides_before_resolution") {
  Policy policy(rules_from(R"([
      {"action": "deny", "destinations": ["127.0.0.1/32"], "ports": [9999]},
      {"action": "deny", "domains": ["blocked.example"]},
      {"action": "allow", "destinations": ["0.0.0.0/0", "::/0"]}])"),
                true);
  // Port 80 rules out rule 0 whatever the address; rule 1 matches by name: no DNS needed.
  auto d = policy.decide(connect_name("www.blocked.example", 80), false);
  CHECK(d.kind == Kind::deny);
  CHECK(d.rule == 1u);
  // Port 9999: rule 0 depends on the address, so the name must be resolved first.
  CHECK(policy.decide(connect_name("www.blocked.example", 9999), false).kind ==
        Kind::needs_address);
  CHECK(policy.decide(connect_name("other.example", 80), false).kind == Kind::needs_address);
  RequestFacts resolved = connect_name("other.example", 80);
  resolved.address = ip("192.0.2.5");
  CHECK(policy.decide(resolved, false).kind == Kind::allow);
  // An IP literal request never matches a "domains" rule.
  CHECK(policy.decide(connect_to("192.0.2.5", 80), false).allowed());
}

TEST_CASE("rules_udp_association_is_decided_per_datagram") {
  Policy policy(rules_from(R"([{"action": "deny", "ports": [53]}])"), false);
  RequestFacts association;
  association.command = Command::udp_associate;
  association.client = ip("127.0.0.1");
  CHECK(policy.decide(association, false).kind == Kind::needs_address);
  RequestFacts datagram = association;
  datagram.address = ip("192.0.2.53");
  datagram.port = 53;
  CHECK(policy.decide(datagram, false).denied());
  datagram.port = 123;
  CHECK(policy.decide(datagram, false).allowed());
}

TEST_CASE("safe_defaults_deny_special_ranges_on_protected_listeners") {
  Policy policy({}, false);
  for (const char* special :
       {"127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.0.1", "169.254.1.1", "100.64.0.1",
        "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fd00::1",
        "::ffff:127.0.0.1", "::127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::7f00:1", "198.18.0.1"}) {
    auto d = policy.decide(connect_to(special, 80), true);
    CHECK_MESSAGE(d.denied(), special);
    CHECK_MESSAGE(d.reason.find("safe defaults") != std::string::npos, special);
    CHECK(!d.rule.has_value());
    // A loopback-only server serves its own host: everything is allowed.
    CHECK_MESSAGE(policy.decide(connect_to(special, 80), false).allowed(), special);
  }
  CHECK(policy.decide(connect_to("8.8.8.8", 53), true).allowed());
  CHECK(policy.decide(connect_to("2606:4700::1111", 443), true).allowed());
  // A name cannot be judged until it is resolved.
  CHECK(policy.decide(connect_name("localhost", 80), true).kind == Kind::needs_address);
}

TEST_CASE("safe_defaults_yield_to_allow_private_and_to_allow_rules") {
  Policy open({}, true);
  CHECK(open.decide(connect_to("127.0.0.1", 80), true).allowed());
  Policy ruled(rules_from(R"([{"action": "allow", "destinations": ["10.0.0.0/8"]}])"), false);
  CHECK(ruled.decide(connect_to("10.9.9.9", 80), true).allowed());
  CHECK(ruled.decide(connect_to("192.168.0.1", 80), true).denied());
  Policy by_name(rules_from(R"([{"action": "allow", "domains": ["intranet.example"]}])"), false);
  CHECK(by_name.decide(connect_name("wiki.intranet.example", 80), true).allowed());
}

TEST_CASE("every_resolver_spelling_of_loopback_is_denied_after_resolution") {
  // What the session does: resolve the name, then judge every resolved address.
  Policy policy({}, false);
  for (const char* name :
       {"127.0.0.1", "127.1", "0x7f.1", "2130706433", "0177.0.0.1", "127.000.000.001", "localhost",
        "::ffff:127.0.0.1", "::127.0.0.1", "0:0:0:0:0:0:0:1"}) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* result = nullptr;
    REQUIRE_MESSAGE(getaddrinfo(name, nullptr, &hints, &result) == 0, name);
    int judged = 0;
    for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
      auto address = IpAddress::from_sockaddr(ai->ai_addr);
      REQUIRE(address.has_value());
      RequestFacts f = connect_name(name, 80);
      f.address = address->unmapped();
      CHECK_MESSAGE(policy.decide(f, true).denied(), name, " -> ", address->to_string());
      ++judged;
    }
    freeaddrinfo(result);
    CHECK(judged > 0);
  }
}
