// socksd's configuration file: JSON in, typed and validated structs out.
//
// Every key is optional; an unknown key, a duplicate key or a value of the wrong kind is an
// error that names the file, the JSON path (RFC 6901, e.g. "/rules/2/ports/1") and what
// was expected. Nothing is silently ignored or clamped: a config that would not do what
// its author meant does not load. configs/socksd.md documents every key.
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/error.h"
#include "net/endpoint.h"
#include "net/ip.h"
#include "net/log.h"

namespace tunsocks::config {

enum class Command : std::uint8_t { connect, bind, udp_associate };
enum class RuleAction : std::uint8_t { allow, deny };

[[nodiscard]] std::string_view to_string(Command command);    // "connect", ...
[[nodiscard]] std::string_view to_string(RuleAction action);  // "allow", "deny"

struct PortRange {
  std::uint16_t first = 0;
  std::uint16_t last = 0;
  [[nodiscard]] bool contains(std::uint16_t port) const { return port >= first && port <= last; }
  friend bool operator==(const PortRange&, const PortRange&) = default;
};

// One access rule. Present fields are ANDed; an absent field matches anything. The first
// rule that matches decides; no match means allow (subject to socksd's safe defaults).
struct Rule {
  RuleAction action = RuleAction::allow;
  std::optional<std::vector<Command>> commands;
  std::optional<std::vector<net::Cidr>> destinations;  // the resolved destination address
  std::optional<std::vector<std::string>> domains;     // lower case, no trailing dot
  std::optional<std::vector<PortRange>> ports;         // destination port
  std::optional<std::vector<std::string>> users;       // RFC 1929 user names
  std::optional<std::vector<net::Cidr>> clients;       // the client's address
  std::string path;                                    // "/rules/2": names the rule in logs
};

struct User {
  enum class Secret : std::uint8_t { plain, crypt_hash };
  std::string name;
  Secret kind = Secret::plain;
  std::string secret;  // the password, or a crypt(3) string ("$y$...", "$6$...")
  std::string path;    // "/users/1", or "--user" for command-line users
};

struct Limits {
  std::uint32_t max_connections = 10000;
  std::uint32_t max_connections_per_client = 1000;
  double handshake_timeout_s = 10;
  double connect_timeout_s = 10;
  double idle_timeout_s = 300;  // 0 = never
  double bind_timeout_s = 60;
  std::uint32_t max_udp_associations = 1000;
  double udp_idle_timeout_s = 60;  // 0 = never (the control connection still bounds it)
  double drain_timeout_s = 5;      // 0 = close every session at once on SIGINT/SIGTERM
};

struct SocksdConfig {
  std::vector<net::Endpoint> listen;  // empty: the program's default (127.0.0.1:1080)
  net::LogLevel log_level = net::LogLevel::info;
  bool allow_open = false;
  bool allow_private = false;
  bool enable_bind = false;
  // The scheduler slice the event loop asks for (net::request_cpu_slice); 0 = the
  // kernel's default.
  std::uint32_t cpu_slice_us = 100;
  std::vector<User> users;
  std::vector<Rule> rules;
  Limits limits;
};

// `file_name` is only used in error messages.
[[nodiscard]] std::expected<SocksdConfig, Error> parse_socksd_config(std::string_view json_text,
                                                                     std::string_view file_name);
[[nodiscard]] std::expected<SocksdConfig, Error> load_socksd_config(const std::string& file_path);

// Checks that `hash` is a complete crypt(3) string this system can verify (a known,
// enabled method and the full hash, not just a salt). The error says why not.
[[nodiscard]] std::expected<void, std::string> check_password_hash(const std::string& hash);

// Domain names as rules compare them: lower case, without a trailing dot.
[[nodiscard]] std::string normalize_domain(std::string_view name);

}  // namespace tunsocks::config
