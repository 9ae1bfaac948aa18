#include "config/socksd_config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <crypt.h>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

namespace tunsocks::config {
namespace {

using json = nlohmann::json;

// Thrown inside this file only and turned into an Error at the boundary: the parser reads
// as a straight line of checks instead of threading an expected through every helper.
struct Failure {
  std::string path;
  std::string message;
};

[[noreturn]] void fail(std::string path, std::string message) {
  throw Failure{std::move(path), std::move(message)};
}

std::string escape_pointer_token(std::string_view key) {
  std::string out;
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string child(const std::string& path, std::string_view key) {
  return path + "/" + escape_pointer_token(key);
}
std::string child(const std::string& path, std::size_t index) {
  return path + "/" + std::to_string(index);
}

std::string kind_of(const json& j) {
  switch (j.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a number";
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    default:
      return "something else";
  }
}

// A short rendering of an offending value for messages.
std::string shown(const json& j) {
  std::string text = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

std::string got(const json& j) {
  return ", got " + kind_of(j) + " " + shown(j);
}

void expect_object(const json& j, const std::string& path) {
  if (!j.is_object()) fail(path, "expected an object" + got(j));
}

void check_keys(const json& object, const std::string& path,
                std::initializer_list<std::string_view> known) {
  for (const auto& item : object.items()) {
    if (std::find(known.begin(), known.end(), item.key()) != known.end()) continue;
    std::string list;
    for (auto k : known) {
      if (!list.empty()) list += ", ";
      list += k;
    }
    fail(child(path, item.key()), "unknown key (expected one of: " + list + ")");
  }
}

const json* find(const json& object, std::string_view key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

bool read_bool(const json& j, const std::string& path) {
  if (!j.is_boolean()) fail(path, "expected true or false" + got(j));
  return j.get<bool>();
}

std::string read_string(const json& j, const std::string& path, std::string_view what) {
  if (!j.is_string()) fail(path, "expected " + std::string(what) + got(j));
  return j.get<std::string>();
}

const json& read_array(const json& j, const std::string& path, std::string_view what) {
  if (!j.is_array()) fail(path, "expected an array of " + std::string(what) + got(j));
  if (j.empty()) {
    fail(path, "expected a non-empty array of " + std::string(what) +
                   " (leave the key out to match anything)");
  }
  return j;
}

std::uint32_t read_count(const json& j, const std::string& path, std::uint32_t min,
                         std::uint32_t max) {
  std::string range = std::to_string(min) + ".." + std::to_string(max);
  if (!j.is_number_integer() && !j.is_number_unsigned()) {
    fail(path, "expected an integer " + range + got(j));
  }
  if (j.is_number_unsigned()) {
    auto v = j.get<std::uint64_t>();
    if (v < min || v > max) fail(path, "expected an integer " + range + got(j));
    return static_cast<std::uint32_t>(v);
  }
  auto v = j.get<std::int64_t>();
  if (v < static_cast<std::int64_t>(min) || v > static_cast<std::int64_t>(max)) {
    fail(path, "expected an integer " + range + got(j));
  }
  return static_cast<std::uint32_t>(v);
}

constexpr double kMaxSeconds = 365.0 * 24 * 3600;

double read_seconds(const json& j, const std::string& path, bool zero_allowed) {
  std::string what =
      zero_allowed ? "a number of seconds >= 0 (0 = never)" : "a number of seconds > 0";
  if (!j.is_number()) fail(path, "expected " + what + got(j));
  double v = j.get<double>();
  if (!std::isfinite(v) || v < 0 || (!zero_allowed && v == 0) || v > kMaxSeconds) {
    fail(path, "expected " + what + ", at most one year" + got(j));
  }
  return v;
}

std::vector<net::Cidr> read_cidrs(const json& j, const std::string& path) {
  std::vector<net::Cidr> out;
  const json& array = read_array(j, path, "CIDR strings like \"10.0.0.0/8\"");
  for (std::size_t i = 0; i < array.size(); ++i) {
    std::string where = child(path, i);
    auto text = read_string(array[i], where, "a CIDR string like \"10.0.0.0/8\"");
    auto cidr = net::Cidr::parse(text);
    if (!cidr) fail(where, cidr.error());
    out.push_back(*cidr);
  }
  return out;
}

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
             {"listen", "log_level", "allow_open", "allow_private", "enable_bind", "users", "rules",
              "limits"});
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

// nlohmann/json keeps the last of duplicate keys without a word; in a security config
// that hides mistakes ("allow_open" twice), so the parse callback tracks the JSON path
// and remembers the first duplicate.
class DuplicateKeyFinder {
 public:
  bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        enter_element();
        stack_.push_back(Frame{false, 0, {}, {}});
        break;
      case json::parse_event_t::array_start:
        enter_element();
        stack_.push_back(Frame{true, 0, {}, {}});
        break;
      case json::parse_event_t::key: {
        Frame& frame = stack_.back();
        frame.key = parsed.get<std::string>();
        if (!frame.seen.insert(frame.key).second && !duplicate_) duplicate_ = pointer();
        break;
      }
      case json::parse_event_t::value:
        enter_element();
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        stack_.pop_back();
        break;
    }
    return true;
  }
  [[nodiscard]] const std::optional<std::string>& duplicate() const { return duplicate_; }

 private:
  struct Frame {
    bool is_array;
    std::size_t count;  // elements seen so far (arrays)
    std::string key;    // current key (objects)
    std::set<std::string> seen;
  };
  void enter_element() {
    if (!stack_.empty() && stack_.back().is_array) ++stack_.back().count;
  }
  std::string pointer() const {
    std::string path;
    for (const Frame& f : stack_) {
      path = f.is_array ? child(path, f.count - 1) : child(path, f.key);
    }
    return path;
  }
  std::vector<Frame> stack_;
  std::optional<std::string> duplicate_;
};

std::string syntax_error_message(std::string_view text, const json::parse_error& e) {
  // Line and column of the byte nlohmann stopped at (1-based).
  std::size_t line = 1;
  std::size_t column = 1;
  std::size_t end = std::min<std::size_t>(e.byte > 0 ? e.byte - 1 : 0, text.size());
  for (std::size_t i = 0; i < end; ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  std::string what = e.what();
  // "[json.exception.parse_error.101] parse error at line 1, column 2: syntax error while
  // parsing value - ..." -> the part after the location.
  auto colon = what.find(": ");
  if (colon != std::string::npos) what = what.substr(colon + 2);
  return "invalid JSON at line " + std::to_string(line) + ", column " + std::to_string(column) +
         ": " + what;
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

std::string Error::to_string() const {
  if (path.empty()) return file + ": " + message;
  return file + ": " + path + ": " + message;
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
  std::string file(file_name);
  json root;
  DuplicateKeyFinder duplicates;
  try {
    root = json::parse(json_text.begin(), json_text.end(), std::ref(duplicates), true, false);
  } catch (const json::parse_error& e) {
    return std::unexpected(Error{file, "", syntax_error_message(json_text, e)});
  } catch (const json::exception& e) {
    return std::unexpected(Error{file, "", std::string("invalid JSON: ") + e.what()});
  }
  if (duplicates.duplicate()) {
    return std::unexpected(
        Error{file, *duplicates.duplicate(), "duplicate key (each key may appear once)"});
  }
  try {
    return read_config(root);
  } catch (const Failure& f) {
    return std::unexpected(Error{file, f.path, f.message});
  } catch (const json::exception& e) {
    // Every access above is type-checked first; this is a safety net, not a path.
    return std::unexpected(Error{file, "", std::string("unexpected JSON error: ") + e.what()});
  }
}

std::expected<SocksdConfig, Error> load_socksd_config(const std::string& file_path) {
  std::ifstream in(file_path, std::ios::binary);
  if (!in) return std::unexpected(Error{file_path, "", "cannot open the file for reading"});
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return std::unexpected(Error{file_path, "", "cannot read the file"});
  return parse_socksd_config(text.str(), file_path);
}

}  // namespace tunsocks::config
