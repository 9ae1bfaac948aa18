#include "config/tunsocks_config.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <map>
#include <set>

#include "config/json_reader.h"
#include "tunnel/tunnel.h"

namespace tunsocks::config {
namespace {

using namespace json_reader;

// One profile as written: only the keys it names. Resolving "extends" lays these over
// each other, parent first, so every error can point at the profile that wrote the value.
struct ProfileKeys {
  std::string path;  // "/profiles/work"
  std::optional<std::string> extends;
  std::optional<std::string> upstream;
  std::optional<std::string> username;
  // The password and where it came from (for messages): exactly one source per profile.
  std::optional<std::string> password;
  std::optional<tunnel::DnsMode> dns;
  std::optional<net::Endpoint> dns_resolver;
  std::optional<UdpPolicy> udp;
  std::optional<double> connect_timeout_s, idle_timeout_s, udp_timeout_s;
  std::optional<std::uint32_t> max_flows, max_udp_sessions, udp_spares;
  std::optional<bool> answer_ping, udp_recycle;
  std::optional<std::vector<net::Cidr>> include, exclude;
  std::optional<OnSwitch> on_switch;
};

template <class T>
T read_choice(const json& value, const std::string& path,
              std::initializer_list<std::pair<std::string_view, T>> choices) {
  std::string names;
  for (const auto& [name, choice] : choices) {
    if (!names.empty()) names += ", ";
    names += "\"" + std::string(name) + "\"";
  }
  const std::string text = read_string(value, path, "one of " + names);
  for (const auto& [name, choice] : choices) {
    if (text == name) return choice;
  }
  fail(path, "expected one of " + names + ", got \"" + text + "\"");
}

std::string read_secret_file(const std::string& file, const std::string& path) {
  auto text = read_text_file(file);
  if (!text) fail(path, "cannot read the password file \"" + file + "\": " + text.error().message);
  std::string secret = std::move(*text);
  // Files written by `echo` end in a newline that is not part of the password.
  if (secret.ends_with('\n')) secret.pop_back();
  if (secret.ends_with('\r')) secret.pop_back();
  if (secret.empty()) fail(path, "the password file \"" + file + "\" is empty");
  return secret;
}

std::vector<net::Cidr> read_cidr_list(const json& value, const std::string& path) {
  // An empty list is allowed here: "exclude": [] in a child undoes its parent's.
  if (value.is_array() && value.empty()) return {};
  return read_cidrs(value, path);
}

ProfileKeys read_profile_keys(const json& object, const std::string& path) {
  expect_object(object, path);
  check_keys(
      object, path,
      {"extends", "upstream", "username", "password", "password_env", "password_file", "dns",
       "dns_resolver", "udp", "connect_timeout_s", "idle_timeout_s", "udp_timeout_s", "max_flows",
       "max_udp_sessions", "udp_recycle", "udp_spares", "answer_ping", "routes", "on_switch"});
  ProfileKeys keys;
  keys.path = path;
  if (const json* v = find(object, "extends")) {
    keys.extends = read_string(*v, child(path, "extends"), "the name of another profile");
  }
  if (const json* v = find(object, "upstream")) {
    const std::string where = child(path, "upstream");
    keys.upstream = read_string(*v, where, "a socks5://, socks5h://, socks4:// or socks4a:// URL");
    if (auto url = tunnel::parse_upstream_url(*keys.upstream); !url) fail(where, url.error());
  }
  if (const json* v = find(object, "username")) {
    keys.username = read_string(*v, child(path, "username"), "a user name");
    if (keys.username->empty() || keys.username->size() > 255) {
      fail(child(path, "username"), "expected a user name of 1..255 bytes");
    }
  }
  int sources = 0;
  if (const json* v = find(object, "password")) {
    ++sources;
    keys.password = read_string(*v, child(path, "password"), "a password");
  }
  if (const json* v = find(object, "password_env")) {
    ++sources;
    const std::string where = child(path, "password_env");
    const std::string name = read_string(*v, where, "the name of an environment variable");
    const char* value = std::getenv(name.c_str());
    if (value == nullptr || *value == '\0') {
      fail(where, "the environment variable " + name + " is not set (or empty)");
    }
    keys.password = value;
  }
  if (const json* v = find(object, "password_file")) {
    ++sources;
    const std::string where = child(path, "password_file");
    keys.password = read_secret_file(read_string(*v, where, "a file name"), where);
  }
  if (sources > 1) {
    fail(path, "expected at most one of \"password\", \"password_env\" and \"password_file\"");
  }
  if (keys.password && (keys.password->empty() || keys.password->size() > 255)) {
    fail(path, "expected a password of 1..255 bytes (RFC 1929)");
  }
  if (const json* v = find(object, "dns")) {
    const std::string where = child(path, "dns");
    auto mode =
        parse_dns_mode(read_string(*v, where, "\"fake-ip\", \"forward\", \"tcp\" or \"off\""));
    if (!mode) fail(where, mode.error());
    keys.dns = *mode;
  }
  if (const json* v = find(object, "dns_resolver")) {
    const std::string where = child(path, "dns_resolver");
    auto resolver = parse_resolver(read_string(*v, where, "\"ADDR\" or \"ADDR:PORT\""));
    if (!resolver) fail(where, resolver.error());
    keys.dns_resolver = *resolver;
  }
  if (const json* v = find(object, "udp")) {
    keys.udp = read_choice<UdpPolicy>(
        *v, child(path, "udp"), {{"associate", UdpPolicy::associate}, {"block", UdpPolicy::block}});
  }
  if (const json* v = find(object, "connect_timeout_s")) {
    keys.connect_timeout_s = read_seconds(*v, child(path, "connect_timeout_s"), false);
  }
  if (const json* v = find(object, "idle_timeout_s")) {
    keys.idle_timeout_s = read_seconds(*v, child(path, "idle_timeout_s"), true);
  }
  if (const json* v = find(object, "udp_timeout_s")) {
    keys.udp_timeout_s = read_seconds(*v, child(path, "udp_timeout_s"), false);
  }
  if (const json* v = find(object, "max_flows")) {
    keys.max_flows = read_count(*v, child(path, "max_flows"), 0, 100'000'000);
  }
  if (const json* v = find(object, "max_udp_sessions")) {
    keys.max_udp_sessions = read_count(*v, child(path, "max_udp_sessions"), 1, 1'000'000);
  }
  if (const json* v = find(object, "udp_recycle")) {
    keys.udp_recycle = read_bool(*v, child(path, "udp_recycle"));
  }
  if (const json* v = find(object, "udp_spares")) {
    keys.udp_spares = read_count(*v, child(path, "udp_spares"), 0, kMaxUdpSpares);
  }
  if (const json* v = find(object, "answer_ping")) {
    keys.answer_ping = read_bool(*v, child(path, "answer_ping"));
  }
  if (const json* v = find(object, "routes")) {
    const std::string where = child(path, "routes");
    expect_object(*v, where);
    check_keys(*v, where, {"include", "exclude"});
    if (const json* list = find(*v, "include")) {
      keys.include = read_cidr_list(*list, child(where, "include"));
    }
    if (const json* list = find(*v, "exclude")) {
      keys.exclude = read_cidr_list(*list, child(where, "exclude"));
    }
  }
  if (const json* v = find(object, "on_switch")) {
    keys.on_switch = read_choice<OnSwitch>(*v, child(path, "on_switch"),
                                           {{"keep", OnSwitch::keep}, {"reset", OnSwitch::reset}});
  }
  return keys;
}

template <class T>
void overlay(T& target, const std::optional<T>& value) {
  if (value) target = *value;
}
template <class T>
void overlay(std::optional<T>& target, const std::optional<T>& value) {
  if (value) target = value;
}

// The effective profile `name`: its ancestors' keys first, then its own.
Profile resolve_profile(const std::string& name, const std::map<std::string, ProfileKeys>& all) {
  std::vector<const ProfileKeys*> chain;
  std::vector<std::string> seen;
  for (std::string at = name;;) {
    const ProfileKeys& keys = all.at(at);
    if (std::find(seen.begin(), seen.end(), at) != seen.end()) {
      std::string cycle;
      for (const std::string& step : seen)
        cycle += step + " -> ";
      fail(child(all.at(name).path, "extends"), "\"extends\" makes a cycle: " + cycle + at);
    }
    seen.push_back(at);
    chain.push_back(&keys);
    if (!keys.extends) break;
    if (!all.contains(*keys.extends)) {
      fail(child(keys.path, "extends"), "no profile is named \"" + *keys.extends + "\"");
    }
    at = *keys.extends;
  }
  Profile profile;
  profile.name = name;
  profile.dns = tunnel::DnsMode::fake_ip;
  std::optional<std::string> upstream, username, password;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    const ProfileKeys& keys = **it;
    overlay(upstream, keys.upstream);
    if (keys.upstream) {
      // A new upstream starts with the credentials its own URL carries.
      username.reset();
      password.reset();
    }
    overlay(username, keys.username);
    overlay(password, keys.password);
    overlay(profile.dns, keys.dns);
    if (keys.dns_resolver) profile.dns_resolver = keys.dns_resolver;
    overlay(profile.udp, keys.udp);
    overlay(profile.connect_timeout_s, keys.connect_timeout_s);
    overlay(profile.idle_timeout_s, keys.idle_timeout_s);
    overlay(profile.udp_timeout_s, keys.udp_timeout_s);
    overlay(profile.max_flows, keys.max_flows);
    overlay(profile.max_udp_sessions, keys.max_udp_sessions);
    overlay(profile.udp_recycle, keys.udp_recycle);
    overlay(profile.udp_spares, keys.udp_spares);
    overlay(profile.answer_ping, keys.answer_ping);
    overlay(profile.include, keys.include);
    overlay(profile.exclude, keys.exclude);
    overlay(profile.on_switch, keys.on_switch);
  }
  profile.extends = all.at(name).extends.value_or("");
  const std::string& path = all.at(name).path;
  if (!upstream) fail(path, "missing \"upstream\" (in this profile or one it extends)");
  profile.upstream = *tunnel::parse_upstream_url(*upstream);
  if (username || password) {
    tunnel::Credentials credentials = profile.upstream.credentials.value_or(tunnel::Credentials{});
    if (username) credentials.user = *username;
    if (password) credentials.password = *password;
    profile.upstream.credentials = credentials;
  }
  const auto& credentials = profile.upstream.credentials;
  if (profile.upstream.version == tunnel::SocksVersion::socks4) {
    if (credentials && !credentials->password.empty()) {
      fail(path, "a SOCKS4 upstream takes a user name but no password");
    }
  } else if (credentials && (credentials->user.empty() || credentials->password.empty())) {
    fail(path, "SOCKS5 credentials need both a user name and a password (RFC 1929)");
  }
  if (profile.dns == tunnel::DnsMode::tcp && !profile.dns_resolver) {
    fail(path, "\"dns\": \"tcp\" needs \"dns_resolver\": the resolver to CONNECT to");
  }
  return profile;
}

std::string read_name(const json& value, const std::string& path, std::string_view what) {
  std::string name = read_string(value, path, what);
  const bool ok =
      !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
      });
  if (!ok) fail(path, "expected " + std::string(what) + " of 1..64 letters, digits, '-', '_', '.'");
  return name;
}

