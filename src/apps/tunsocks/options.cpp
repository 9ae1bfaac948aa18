#include "options.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "tunnel/tunnel.h"

namespace tunsocks::app {
namespace {

constexpr const char* kHelp = R"(Usage: tunsocks --upstream URL [options]
       tunsocks --config FILE [--profile NAME] [--log-level LEVEL] [--control PATH|none]
       tunsocks check --config FILE [--profile NAME]
       tunsocks ctl [--socket PATH | --config FILE] status|flows|switch NAME|reload

Routes every TCP connection and UDP datagram that enters a TUN device through a SOCKS
proxy. Each connection becomes a SOCKS CONNECT; the application's SYN is answered only
once the proxy has said yes, so a refused destination looks refused, not
accepted-then-closed. Each application UDP socket becomes one SOCKS5 UDP ASSOCIATE,
whatever the number of destinations it talks to (SOCKS4/4a upstreams carry no UDP:
datagrams are then dropped and counted).

With --config, everything comes from a JSON file with named profiles (see
configs/tunsocks.md); `tunsocks ctl switch NAME` changes the profile of a running
tunsocks without dropping the tunnel, `tunsocks ctl reload` (or SIGHUP) re-reads the file.
`tunsocks check` validates a file and prints the effective profile.

Options (without --config):
  --upstream URL          the SOCKS server: socks5://[user:pass@]host:port, socks5h://...,
                          socks4://[user@]host:port, socks4a://... (required)
  --tun NAME              TUN device to create or attach to (default: tun0)
  --attach                use an existing, already configured device as it is
  --netns NAME            create the TUN inside network namespace NAME (or a path to
                          one) while tunsocks and its upstream sockets stay here: routes
                          in NAME send its traffic through the proxy, and the upstream
                          can never be routed back into the TUN
  --mtu N                 TUN MTU, 576..65535 (default: 65535; the TUN is local, and
                          large packets cut per-packet work; see README)
  --no-offload            no checksum or segmentation offload on the TUN (default: on
                          where the kernel grants it; the log says which)
  --address CIDR          IPv4 address of the TUN (default: 172.19.0.1/30)
  --address6 CIDR         IPv6 address of the TUN (default: fdfe:dcba:9876::1/126;
                          "none" for no IPv6 address)
  --fwmark N              SO_MARK on upstream sockets, so route rules can keep them out
                          of the TUN (default: 0x2d0, 720; 0 disables)
  --routes auto|manual    auto: install policy routing into the TUN at start (and DNS in
                          fake-ip mode) with tunsocks-routes, remove it at exit, clean up
                          what a crashed run left (default: manual)
  --connect-timeout SEC   upstream connect + SOCKS handshake limit (default: 10)
  --idle-timeout SEC      close flows idle this long; 0 = never (default: 3600)
  --max-flows N           refuse new connections beyond N open flows; 0 = no limit
                          but memory and file descriptors (default: 0)
  --udp-timeout SEC       end UDP associations idle this long (default: 60; those
                          that only talked to port 53 end after at most 10)
  --max-udp-sessions N    at most N UDP associations; datagrams of new application
                          sockets beyond that are dropped and counted (default: 1024)
  --udp-spares N          while UDP is in use, keep N associations set up ahead, so a
                          new socket's first datagram does not wait for a connect and
                          a SOCKS exchange with the upstream (default: 4; 0 = none)
  --dns MODE              DNS queries (port 53) entering the TUN: fake-ip (default)
                          answers A/AAAA (UDP and TCP) from 198.18.0.0/15 and
                          fc00::/96 and sends flows to those addresses upstream by
                          name, so the proxy resolves them; other UDP queries, and
                          all of them with forward, go to the resolver asked,
                          every application socket's queries over ONE shared UDP
                          association (query IDs rewritten and mapped back);
                          tcp sends them all as DNS over TCP through one CONNECT
                          to --dns-resolver (for upstreams without UDP, SOCKS4 too);
                          off treats port 53 as any UDP. socks4:// cannot carry names:
                          fake-ip then falls back to off
  --dns-resolver ADDR[:PORT]
                          send the DNS queries that are relayed (--dns forward, and the
                          ones fake-ip does not answer) to this resolver, through the
                          proxy, instead of the one the application asked
  --answer-ping           answer ICMP echo requests (ping) here: they then say the
                          tunnel is up, not that the destination is (default: off;
                          pings are dropped, SOCKS cannot carry them)
Options (always):
  --control PATH|none     control socket for `tunsocks ctl` (default: none from flags,
                          /run/tunsocks/TUN.sock with --config)
  --log-level LEVEL       error, warn, info (default), debug
  --help, --version

Without --routes auto, point routes at the TUN yourself, and keep the upstream's address
(or packets with the fwmark) out of it, e.g.
  ip route add default dev tun0 table 100
  ip rule add not fwmark 0x2d0 table 100

Logs: one line per flow when it ends (source, destination, upstream reply, bytes each
way, duration, how it ended), and one per UDP association (`udp id=...`).
Signals: SIGUSR1 logs the counters as JSON; SIGHUP reloads the config file; SIGINT/SIGTERM
reset open flows, remove the routes (auto) and the device (unless --attach), exit 0.
)";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "tunsocks: %s (see tunsocks --help)\n", message.c_str());
  std::exit(2);
}

