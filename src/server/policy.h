// Access decisions: the configured rules (first match wins) and the safe defaults.
//
// A rule's fields are ANDed and an absent field matches anything. Some facts are not known
// when a request arrives: a domain is resolved later, and a UDP association's destinations
// come with each datagram. A rule whose outcome depends on a missing fact makes the
// decision "needs_address": the caller resolves and asks again with the address. A rule
// that is decided without it (a "domains" rule for a name, a "commands" rule) decides at
// once, before any DNS query is sent.
//
// Safe defaults, when no rule matched: on a listener that is not loopback-only, a
// destination in a special range (loopback, private, link-local, CGNAT, multicast, ...;
// judged on the resolved address, see net/ip.h) is denied unless --allow-private is set.
// A loopback-only server serves its own host and allows everything.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/socksd_config.h"
#include "net/ip.h"

namespace tunsocks::server {

struct RequestFacts {
  config::Command command = config::Command::connect;
  net::IpAddress client;
  std::string_view user;                  // authenticated RFC 1929 user; empty if none
  std::string_view domain;                // normalized name the client asked for; empty if an IP
  std::optional<net::IpAddress> address;  // the destination address, once known
  std::optional<std::uint16_t> port;      // the destination port, once known
};

struct Decision {
  enum class Kind : std::uint8_t { allow, deny, needs_address };
  Kind kind = Kind::allow;
  std::optional<std::size_t> rule;  // index of the deciding rule; none for the defaults
  std::string reason;               // for deny: a sentence for the warn line

  [[nodiscard]] bool allowed() const { return kind == Kind::allow; }
  [[nodiscard]] bool denied() const { return kind == Kind::deny; }
};

// Domain suffix matching on label boundaries: "example.com" matches "example.com" and
// "a.example.com", never "badexample.com". Both sides normalized (lower case, no final dot).
[[nodiscard]] bool domain_matches(std::string_view name, std::string_view pattern);

class Policy {
 public:
  Policy(std::vector<config::Rule> rules, bool allow_private);

  // `protected_listener`: the client came in through a listener that is not loopback-only,
  // where the safe defaults apply.
  [[nodiscard]] Decision decide(const RequestFacts& facts, bool protected_listener) const;

  [[nodiscard]] const std::vector<config::Rule>& rules() const { return rules_; }
  [[nodiscard]] bool allow_private() const { return allow_private_; }

 private:
  std::vector<config::Rule> rules_;
  bool allow_private_;
};

}  // namespace tunsocks::server