void read_tun(const json& object, GlobalSettings& global) {
  const std::string path = "/tun";
  expect_object(object, path);
  check_keys(object, path, {"name", "mtu", "offload", "address", "address6", "netns"});
  if (const json* v = find(object, "name")) {
    global.tun_name = read_string(*v, "/tun/name", "an interface name");
    if (global.tun_name.empty() || global.tun_name.size() > 15 ||
        global.tun_name.find_first_of("/ \t:") != std::string::npos) {
      fail("/tun/name",
           "expected an interface name of 1..15 characters without '/', ':' or spaces");
    }
  }
  if (const json* v = find(object, "mtu")) {
    global.mtu = static_cast<int>(read_count(*v, "/tun/mtu", 576, 65535));
  }
  if (const json* v = find(object, "offload")) global.offload = read_bool(*v, "/tun/offload");
  if (const json* v = find(object, "address")) {
    auto address = parse_interface_address(read_string(*v, "/tun/address", "an IPv4 CIDR"), false);
    if (!address) fail("/tun/address", address.error());
    global.address = *address;
  }
  if (const json* v = find(object, "address6")) {
    if (v->is_null()) {
      global.address6.reset();
    } else {
      auto address = parse_interface_address(
          read_string(*v, "/tun/address6", "an IPv6 CIDR, or null for none"), true);
      if (!address) fail("/tun/address6", address.error());
      global.address6 = *address;
    }
  }
  if (const json* v = find(object, "netns")) {
    global.netns = read_string(*v, "/tun/netns", "a network namespace name or path");
  }
}

