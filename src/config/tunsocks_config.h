// tunsocks' configuration file: global settings and named profiles, JSON in, typed and
// validated values out (configs/tunsocks.md documents every key; configs/tunsocks.json is
// the example).
//
// A profile may extend another: it starts from its parent's effective values and
// overrides the keys it names (a list such as routes.include is replaced, not appended).
// Secrets need not sit in the file: "password_env" and "password_file" are read at load
// time, so a reload picks up a rotated password. Every error is one line naming the file,
// the JSON path and what was expected; a file with any error yields no config at all, so
// a bad reload can never half-apply.
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
#include "tunnel/upstream_url.h"

namespace tunsocks::tunnel {
enum class DnsMode : std::uint8_t;
}

namespace tunsocks::config {

// An address of the TUN itself: a host inside its prefix, so host bits are expected.
struct InterfaceAddress {
  net::IpAddress ip;
  int prefix_length = 0;
  [[nodiscard]] std::string to_string() const;
  friend bool operator==(const InterfaceAddress&, const InterfaceAddress&) = default;
};

// What to do with UDP that is not DNS: relay it through UDP ASSOCIATE, or drop it here
// (counted) for upstreams or networks where UDP should not leave at all.
enum class UdpPolicy : std::uint8_t { associate, block };

// What happens to open flows when the running profile changes to this one.
enum class OnSwitch : std::uint8_t { keep, reset };

constexpr std::uint32_t kMaxUdpSpares = 64;

struct Profile {
  std::string name;
  std::string extends;           // empty: none
  tunnel::UpstreamUrl upstream;  // credentials resolved (URL, keys, env or file)
  tunnel::DnsMode dns{};         // fake-ip unless the profile says otherwise
  std::optional<net::Endpoint> dns_resolver;
  UdpPolicy udp = UdpPolicy::associate;
  double connect_timeout_s = 10;
  double idle_timeout_s = 3600;  // 0 = never
  double udp_timeout_s = 60;
  std::uint32_t max_flows = 0;  // 0 = no limit but memory and file descriptors
  std::uint32_t max_udp_sessions = 1024;
  // At max_udp_sessions (or the upstream's limit), an answered association goes to the
  // next new socket instead of being closed and replaced (see configs/tunsocks.md).
  bool udp_recycle = true;
  // UDP associations set up ahead while UDP is in use (see configs/tunsocks.md).
  std::uint32_t udp_spares = 4;
  bool answer_ping = false;
  std::vector<net::Cidr> include;  // empty: everything goes to the TUN
  std::vector<net::Cidr> exclude;
  OnSwitch on_switch = OnSwitch::keep;
};

enum class RoutesMode : std::uint8_t { manual, automatic };

struct GlobalSettings {
  std::string tun_name = "tun0";
  std::string netns;  // empty: the TUN is created in tunsocks' own namespace
  int mtu = 65535;
  bool offload = true;  // the TUN's checksum and segmentation offload (src/tunnel/tun_io.h)
  InterfaceAddress address{*net::IpAddress::parse("172.19.0.1"), 30};
  std::optional<InterfaceAddress> address6 =
      InterfaceAddress{*net::IpAddress::parse("fdfe:dcba:9876::1"), 126};
  net::LogLevel log_level = net::LogLevel::info;
  std::string control_socket;  // empty: /run/tunsocks/<tun name>.sock
  std::uint32_t control_mode = 0600;
  std::uint32_t fwmark = 0x2d0;
  RoutesMode routes = RoutesMode::manual;
  std::uint32_t route_table = 0;  // 0: the fwmark's value
  std::uint32_t route_priority = 2000;
};

struct TunsocksConfig {
  std::string file;  // as given to the loader
  GlobalSettings global;
  std::vector<Profile> profiles;  // effective values, "extends" applied; sorted by name
  std::string default_profile;

  [[nodiscard]] const Profile* find(std::string_view name) const;
  // The control socket path with its default applied.
  [[nodiscard]] std::string control_socket_path() const;
  [[nodiscard]] std::uint32_t route_table() const;
};

// `file_name` is only used in messages. The environment and password files are read here.
[[nodiscard]] std::expected<TunsocksConfig, Error> parse_tunsocks_config(
    std::string_view json_text, std::string_view file_name);
[[nodiscard]] std::expected<TunsocksConfig, Error> load_tunsocks_config(
    const std::string& file_path);

// `profile` of `config` as JSON (two-space indented), password masked: what
// `tunsocks check` prints, and what the control socket's status names.
[[nodiscard]] std::string describe_effective(const TunsocksConfig& config, const Profile& profile);

// The pieces the command line shares with the file, so both accept the same spellings.
[[nodiscard]] std::expected<InterfaceAddress, std::string> parse_interface_address(
    std::string_view text, bool v6);
[[nodiscard]] std::expected<tunnel::DnsMode, std::string> parse_dns_mode(std::string_view text);
[[nodiscard]] std::string_view dns_mode_name(tunnel::DnsMode mode);
// ADDR, ADDR:PORT or [v6]:PORT; port 53 unless given.
[[nodiscard]] std::expected<net::Endpoint, std::string> parse_resolver(std::string_view text);

}  // namespace tunsocks::config
