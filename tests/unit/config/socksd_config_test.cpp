#include "config/socksd_config.h"

#include <cstdio>
#include <fstream>
#include <string>

#include <doctest/doctest.h>

using tunsocks::config::Command;
using tunsocks::config::parse_socksd_config;
using tunsocks::config::RuleAction;
using tunsocks::config::SocksdConfig;
using tunsocks::config::User;

namespace {

// A sha512-crypt hash of "s3cret" (openssl passwd -6 -salt abcdefgh s3cret).
constexpr const char* kSha512 =
    "$6$abcdefgh$Z7KfoKnKTSZrzo5VZ0YubGLQOj9ov6sHo9TmE3zIU/LHKhpE30zCnZ0mcIXYf9r9rQ4DYaXoxAFSPFlcWd"
    "xjB.";
// A yescrypt hash of "s3cret" (crypt_gensalt "$y$", libxcrypt 4.4).
constexpr const char* kYescrypt =
    "$y$j9T$/Lr5d46rK/Q/ANiR/F1H//$eXLdQv5RbHMnYLaIFzmZfOBZAmfhppsawmrXMbaosu7";

SocksdConfig parse_ok(const std::string& text) {
  auto parsed = parse_socksd_config(text, "test.json");
  REQUIRE_MESSAGE(parsed.has_value(), (parsed ? "" : parsed.error().to_string()));
  return *parsed;
}

// The error for `text`, as the one line socksd prints.
std::string error_of(const std::string& text) {
  auto parsed = parse_socksd_config(text, "test.json");
  REQUIRE_MESSAGE(!parsed.has_value(), text);
  return parsed.error().to_string();
}

void check_error(const std::string& text, const std::string& path, const std::string& needle) {
  auto parsed = parse_socksd_config(text, "test.json");
  REQUIRE_MESSAGE(!parsed.has_value(), text);
  CHECK(parsed.error().file == "test.json");
  CHECK_MESSAGE(parsed.error().path == path, parsed.error().to_string());
  CHECK_MESSAGE(parsed.error().message.find(needle) != std::string::npos,
                parsed.error().to_string());
}

}  // namespace

TEST_CASE("config_empty_object_gives_defaults") {
  auto c = parse_ok("{}");
  CHECK(c.listen.empty());
  CHECK(c.log_level == tunsocks::net::LogLevel::info);
  CHECK(!c.allow_open);
  CHECK(!c.allow_private);
  CHECK(!c.enable_bind);
  CHECK(c.users.empty());
  CHECK(c.rules.empty());
  CHECK(c.limits.max_connections == 10000);
  CHECK(c.limits.max_connections_per_client == 1000);
  CHECK(c.limits.handshake_timeout_s == 10);
  CHECK(c.limits.drain_timeout_s == 5);
  CHECK(c.cpu_slice_us == 100);
}

TEST_CASE("config_cpu_slice_us") {
  CHECK(parse_ok(R"({"cpu_slice_us": 0})").cpu_slice_us == 0);
  CHECK(parse_ok(R"({"cpu_slice_us": 100})").cpu_slice_us == 100);
  CHECK(parse_ok(R"({"cpu_slice_us": 100000})").cpu_slice_us == 100000);
  check_error(R"({"cpu_slice_us": 50})", "/cpu_slice_us",
              "0 (the kernel's default) or 100..100000");
  check_error(R"({"cpu_slice_us": 100001})", "/cpu_slice_us", "0..100000");
  check_error(R"({"cpu_slice_us": "100"})", "/cpu_slice_us", "expected an integer");
}

TEST_CASE("config_full_example_parses") {
  std::string text = R"({
    "listen": ["127.0.0.1:1080", "[::1]:1080"], "log_level": "debug", "allow_open": false,
    "allow_private": true, "enable_bind": true,
    "users": [ {"name": "alice", "password": "plain-secret"},
               {"name": "bob", "password_hash": ")" +
                     std::string(kSha512) + R"("},
               {"name": "carol", "password_hash": ")" +
                     std::string(kYescrypt) + R"("} ],
    "rules": [ {"action": "deny", "commands": ["connect", "bind", "udp_associate"],
                "destinations": ["10.0.0.0/8", "2001:db8::/32"], "domains": ["Example.COM."],
                "ports": [80, "8000-8100", "443"], "users": ["alice"], "clients": ["127.0.0.0/8"]},
               {"action": "allow"} ],
    "limits": { "max_connections": 10, "max_connections_per_client": 2,
                "handshake_timeout_s": 0.5, "connect_timeout_s": 3, "idle_timeout_s": 0,
                "bind_timeout_s": 60, "max_udp_associations": 0, "udp_idle_timeout_s": 1.25,
                "drain_timeout_s": 0 } })";
  auto c = parse_ok(text);
  REQUIRE(c.listen.size() == 2);
  CHECK(c.listen[1].to_string() == "[::1]:1080");
  CHECK(c.log_level == tunsocks::net::LogLevel::debug);
  CHECK(c.allow_private);
  CHECK(c.enable_bind);
  REQUIRE(c.users.size() == 3);
  CHECK(c.users[0].kind == User::Secret::plain);
  CHECK(c.users[0].secret == "plain-secret");
  CHECK(c.users[1].kind == User::Secret::crypt_hash);
  CHECK(c.users[2].path == "/users/2");
  REQUIRE(c.rules.size() == 2);
  const auto& r = c.rules[0];
  CHECK(r.action == RuleAction::deny);
  CHECK(r.path == "/rules/0");
  REQUIRE(r.commands.has_value());
  CHECK(r.commands->size() == 3);
  CHECK((*r.commands)[2] == Command::udp_associate);
  REQUIRE(r.domains.has_value());
  CHECK((*r.domains)[0] == "example.com");
  REQUIRE(r.ports.has_value());
  CHECK(r.ports->size() == 3);
  CHECK((*r.ports)[1].first == 8000);
  CHECK((*r.ports)[1].last == 8100);
  CHECK((*r.ports)[2].first == 443);
  CHECK(r.clients->size() == 1);
  CHECK(!c.rules[1].commands.has_value());
  CHECK(c.limits.max_connections == 10);
  CHECK(c.limits.handshake_timeout_s == 0.5);
  CHECK(c.limits.idle_timeout_s == 0);
  CHECK(c.limits.udp_idle_timeout_s == 1.25);
  CHECK(c.limits.max_udp_associations == 0);
}