TunsocksConfig read_config(const json& root, std::string file) {
  expect_object(root, "");
  check_keys(root, "",
             {"tun", "log_level", "control_socket", "control_socket_mode", "fwmark", "routes",
              "route_table", "route_priority", "default_profile", "profiles"});
  TunsocksConfig config;
  config.file = std::move(file);
  GlobalSettings& global = config.global;
  if (const json* v = find(root, "tun")) read_tun(*v, global);
  if (const json* v = find(root, "log_level")) {
    const std::string text =
        read_string(*v, "/log_level", "\"error\", \"warn\", \"info\" or \"debug\"");
    auto level = net::parse_log_level(text);
    if (!level) {
      fail("/log_level",
           "expected \"error\", \"warn\", \"info\" or \"debug\", got \"" + text + "\"");
    }
    global.log_level = *level;
  }
  if (const json* v = find(root, "control_socket")) {
    global.control_socket = read_string(*v, "/control_socket", "a unix socket path");
    if (!global.control_socket.starts_with('/') || global.control_socket.size() > 107) {
      fail("/control_socket", "expected an absolute path of at most 107 bytes");
    }
  }
  if (const json* v = find(root, "control_socket_mode")) {
    const std::string text = read_string(*v, "/control_socket_mode", "an octal mode like \"0600\"");
    std::uint32_t mode = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), mode, 8);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || mode > 0777 ||
        (mode & 0600) != 0600) {
      fail("/control_socket_mode",
           "expected an octal mode like \"0600\" or \"0660\" (the owner needs rw), got \"" + text +
               "\"");
    }
    global.control_mode = mode;
  }
  if (const json* v = find(root, "fwmark")) {
    global.fwmark = read_count(*v, "/fwmark", 0, 0xFFFFFFFF);
  }
  if (const json* v = find(root, "routes")) {
    global.routes = read_choice<RoutesMode>(
        *v, "/routes", {{"manual", RoutesMode::manual}, {"auto", RoutesMode::automatic}});
  }
  if (const json* v = find(root, "route_table")) {
    global.route_table = read_count(*v, "/route_table", 1, 0xFFFFFFF0);
  }
  if (const json* v = find(root, "route_priority")) {
    global.route_priority = read_count(*v, "/route_priority", 1, 32000);
  }
  if (global.routes == RoutesMode::automatic && global.fwmark == 0) {
    fail("/fwmark",
         "\"routes\": \"auto\" needs a non-zero fwmark to keep upstream sockets off the TUN");
  }

  const json* profiles = find(root, "profiles");
  if (profiles == nullptr) fail("", "missing \"profiles\" (an object of named profiles)");
  expect_object(*profiles, "/profiles");
  if (profiles->empty()) fail("/profiles", "expected at least one profile");
  std::map<std::string, ProfileKeys> keys;
  for (const auto& item : profiles->items()) {
    const std::string path = child("/profiles", item.key());
    (void)read_name(json(item.key()), path, "a profile name");
    keys.emplace(item.key(), read_profile_keys(item.value(), path));
  }
  for (const auto& [name, unused] : keys)
    config.profiles.push_back(resolve_profile(name, keys));

  if (const json* v = find(root, "default_profile")) {
    config.default_profile = read_string(*v, "/default_profile", "a profile name");
    if (config.find(config.default_profile) == nullptr) {
      fail("/default_profile", "no profile is named \"" + config.default_profile + "\"");
    }
  } else if (config.profiles.size() == 1) {
    config.default_profile = config.profiles.front().name;
  } else {
    fail("", "missing \"default_profile\" (there is more than one profile)");
  }
  return config;
}

}  // namespace

