#include "config/tunsocks_config.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include <doctest/doctest.h>

#include "tunnel/tunnel.h"

using tunsocks::config::OnSwitch;
using tunsocks::config::parse_tunsocks_config;
using tunsocks::config::RoutesMode;
using tunsocks::config::TunsocksConfig;
using tunsocks::config::UdpPolicy;
using tunsocks::tunnel::DnsMode;
using tunsocks::tunnel::SocksVersion;

namespace {

TunsocksConfig parse_ok(const std::string& text) {
  auto parsed = parse_tunsocks_config(text, "t.json");
  REQUIRE_MESSAGE(parsed.has_value(), (parsed ? "" : parsed.error().to_string()));
  return *parsed;
}

// The whole one-line message, so that file, path and wording are all checked.
std::string error_of(const std::string& text) {
  auto parsed = parse_tunsocks_config(text, "t.json");
  REQUIRE_MESSAGE(!parsed.has_value(), text);
  return parsed.error().to_string();
}

const std::string kTwo = R"({
  "default_profile": "home",
  "profiles": {
    "home": {"upstream": "socks5h://10.0.0.1:1080", "routes": {"exclude": ["192.168.0.0/16"]}},
    "work": {"extends": "home", "upstream": "socks5://u:p@10.0.0.2:1081", "dns": "forward",
             "dns_resolver": "10.0.0.53", "on_switch": "reset", "idle_timeout_s": 0,
             "udp_recycle": false, "udp_spares": 0}
  }
})";

}  // namespace

TEST_CASE("defaults, a single profile needs no default_profile") {
  auto config = parse_ok(R"({"profiles": {"only": {"upstream": "socks5://127.0.0.1:1080"}}})");
  CHECK(config.default_profile == "only");
  CHECK(config.global.tun_name == "tun0");
  CHECK(config.global.mtu == 65535);
  CHECK(config.global.offload);
  CHECK(config.global.address.to_string() == "172.19.0.1/30");
  CHECK(config.global.address6->to_string() == "fdfe:dcba:9876::1/126");
  CHECK(config.global.routes == RoutesMode::manual);
  CHECK(config.control_socket_path() == "/run/tunsocks/tun0.sock");
  CHECK(config.route_table() == 0x2d0);
  const auto& profile = *config.find("only");
  CHECK(profile.dns == DnsMode::fake_ip);
  CHECK(profile.udp == UdpPolicy::associate);
  CHECK(profile.idle_timeout_s == 3600);
  CHECK(profile.max_udp_sessions == 1024);
  CHECK(profile.udp_recycle);
  CHECK(profile.udp_spares == 4);
  CHECK(profile.include.empty());
  CHECK(config.find("other") == nullptr);
}

TEST_CASE("extends: the child overrides, inherits the rest, credentials follow the URL") {
  auto config = parse_ok(kTwo);
  const auto& work = *config.find("work");
  CHECK(work.extends == "home");
  CHECK(work.upstream.host == "10.0.0.2");
  CHECK(work.upstream.port == 1081);
  REQUIRE(work.upstream.credentials);
  CHECK(work.upstream.credentials->user == "u");
  CHECK(work.upstream.credentials->password == "p");
  CHECK(work.dns == DnsMode::forward);
  CHECK(work.dns_resolver->to_string() == "10.0.0.53:53");
  CHECK(work.on_switch == OnSwitch::reset);
  CHECK_FALSE(work.udp_recycle);
  CHECK(config.find("home")->udp_recycle);
  CHECK(work.udp_spares == 0);
  CHECK(config.find("home")->udp_spares == 4);
  CHECK(work.idle_timeout_s == 0);
  REQUIRE(work.exclude.size() == 1);  // inherited
  CHECK(work.exclude[0].to_string() == "192.168.0.0/16");
  const auto& home = *config.find("home");
  CHECK(home.upstream.remote_dns);
  CHECK(!home.upstream.credentials);
  CHECK(home.dns == DnsMode::fake_ip);
}

TEST_CASE("secrets from the environment and from a file") {
  ::setenv("TUNSOCKS_TEST_PASSWORD", "from-env", 1);
  const std::string file = "/tmp/tunsocks_config_test_secret";
  std::ofstream(file) << "from-file\n";
  auto config = parse_ok(R"({"default_profile": "a", "profiles": {
    "a": {"upstream": "socks5://h:1", "username": "alice", "password_env": "TUNSOCKS_TEST_PASSWORD"},
    "b": {"upstream": "socks5://h:1", "username": "bob", "password_file": ")" +
                         file + R"("}}})");
  CHECK(config.find("a")->upstream.credentials->password == "from-env");
  CHECK(config.find("b")->upstream.credentials->password == "from-file");
  CHECK(config.find("b")->upstream.display().find("from-file") == std::string::npos);
  std::remove(file.c_str());
  ::unsetenv("TUNSOCKS_TEST_PASSWORD");
}