TEST_CASE("config_error_syntax_names_line_and_column") {
  auto e = error_of("{\n  \"listen\": [\"127.0.0.1:1\",]\n}");
  CHECK(e.starts_with("test.json: invalid JSON at line 2, column "));
  CHECK(e.find('\n') == std::string::npos);
  CHECK(error_of("").starts_with("test.json: invalid JSON"));
  CHECK(error_of("{} trailing").starts_with("test.json: invalid JSON"));
}

TEST_CASE("config_error_not_an_object") {
  check_error("[]", "", "expected an object");
}

TEST_CASE("config_error_unknown_keys_everywhere") {
  check_error(R"({"listne": []})", "/listne", "unknown key (expected one of: listen,");
  check_error(R"({"_comment": "x"})", "/_comment", "unknown key");
  check_error(R"({"limits": {"max_conn": 1}})", "/limits/max_conn", "unknown key");
  check_error(R"({"rules": [{"action": "allow"}, {"action": "deny", "port": [1]}]})",
              "/rules/1/port", "unknown key");
  check_error(R"({"users": [{"name": "a", "password": "b", "pass": "c"}]})", "/users/0/pass",
              "unknown key");
}

TEST_CASE("config_error_duplicate_keys") {
  check_error(R"({"allow_open": false, "allow_open": true})", "/allow_open", "duplicate key");
  check_error(R"({"rules": [{"action": "allow"}, {"action": "deny", "action": "allow"}]})",
              "/rules/1/action", "duplicate key");
  check_error(R"({"limits": {"a~b/c": 1, "a~b/c": 2}})", "/limits/a~0b~1c", "duplicate key");
}

TEST_CASE("config_error_listen") {
  check_error(R"({"listen": "127.0.0.1:1080"})", "/listen", "expected an array");
  check_error(R"({"listen": []})", "/listen", "non-empty");
  check_error(R"({"listen": ["127.0.0.1:1080", "localhost:1080"]})", "/listen/1",
              "expected ADDR:PORT");
  check_error(R"({"listen": ["::1:1080"]})", "/listen/0", "brackets");
  check_error(R"({"listen": [1080]})", "/listen/0", "got an integer 1080");
}

TEST_CASE("config_error_scalars") {
  check_error(R"({"log_level": "verbose"})", "/log_level", "\"error\", \"warn\", \"info\"");
  check_error(R"({"allow_open": "yes"})", "/allow_open", "expected true or false");
  check_error(R"({"enable_bind": 1})", "/enable_bind", "expected true or false");
  check_error(R"({"allow_private": null})", "/allow_private", "got null");
}

TEST_CASE("config_error_users") {
  check_error(R"({"users": {}})", "/users", "expected an array of user objects");
  check_error(R"({"users": ["alice:pw"]})", "/users/0", "expected an object");
  check_error(R"({"users": [{"password": "x"}]})", "/users/0", "missing \"name\"");
  check_error(R"({"users": [{"name": "", "password": "x"}]})", "/users/0/name", "1..255");
  check_error(R"({"users": [{"name": "a"}]})", "/users/0", "exactly one of");
  check_error(R"({"users": [{"name": "a", "password": "x", "password_hash": "y"}]})", "/users/0",
              "exactly one of");
  check_error(R"({"users": [{"name": "a", "password": ""}]})", "/users/0/password", "1..255");
  check_error(R"({"users": [{"name": "a", "password": "x"}, {"name": "a", "password": "y"}]})",
              "/users/1/name", "defined twice");
  check_error(R"({"users": [{"name": "a", "password_hash": "secret"}]})", "/users/0/password_hash",
              "crypt(3)");
  check_error(R"({"users": [{"name": "a", "password_hash": "$zz$abc$def"}]})",
              "/users/0/password_hash", "does not accept");
  check_error(R"({"users": [{"name": "a", "password_hash": "$6$abcdefgh"}]})",
              "/users/0/password_hash", "incomplete");
}