std::string InterfaceAddress::to_string() const {
  return ip.to_string() + "/" + std::to_string(prefix_length);
}

const Profile* TunsocksConfig::find(std::string_view name) const {
  for (const Profile& profile : profiles) {
    if (profile.name == name) return &profile;
  }
  return nullptr;
}

std::string TunsocksConfig::control_socket_path() const {
  if (!global.control_socket.empty()) return global.control_socket;
  return "/run/tunsocks/" + global.tun_name + ".sock";
}

std::uint32_t TunsocksConfig::route_table() const {
  return global.route_table != 0 ? global.route_table : global.fwmark;
}

std::expected<TunsocksConfig, Error> parse_tunsocks_config(std::string_view json_text,
                                                           std::string_view file_name) {
  std::string file(file_name);
  return read_document(json_text, file_name,
                       [&file](const json& root) { return read_config(root, file); });
}

std::expected<TunsocksConfig, Error> load_tunsocks_config(const std::string& file_path) {
  auto text = read_text_file(file_path);
  if (!text) return std::unexpected(text.error());
  return parse_tunsocks_config(*text, file_path);
}

std::string describe_effective(const TunsocksConfig& config, const Profile& profile) {
  auto cidrs = [](const std::vector<net::Cidr>& list) {
    auto out = json::array();
    for (const net::Cidr& cidr : list)
      out.push_back(cidr.to_string());
    return out;
  };
  const GlobalSettings& global = config.global;
  json tun = {{"name", global.tun_name},
              {"mtu", global.mtu},
              {"offload", global.offload},
              {"address", global.address.to_string()},
              {"address6", global.address6 ? json(global.address6->to_string()) : json(nullptr)}};
  if (!global.netns.empty()) tun["netns"] = global.netns;
  char mode[8];
  std::snprintf(mode, sizeof mode, "0%o", global.control_mode);
  json out = {
      {"file", config.file},
      {"profile", profile.name},
      {"tun", tun},
      {"log_level", net::to_string(global.log_level)},
      {"control_socket", config.control_socket_path()},
      {"control_socket_mode", mode},
      {"fwmark", global.fwmark},
      {"routes", global.routes == RoutesMode::automatic ? "auto" : "manual"},
      {"route_table", config.route_table()},
      {"route_priority", global.route_priority},
      {"upstream", profile.upstream.display()},
      {"dns", dns_mode_name(profile.dns)},
      {"dns_resolver",
       profile.dns_resolver ? json(profile.dns_resolver->to_string()) : json(nullptr)},
      {"udp", profile.udp == UdpPolicy::associate ? "associate" : "block"},
      {"connect_timeout_s", profile.connect_timeout_s},
      {"idle_timeout_s", profile.idle_timeout_s},
      {"udp_timeout_s", profile.udp_timeout_s},
      {"max_flows", profile.max_flows},
      {"max_udp_sessions", profile.max_udp_sessions},
      {"udp_recycle", profile.udp_recycle},
      {"udp_spares", profile.udp_spares},
      {"answer_ping", profile.answer_ping},
      {"routes_include", cidrs(profile.include)},
      {"routes_exclude", cidrs(profile.exclude)},
      {"on_switch", profile.on_switch == OnSwitch::keep ? "keep" : "reset"},
  };
  if (!profile.extends.empty()) out["extends"] = profile.extends;
  return out.dump(2, ' ', false, json::error_handler_t::replace);
}