double parse_seconds(std::string_view flag, std::string_view text) {
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < 0 || !std::isfinite(value)) {
    usage_error(std::string(flag) + " wants a number of seconds, got '" + std::string(text) + "'");
  }
  return value;
}

std::uint64_t parse_unsigned(std::string_view flag, std::string_view text, std::uint64_t max) {
  std::uint64_t value = 0;
  int base = 10;
  if (text.starts_with("0x")) {
    base = 16;
    text.remove_prefix(2);
  }
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value > max) {
    usage_error(std::string(flag) + " wants a number up to " + std::to_string(max) + ", got '" +
                std::string(text) + "'");
  }
  return value;
}

template <class T>
T or_usage_error(std::string_view flag, std::expected<T, std::string> value) {
  if (!value) usage_error(std::string(flag) + ": " + value.error());
  return *value;
}

config::TunsocksConfig load_or_exit(const std::string& path) {
  auto loaded = config::load_tunsocks_config(path);
  if (!loaded) {
    std::fprintf(stderr, "tunsocks: %s\n", loaded.error().to_string().c_str());
    std::exit(1);
  }
  return std::move(*loaded);
}

}  // namespace

Launch parse_run_options(int argc, char** argv) {
  Launch launch;
  config::GlobalSettings& global = launch.config.global;
  config::Profile profile;
  profile.name = kCommandLineProfile;
  profile.dns = tunnel::DnsMode::fake_ip;
  std::string upstream, control, profile_name;
  std::optional<net::LogLevel> log_level;
  std::vector<std::string> profile_flags;  // given, but only meaningful without --config
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) usage_error(std::string(flag) + " needs a value");
      return argv[++i];
    };
    const bool generic = flag == "--config" || flag == "--profile" || flag == "--control" ||
                         flag == "--log-level" || flag == "--attach" || flag == "--help" ||
                         flag == "-h" || flag == "--version";
    if (!generic) profile_flags.emplace_back(flag);
    if (flag == "--help" || flag == "-h") {
      std::fputs(kHelp, stdout);
      std::exit(0);
    } else if (flag == "--version") {
      std::printf("tunsocks %s\n", TUNSOCKS_VERSION);
      std::exit(0);
    } else if (flag == "--config") {
      launch.config_path = value();
    } else if (flag == "--profile") {
      profile_name = value();
    } else if (flag == "--control") {
      control = value();
    } else if (flag == "--upstream") {
      upstream = value();
    } else if (flag == "--tun") {
      global.tun_name = value();
    } else if (flag == "--netns") {
      global.netns = value();
    } else if (flag == "--attach") {
      launch.attach_only = true;
    } else if (flag == "--mtu") {
      global.mtu = static_cast<int>(parse_unsigned(flag, value(), 65535));
      if (global.mtu < 576) usage_error("--mtu must be at least 576");
    } else if (flag == "--no-offload") {
      global.offload = false;
    } else if (flag == "--address") {
      global.address = or_usage_error(flag, config::parse_interface_address(value(), false));
    } else if (flag == "--address6") {
      const std::string_view text = value();
      if (text == "none") {
        global.address6.reset();
      } else {
        global.address6 = or_usage_error(flag, config::parse_interface_address(text, true));
      }
    } else if (flag == "--fwmark") {
      global.fwmark = static_cast<std::uint32_t>(parse_unsigned(flag, value(), 0xFFFFFFFF));
    } else if (flag == "--routes") {
      const std::string_view text = value();
      if (text != "auto" && text != "manual") {
        usage_error("--routes wants auto or manual, got '" + std::string(text) + "'");
      }
      global.routes = text == "auto" ? config::RoutesMode::automatic : config::RoutesMode::manual;
    } else if (flag == "--connect-timeout") {
      profile.connect_timeout_s = parse_seconds(flag, value());
      if (profile.connect_timeout_s == 0) usage_error("--connect-timeout must be > 0");
    } else if (flag == "--idle-timeout") {
      profile.idle_timeout_s = parse_seconds(flag, value());
    } else if (flag == "--max-flows") {
      profile.max_flows = static_cast<std::uint32_t>(parse_unsigned(flag, value(), 100'000'000));
    } else if (flag == "--udp-timeout") {
      profile.udp_timeout_s = parse_seconds(flag, value());
      if (profile.udp_timeout_s == 0) usage_error("--udp-timeout must be > 0");
    } else if (flag == "--max-udp-sessions") {
      profile.max_udp_sessions =
          static_cast<std::uint32_t>(parse_unsigned(flag, value(), 1'000'000));
      if (profile.max_udp_sessions == 0) usage_error("--max-udp-sessions must be > 0");
    } else if (flag == "--udp-spares") {
      profile.udp_spares =
          static_cast<std::uint32_t>(parse_unsigned(flag, value(), config::kMaxUdpSpares));
    } else if (flag == "--dns-resolver") {
      profile.dns_resolver = or_usage_error(flag, config::parse_resolver(value()));
    } else if (flag == "--answer-ping") {
      profile.answer_ping = true;
    } else if (flag == "--dns") {
      profile.dns = or_usage_error(flag, config::parse_dns_mode(value()));
    } else if (flag == "--log-level") {
      const std::string_view text = value();
      log_level = net::parse_log_level(text);
      if (!log_level) {
        usage_error("--log-level wants error, warn, info or debug, got '" + std::string(text) +
                    "'");
      }
    } else {
      usage_error("unknown option '" + std::string(flag) + "'");
    }
  }

  if (!launch.config_path.empty()) {
    if (!profile_flags.empty()) {
      usage_error(profile_flags.front() +
                  " cannot be combined with --config: set it in the file (a profile or the "
                  "global settings)");
    }
    launch.config = load_or_exit(launch.config_path);
    launch.profile = profile_name.empty() ? launch.config.default_profile : profile_name;
    if (launch.config.find(launch.profile) == nullptr) {
      std::fprintf(stderr, "tunsocks: %s: no profile is named \"%s\"\n", launch.config_path.c_str(),
                   launch.profile.c_str());
      std::exit(1);
    }
    launch.control = control != "none";
  } else {
    if (!profile_name.empty()) usage_error("--profile needs --config FILE");
    if (upstream.empty()) usage_error("--upstream URL is required (or --config FILE)");
    auto url = tunnel::parse_upstream_url(upstream);
    if (!url) usage_error(url.error());
    profile.upstream = *url;
    if (profile.dns == tunnel::DnsMode::tcp && !profile.dns_resolver) {
      usage_error("--dns tcp needs --dns-resolver ADDR[:PORT]: the resolver to CONNECT to");
    }
    if (global.routes == config::RoutesMode::automatic && global.fwmark == 0) {
      usage_error(
          "--routes auto needs a non-zero --fwmark (it keeps upstream sockets off the TUN)");
    }
    launch.config.file = "(command line)";
    launch.config.profiles.push_back(std::move(profile));
    launch.config.default_profile = launch.profile = kCommandLineProfile;
    launch.control = !control.empty() && control != "none";
  }
  if (launch.control && !control.empty()) {
    if (!control.starts_with('/') || control.size() > 107) {
      usage_error("--control wants an absolute path of at most 107 bytes, or none");
    }
    launch.config.global.control_socket = control;
  }
  if (log_level) launch.config.global.log_level = *log_level;
  return launch;
}

int run_check(int argc, char** argv) {
  std::string path, profile;
  for (int i = 2; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if ((flag == "--config" || flag == "--profile") && i + 1 < argc) {
      (flag == "--config" ? path : profile) = argv[++i];
    } else {
      usage_error("check takes --config FILE [--profile NAME], not '" + std::string(flag) + "'");
    }
  }
  if (path.empty()) usage_error("check needs --config FILE");
  const config::TunsocksConfig config = load_or_exit(path);
  const std::string name = profile.empty() ? config.default_profile : profile;
  const config::Profile* chosen = config.find(name);
  if (chosen == nullptr) {
    std::fprintf(stderr, "tunsocks: %s: no profile is named \"%s\"\n", path.c_str(), name.c_str());
    return 1;
  }
  std::printf("%s\n", config::describe_effective(config, *chosen).c_str());
  std::fprintf(stderr, "tunsocks: %s: OK (%zu profiles; default \"%s\")\n", path.c_str(),
               config.profiles.size(), config.default_profile.c_str());
  return 0;
}

}  // namespace tunsocks::app
