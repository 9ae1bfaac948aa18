#include "config/socksd_config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <crypt.h>
#include <memory>
#include <set>

#include "config/json_reader.h"

namespace tunsocks::config {
namespace {

using namespace json_reader;

bool valid_domain(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  std::size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    auto byte = static_cast<unsigned char>(c);
    if (!std::isalnum(byte) && c != '-' && c != '_') return false;
    if (++label > 63) return false;
  }
  return label > 0;
}

std::vector<std::string> read_domains(const json& j, const std::string& path) {
  std::vector<std::string> out;
  const json& array = read_array(j, path, "domain names");
  for (std::size_t i = 0; i < array.size(); ++i) {
    std::string where = child(path, i);
    auto text = read_string(array[i], where, "a domain name like \"example.com\"");
    std::string name = normalize_domain(text);
    if (!valid_domain(name)) {
      fail(where,
           "expected a domain name like \"example.com\" (letters, digits, '-', '_' in labels; "
           "it matches the name and its subdomains), got \"" +
               text + "\"");
    }
    out.push_back(std::move(name));
  }
  return out;
}

std::optional<std::uint16_t> port_number(std::string_view text) {
  return net::parse_port(text);
}

std::vector<PortRange> read_ports(const json& j, const std::string& path) {
  std::vector<PortRange> out;
  const json& array = read_array(j, path, "ports (80) or ranges (\"8000-8100\")");
  for (std::size_t i = 0; i < array.size(); ++i) {
    std::string where = child(path, i);
    const json& item = array[i];
    const std::string expected = "expected a port 0..65535 or a range \"FIRST-LAST\"";
    if (item.is_number_integer() || item.is_number_unsigned()) {
      auto port = read_count(item, where, 0, 65535);
      out.push_back({static_cast<std::uint16_t>(port), static_cast<std::uint16_t>(port)});
      continue;
    }
    if (!item.is_string()) fail(where, expected + got(item));
    auto text = item.get<std::string>();
    auto dash = text.find('-');
    auto first = port_number(std::string_view(text).substr(0, dash));
    auto last =
        dash == std::string::npos ? first : port_number(std::string_view(text).substr(dash + 1));
    if (!first || !last) fail(where, expected + got(item));
    if (*first > *last) fail(where, "range \"" + text + "\" ends before it starts");
    out.push_back({*first, *last});
  }
  return out;
}

std::vector<Command> read_commands(const json& j, const std::string& path) {
  std::vector<Command> out;
  const json& array = read_array(j, path, "commands");
  for (std::size_t i = 0; i < array.size(); ++i) {
    std::string where = child(path, i);
    auto text = read_string(array[i], where, "\"connect\", \"bind\" or \"udp_associate\"");
    if (text == "connect") {
      out.push_back(Command::connect);
    } else if (text == "bind") {
      out.push_back(Command::bind);
    } else if (text == "udp_associate") {
      out.push_back(Command::udp_associate);
    } else {
      fail(where, "expected \"connect\", \"bind\" or \"udp_associate\", got \"" + text + "\"");
    }
  }
  return out;
}

std::vector<std::string> read_user_names(const json& j, const std::string& path) {
  std::vector<std::string> out;
  const json& array = read_array(j, path, "user names");
  for (std::size_t i = 0; i < array.size(); ++i) {
    std::string where = child(path, i);
    auto name = read_string(array[i], where, "a user name");
    if (name.empty()) fail(where, "expected a non-empty user name");
    out.push_back(std::move(name));
  }
  return out;
}

Rule read_rule(const json& j, const std::string& path) {
  expect_object(j, path);
  check_keys(j, path,
             {"action", "commands", "destinations", "domains", "ports", "users", "clients"});
  Rule rule;
  rule.path = path;
  const json* action = find(j, "action");
  if (action == nullptr) fail(path, "missing \"action\" (\"allow\" or \"deny\")");
  auto text = read_string(*action, child(path, "action"), "\"allow\" or \"deny\"");
  if (text == "allow") {
    rule.action = RuleAction::allow;
  } else if (text == "deny") {
    rule.action = RuleAction::deny;
  } else {
    fail(child(path, "action"), "expected \"allow\" or \"deny\", got \"" + text + "\"");
  }
  if (const json* v = find(j, "commands"))
    rule.commands = read_commands(*v, child(path, "commands"));
  if (const json* v = find(j, "destinations")) {
    rule.destinations = read_cidrs(*v, child(path, "destinations"));
  }
  if (const json* v = find(j, "domains")) rule.domains = read_domains(*v, child(path, "domains"));
  if (const json* v = find(j, "ports")) rule.ports = read_ports(*v, child(path, "ports"));
  if (const json* v = find(j, "users")) rule.users = read_user_names(*v, child(path, "users"));
  if (const json* v = find(j, "clients")) rule.clients = read_cidrs(*v, child(path, "clients"));
  return rule;
}

User read_user(const json& j, const std::string& path) {
  expect_object(j, path);
  check_keys(j, path, {"name", "password", "password_hash"});
  User user;
  user.path = path;
  const json* name = find(j, "name");
  if (name == nullptr) fail(path, "missing \"name\"");
  user.name = read_string(*name, child(path, "name"), "a user name");
  if (user.name.empty() || user.name.size() > 255) {
    fail(child(path, "name"), "expected a user name of 1..255 bytes (RFC 1929)");
  }
  const json* password = find(j, "password");
  const json* hash = find(j, "password_hash");
  if ((password == nullptr) == (hash == nullptr)) {
    fail(path, "expected exactly one of \"password\" or \"password_hash\"");
  }
  if (password != nullptr) {
    user.kind = User::Secret::plain;
    user.secret = read_string(*password, child(path, "password"), "a password string");
    if (user.secret.empty() || user.secret.size() > 255) {
      fail(child(path, "password"), "expected a password of 1..255 bytes (RFC 1929)");
    }
  } else {
    user.kind = User::Secret::crypt_hash;
    user.secret = read_string(*hash, child(path, "password_hash"),
                              "a crypt(3) hash string like \"$y$...\" or \"$6$...\"");
    if (auto ok = check_password_hash(user.secret); !ok) {
      fail(child(path, "password_hash"), ok.error());
    }
  }
  return user;
}

Limits read_limits(const json& j, const std::string& path) {
  expect_object(j, path);
  check_keys(j, path,
             {"max_connections", "max_connections_per_client", "handshake_timeout_s",
              "connect_timeout_s", "idle_timeout_s", "bind_timeout_s", "max_udp_associations",
              "udp_idle_timeout_s", "drain_timeout_s"});
  Limits limits;
  constexpr std::uint32_t kMaxCount = 10'000'000;
  if (const json* v = find(j, "max_connections")) {
    limits.max_connections = read_count(*v, child(path, "max_connections"), 1, kMaxCount);
  }
  if (const json* v = find(j, "max_connections_per_client")) {
    limits.max_connections_per_client =
        read_count(*v, child(path, "max_connections_per_client"), 1, kMaxCount);
  }
  if (const json* v = find(j, "max_udp_associations")) {
    limits.max_udp_associations = read_count(*v, child(path, "max_udp_associations"), 0, kMaxCount);
  }
  if (const json* v = find(j, "handshake_timeout_s")) {
    limits.handshake_timeout_s = read_seconds(*v, child(path, "handshake_timeout_s"), false);
  }
  if (const json* v = find(j, "connect_timeout_s")) {
    limits.connect_timeout_s = read_seconds(*v, child(path, "connect_timeout_s"), false);
  }
  if (const json* v = find(j, "bind_timeout_s")) {
    limits.bind_timeout_s = read_seconds(*v, child(path, "bind_timeout_s"), false);
  }
  if (const json* v = find(j, "idle_timeout_s")) {
    limits.idle_timeout_s = read_seconds(*v, child(path, "idle_timeout_s"), true);
  }
  if (const json* v = find(j, "udp_idle_timeout_s")) {
    limits.udp_idle_timeout_s = read_seconds(*v, child(path, "udp_idle_timeout_s"), true);
  }
  if (const json* v = find(j, "drain_timeout_s")) {
    limits.drain_timeout_s = read_seconds(*v, child(path, "drain_timeout_s"), true);
  }
  return limits;
}

SocksdConfig read_config(const json& root) {
  expect_object(root, "");
  check_keys(root, "",
             {"listen", "log_level", "allow_open", "allow_private", "enable_bind", "cpu_slice_us",
              "users", "rules", "limits"});
  SocksdConfig config;
  if (const json* v = find(root, "listen")) {
    const json& array = read_array(*v, "/listen", "\"ADDR:PORT\" strings");
    for (std::size_t i = 0; i < array.size(); ++i) {
      std::string where = child("/listen", i);
      auto text = read_string(array[i], where, "an \"ADDR:PORT\" string like \"127.0.0.1:1080\"");
      auto endpoint = net::Endpoint::parse(text);
      if (!endpoint) fail(where, endpoint.error());
      config.listen.push_back(*endpoint);
    }
  }
  if (const json* v = find(root, "log_level")) {
    auto text = read_string(*v, "/log_level", "\"error\", \"warn\", \"info\" or \"debug\"");
    auto level = net::parse_log_level(text);
    if (!level)
      fail("/log_level",
           "expected \"error\", \"warn\", \"info\" or \"debug\", got \"" + text + "\"");
    config.log_level = *level;
  }
  if (const json* v = find(root, "allow_open")) config.allow_open = read_bool(*v, "/allow_open");
  if (const json* v = find(root, "allow_private")) {
    config.allow_private = read_bool(*v, "/allow_private");
  }
  if (const json* v = find(root, "enable_bind")) config.enable_bind = read_bool(*v, "/enable_bind");
  if (const json* v = find(root, "cpu_slice_us")) {
    // The kernel clamps a slice to 0.1..100 ms; a value it would change is refused here.
    config.cpu_slice_us = read_count(*v, "/cpu_slice_us", 0, 100'000);
    if (config.cpu_slice_us != 0 && config.cpu_slice_us < 100) {
      fail("/cpu_slice_us", "expected 0 (the kernel's default) or 100..100000 microseconds, got " +
                                std::to_string(config.cpu_slice_us));
    }
  }
  if (const json* v = find(root, "users")) {
    if (!v->is_array()) fail("/users", "expected an array of user objects" + got(*v));
    std::set<std::string> names;
    for (std::size_t i = 0; i < v->size(); ++i) {
      User user = read_user((*v)[i], child("/users", i));
      if (!names.insert(user.name).second) {
        fail(child(child("/users", i), "name"), "user \"" + user.name + "\" is defined twice");
      }
      config.users.push_back(std::move(user));
    }
  }
  if (const json* v = find(root, "rules")) {
    if (!v->is_array()) fail("/rules", "expected an array of rule objects" + got(*v));
    for (std::size_t i = 0; i < v->size(); ++i) {
      config.rules.push_back(read_rule((*v)[i], child("/rules", i)));
    }
  }
  if (const json* v = find(root, "limits")) config.limits = read_limits(*v, "/limits");
  return config;
}

}  // namespace

std::string_view to_string(Command command) {
  switch (command) {
    case Command::connect:
      return "connect";
    case Command::bind:
      return "bind";
    case Command::udp_associate:
      return "udp_associate";
  }
  return "?";
}

std::string_view to_string(RuleAction action) {
  return action == RuleAction::allow ? "allow" : "deny";
}

std::string normalize_domain(std::string_view name) {
  std::string out(name);
  if (!out.empty() && out.back() == '.') out.pop_back();
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::expected<void, std::string> check_password_hash(const std::string& hash) {
  const std::string expected =
      "expected a crypt(3) hash like \"$y$...\" (mkpasswd) or \"$6$...\" "
      "(openssl passwd -6)";
  if (hash.size() < 4 || hash[0] != '$') return std::unexpected(expected);
  int status = crypt_checksalt(hash.c_str());
  if (status == CRYPT_SALT_INVALID || status == CRYPT_SALT_METHOD_DISABLED) {
    return std::unexpected(expected + "; this system's libcrypt does not accept \"" +
                           hash.substr(0, std::min<std::size_t>(hash.size(), 12)) + "...\"");
  }
  // A bare setting ("$6$salt") passes crypt_checksalt but could never match any password:
  // hashing anything with it must give a string of the very same shape and length.
  auto data = std::make_unique<crypt_data>();
  const char* out = crypt_rn("", hash.c_str(), data.get(), sizeof(crypt_data));
  if (out == nullptr || std::string_view(out).size() != hash.size()) {
    return std::unexpected(expected + "; this one is incomplete or malformed");
  }
  return {};
}

std::expected<SocksdConfig, Error> parse_socksd_config(std::string_view json_text,
                                                       std::string_view file_name) {
  return json_reader::read_document(json_text, file_name, read_config);
}

std::expected<SocksdConfig, Error> load_socksd_config(const std::string& file_path) {
  auto text = json_reader::read_text_file(file_path);
  if (!text) return std::unexpected(text.error());
  return parse_socksd_config(*text, file_path);
}

}  // namespace tunsocks::config
