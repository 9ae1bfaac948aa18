#include "server/policy.h"

#include <algorithm>

namespace tunsocks::server {
namespace {

// Three-valued matching: a field can say yes, no, or "cannot tell yet".
enum class Match : std::uint8_t { no, yes, unknown };

Match combine(Match a, Match b) {
  if (a == Match::no || b == Match::no) return Match::no;
  if (a == Match::unknown || b == Match::unknown) return Match::unknown;
  return Match::yes;
}

template <class Range, class Pred>
Match any_of(const Range& range, Pred pred) {
  return std::any_of(range.begin(), range.end(), pred) ? Match::yes : Match::no;
}

Match match_rule(const config::Rule& rule, const RequestFacts& f) {
  Match m = Match::yes;
  if (rule.commands) {
    m = combine(m, any_of(*rule.commands, [&](config::Command c) { return c == f.command; }));
  }
  if (rule.clients) {
    m = combine(m, any_of(*rule.clients, [&](const net::Cidr& c) { return c.contains(f.client); }));
  }
  if (rule.users) {
    // A rule naming users never matches an unauthenticated client.
    m = combine(m, any_of(*rule.users, [&](const std::string& u) { return u == f.user; }));
  }
  if (rule.domains) {
    m = combine(m, f.domain.empty() ? Match::no : any_of(*rule.domains, [&](const std::string& d) {
                  return domain_matches(f.domain, d);
                }));
  }
  if (rule.ports) {
    m = combine(m, !f.port ? Match::unknown : any_of(*rule.ports, [&](const config::PortRange& p) {
                  return p.contains(*f.port);
                }));
  }
  if (rule.destinations) {
    m = combine(m, !f.address ? Match::unknown
                              : any_of(*rule.destinations,
                                       [&](const net::Cidr& c) { return c.contains(*f.address); }));
  }
  return m;
}

}  // namespace

bool domain_matches(std::string_view name, std::string_view pattern) {
  if (name.size() < pattern.size()) return false;
  if (!name.ends_with(pattern)) return false;
  return name.size() == pattern.size() || name[name.size() - pattern.size() - 1] == '.';
}

Policy::Policy(std::vector<config::Rule> rules, bool allow_private)
    : rules_(std::move(rules)), allow_private_(allow_private) {}

Decision Policy::decide(const RequestFacts& facts, bool protected_listener) const {
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const config::Rule& rule = rules_[i];
    Match m = match_rule(rule, facts);
    if (m == Match::no) continue;
    if (m == Match::unknown) return Decision{Decision::Kind::needs_address, i, {}};
    if (rule.action == config::RuleAction::allow) return Decision{Decision::Kind::allow, i, {}};
    return Decision{Decision::Kind::deny, i,
                    "denied by rule " + std::to_string(i) + " (" + rule.path + ")"};
  }
  if (!protected_listener || allow_private_) return Decision{Decision::Kind::allow, {}, {}};
  if (!facts.address) return Decision{Decision::Kind::needs_address, {}, {}};
  net::AddressClass kind = net::classify(*facts.address);
  if (!net::is_special(kind)) return Decision{Decision::Kind::allow, {}, {}};
  return Decision{Decision::Kind::deny,
                  {},
                  "denied by the safe defaults: " + facts.address->to_string() + " is " +
                      std::string(net::describe(kind)) +
                      " and this listener is not loopback-only (allow it with a rule or "
                      "--allow-private)"};
}

}  // namespace tunsocks::server