std::expected<InterfaceAddress, std::string> parse_interface_address(std::string_view text,
                                                                     bool v6) {
  const std::string expected = std::string("expected an ") + (v6 ? "IPv6" : "IPv4") +
                               " address with a prefix length, like " +
                               (v6 ? "\"fdfe:dcba:9876::1/126\"" : "\"172.19.0.1/30\"") +
                               ", got \"" + std::string(text) + "\"";
  const auto slash = text.find('/');
  auto ip = net::IpAddress::parse(text.substr(0, slash));
  if (!ip || ip->is_v6() != v6) return std::unexpected(expected);
  const int max = v6 ? 128 : 32;
  int prefix = max;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() || prefix < 1 ||
        prefix > max) {
      return std::unexpected(expected);
    }
  }
  return InterfaceAddress{*ip, prefix};
}

std::expected<tunnel::DnsMode, std::string> parse_dns_mode(std::string_view text) {
  for (auto mode : {tunnel::DnsMode::fake_ip, tunnel::DnsMode::forward, tunnel::DnsMode::tcp,
                    tunnel::DnsMode::off}) {
    if (text == dns_mode_name(mode)) return mode;
  }
  return std::unexpected("expected \"fake-ip\", \"forward\", \"tcp\" or \"off\", got \"" +
                         std::string(text) + "\"");
}

std::string_view dns_mode_name(tunnel::DnsMode mode) {
  switch (mode) {
    case tunnel::DnsMode::fake_ip:
      return "fake-ip";
    case tunnel::DnsMode::forward:
      return "forward";
    case tunnel::DnsMode::tcp:
      return "tcp";
    case tunnel::DnsMode::off:
      return "off";
  }
  return "?";
}

std::expected<net::Endpoint, std::string> parse_resolver(std::string_view text) {
  auto server = net::Endpoint::parse(text);
  if (!server) {
    const std::string_view bare =
        text.starts_with('[') && text.ends_with(']') ? text.substr(1, text.size() - 2) : text;
    if (auto ip = net::IpAddress::parse(bare)) server = net::Endpoint{*ip, 53};
  }
  if (!server || server->port == 0) {
    return std::unexpected("expected ADDR or ADDR:PORT ([v6]:PORT), got \"" + std::string(text) +
                           "\"");
  }
  return *server;
}

}  // namespace tunsocks::config