TEST_CASE("every error class names file, JSON path and what was expected") {
  const std::string p = R"("upstream": "socks5://h:1")";
  CHECK(error_of("{").starts_with("t.json: invalid JSON at line 1, column 2"));
  CHECK(error_of(R"({"profiles": {"a": {)" + p + R"(}}, "profiles": {}})") ==
        "t.json: /profiles: duplicate key (each key may appear once)");
  CHECK(error_of(R"({"profile": {}})") ==
        "t.json: /profile: unknown key (expected one of: tun, log_level, control_socket, "
        "control_socket_mode, fwmark, routes, route_table, route_priority, default_profile, "
        "profiles)");
  CHECK(error_of(R"({"profiles": {"a": {)" + p + R"(, "dsn": "off"}}})")
            .starts_with("t.json: /profiles/a/dsn: unknown key (expected one of: extends,"));
  CHECK(error_of(R"({"tun": {"mtu": "big"}, "profiles": {"a": {)" + p + "}}}") ==
        "t.json: /tun/mtu: expected an integer 576..65535, got a string \"big\"");
  CHECK(error_of(R"({"tun": {"offload": "no"}, "profiles": {"a": {)" + p + "}}}") ==
        "t.json: /tun/offload: expected true or false, got a string \"no\"");
  CHECK_FALSE(
      parse_ok(R"({"tun": {"offload": false}, "profiles": {"a": {)" + p + "}}}").global.offload);
  CHECK(error_of(R"({"profiles": {"a": {)" + p + R"(, "udp_recycle": "no"}}})") ==
        "t.json: /profiles/a/udp_recycle: expected true or false, got a string \"no\"");
  CHECK(error_of(R"({"profiles": {"a": {)" + p + R"(, "udp_spares": 65}}})") ==
        "t.json: /profiles/a/udp_spares: expected an integer 0..64, got an integer 65");
  CHECK(error_of(R"({"profiles": {"a": {)" + p + R"(, "answer_ping": 1}}})") ==
        "t.json: /profiles/a/answer_ping: expected true or false, got an integer 1");
  CHECK(error_of(R"({"profiles": {"a": {)" + p + R"(, "routes": {"include": ["10.0.0.0/33"]}}}})")
            .starts_with("t.json: /profiles/a/routes/include/0: "));
  CHECK(error_of(R"({"profiles": {"a": {"upstream": "http://h:1"}}})")
            .starts_with("t.json: /profiles/a/upstream: "));
  CHECK(error_of(R"({"profiles": {"a": {"extends": "nope"}}})") ==
        "t.json: /profiles/a/extends: no profile is named \"nope\"");
  CHECK(
      error_of(
          R"({"default_profile": "a", "profiles": {"a": {"extends": "b"}, "b": {"extends": "a"}}})") ==
      "t.json: /profiles/a/extends: \"extends\" makes a cycle: a -> b -> a");
  CHECK(error_of(R"({"default_profile": "x", "profiles": {"a": {)" + p + "}}}") ==
        "t.json: /default_profile: no profile is named \"x\"");
  CHECK(error_of(R"({"profiles": {"a": {)" + p + "}, \"b\": {" + p + "}}}") ==
        "t.json: missing \"default_profile\" (there is more than one profile)");
  CHECK(error_of(R"({"profiles": {"a": {"dns": "off"}}})") ==
        "t.json: /profiles/a: missing \"upstream\" (in this profile or one it extends)");
  CHECK(error_of(R"({"profiles": {"a": {)" + p + R"(, "dns": "tcp"}}})") ==
        "t.json: /profiles/a: \"dns\": \"tcp\" needs \"dns_resolver\": the resolver to CONNECT to");
  CHECK(error_of(R"({"profiles": {"a": {)" + p + R"(, "dns": "magic"}}})") ==
        "t.json: /profiles/a/dns: expected \"fake-ip\", \"forward\", \"tcp\" or \"off\", got "
        "\"magic\"");
  CHECK(
      error_of(R"({"profiles": {"a": {)" + p + R"(, "password_env": "TUNSOCKS_SURELY_UNSET"}}})") ==
      "t.json: /profiles/a/password_env: the environment variable TUNSOCKS_SURELY_UNSET is not "
      "set (or empty)");
  CHECK(error_of(R"({"profiles": {"a": {)" + p + R"(, "password_file": "/nonexistent/pw"}}})")
            .starts_with("t.json: /profiles/a/password_file: cannot read the password file"));
  CHECK(error_of(R"({"profiles": {"a": {)" + p + R"(, "password": "x"}}})") ==
        "t.json: /profiles/a: SOCKS5 credentials need both a user name and a password (RFC 1929)");
  CHECK(error_of(R"({"routes": "auto", "fwmark": 0, "profiles": {"a": {)" + p + "}}}") ==
        "t.json: /fwmark: \"routes\": \"auto\" needs a non-zero fwmark to keep upstream sockets "
        "off the TUN");
  CHECK(error_of(R"({"profiles": {"bad name": {)" + p + "}}}")
            .starts_with("t.json: /profiles/bad name: expected a profile name"));
  CHECK(error_of(R"({"tun": {"address": "10.0.0.1/40"}, "profiles": {"a": {)" + p + "}}}")
            .starts_with("t.json: /tun/address: expected an IPv4 address with a prefix length"));
  CHECK(error_of("{}") == "t.json: missing \"profiles\" (an object of named profiles)");
}

TEST_CASE("describe_effective masks the password and shows what will run") {
  auto config = parse_ok(kTwo);
  const std::string text = describe_effective(config, *config.find("work"));
  CHECK(text.find("\"profile\": \"work\"") != std::string::npos);
  CHECK(text.find("\"extends\": \"home\"") != std::string::npos);
  CHECK(text.find("\"dns\": \"forward\"") != std::string::npos);
  CHECK(text.find(":p@") == std::string::npos);
}

TEST_CASE("a missing file is an error, not a crash") {
  auto loaded = tunsocks::config::load_tunsocks_config("/nonexistent/tunsocks.json");
  REQUIRE(!loaded);
  CHECK(loaded.error().to_string() ==
        "/nonexistent/tunsocks.json: cannot read the file: No such file or directory");
}