TEST_CASE("config_error_rules") {
  check_error(R"({"rules": {}})", "/rules", "expected an array of rule objects");
  check_error(R"({"rules": [{}]})", "/rules/0", "missing \"action\"");
  check_error(R"({"rules": [{"action": "permit"}]})", "/rules/0/action", "\"allow\" or \"deny\"");
  check_error(R"({"rules": [{"action": "deny", "commands": []}]})", "/rules/0/commands",
              "non-empty");
  check_error(R"({"rules": [{"action": "deny", "commands": ["connect", "listen"]}]})",
              "/rules/0/commands/1", "\"udp_associate\"");
  check_error(R"({"rules": [{"action": "deny", "destinations": ["10.0.0.1/8"]}]})",
              "/rules/0/destinations/0", "host bits");
  check_error(R"({"rules": [{"action": "deny", "destinations": ["10.0.0.0/40"]}]})",
              "/rules/0/destinations/0", "0..32");
  check_error(R"({"rules": [{"action": "deny", "domains": ["exa mple.com"]}]})",
              "/rules/0/domains/0", "domain name");
  check_error(R"({"rules": [{"action": "deny", "domains": [".example.com"]}]})",
              "/rules/0/domains/0", "domain name");
  check_error(R"({"rules": [{"action": "allow"}, {"action": "allow"}, {"action": "deny",
                  "ports": [80, "90000"]}]})",
              "/rules/2/ports/1", "expected a port 0..65535 or a range");
  check_error(R"({"rules": [{"action": "deny", "ports": [70000]}]})", "/rules/0/ports/0",
              "0..65535");
  check_error(R"({"rules": [{"action": "deny", "ports": ["100-80"]}]})", "/rules/0/ports/0",
              "ends before it starts");
  check_error(R"({"rules": [{"action": "deny", "ports": [80.5]}]})", "/rules/0/ports/0",
              "got a number 80.5");
  check_error(R"({"rules": [{"action": "deny", "users": [""]}]})", "/rules/0/users/0",
              "non-empty user name");
  check_error(R"({"rules": [{"action": "deny", "clients": ["127.0.0.0/8", 5]}]})",
              "/rules/0/clients/1", "CIDR");
}

TEST_CASE("config_error_limits") {
  check_error(R"({"limits": []})", "/limits", "expected an object");
  check_error(R"({"limits": {"max_connections": 0}})", "/limits/max_connections", "1..");
  check_error(R"({"limits": {"max_connections": -5}})", "/limits/max_connections", "1..");
  check_error(R"({"limits": {"max_connections": 1.5}})", "/limits/max_connections",
              "expected an integer");
  check_error(R"({"limits": {"max_connections_per_client": "10"}})",
              "/limits/max_connections_per_client", "expected an integer");
  check_error(R"({"limits": {"handshake_timeout_s": 0}})", "/limits/handshake_timeout_s", "> 0");
  check_error(R"({"limits": {"connect_timeout_s": -1}})", "/limits/connect_timeout_s", "> 0");
  check_error(R"({"limits": {"idle_timeout_s": -1}})", "/limits/idle_timeout_s", ">= 0");
  check_error(R"({"limits": {"bind_timeout_s": "60"}})", "/limits/bind_timeout_s",
              "number of seconds");
  check_error(R"({"limits": {"drain_timeout_s": 1e300}})", "/limits/drain_timeout_s", "one year");
  check_error(R"({"limits": {"max_udp_associations": 20000000}})", "/limits/max_udp_associations",
              "0..10000000");
}

TEST_CASE("config_password_hash_check") {
  CHECK(tunsocks::config::check_password_hash(kSha512).has_value());
  CHECK(tunsocks::config::check_password_hash(kYescrypt).has_value());
  CHECK(!tunsocks::config::check_password_hash("").has_value());
  CHECK(!tunsocks::config::check_password_hash("$y$j9T$/Lr5d46rK/Q/ANiR/F1H//").has_value());
}

TEST_CASE("config_load_names_missing_file") {
  auto r = tunsocks::config::load_socksd_config("/nonexistent/socksd.json");
  REQUIRE(!r.has_value());
  CHECK(r.error().to_string() ==
        "/nonexistent/socksd.json: cannot read the file: No such file or directory");
}

TEST_CASE("config_load_reads_a_file") {
  char name[] = "/tmp/socksd-config-test-XXXXXX";
  int fd = mkstemp(name);
  REQUIRE(fd >= 0);
  {
    std::ofstream out(name);
    out << R"({"listen": ["127.0.0.1:0"], "rules": [{"action": "deny", "ports": [25]}]})";
  }
  auto r = tunsocks::config::load_socksd_config(name);
  std::remove(name);
  REQUIRE(r.has_value());
  CHECK(r->rules.size() == 1);
}

TEST_CASE("normalize_domain_lowercases_and_strips_root_dot") {
  CHECK(tunsocks::config::normalize_domain("WWW.Example.COM.") == "www.example.com");
  CHECK(tunsocks::config::normalize_domain("") == "");
}
