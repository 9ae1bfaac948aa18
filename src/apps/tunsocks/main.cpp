// tunsocks: route everything that enters a TUN device through a SOCKS proxy.
#include <cerrno>
#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <netdb.h>
#include <optional>
#include <poll.h>
#include <string>
#include <string_view>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include <uv.h>

#include "net/endpoint.h"
#include "net/ip.h"
#include "net/log.h"
#include "platform/linux/tun_device.h"
#include "tunnel/tunnel.h"
#include "tunnel/upstream_url.h"

namespace {

using namespace tunsocks;

constexpr const char* kVersion = TUNSOCKS_VERSION;

constexpr const char* kHelp = R"(Usage: tunsocks --upstream URL [options]

Routes every TCP connection and UDP datagram that enters a TUN device through a SOCKS
proxy. Each connection becomes a SOCKS CONNECT; the application's SYN is answered only
once the proxy has said yes, so a refused destination looks refused, not
accepted-then-closed. Each application UDP socket becomes one SOCKS5 UDP ASSOCIATE,
whatever the number of destinations it talks to (SOCKS4/4a upstreams carry no UDP:
datagrams are then dropped and counted).

Options:
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
  --address CIDR          IPv4 address of the TUN (default: 172.19.0.1/30)
  --address6 CIDR         IPv6 address of the TUN (default: fdfe:dcba:9876::1/126;
                          "none" for no IPv6 address)
  --fwmark N              SO_MARK on upstream sockets, so route rules can keep them out
                          of the TUN (default: 0x2d0, 720; 0 disables)
  --connect-timeout SEC   upstream connect + SOCKS handshake limit (default: 10)
  --idle-timeout SEC      close flows idle this long; 0 = never (default: 3600)
  --max-flows N           refuse new connections beyond N open flows; 0 = no limit
                          but memory and file descriptors (default: 0)
  --udp-timeout SEC       end UDP associations idle this long (default: 60; those
                          that only talked to port 53 end after at most 10)
  --max-udp-sessions N    at most N UDP associations; datagrams of new application
                          sockets beyond that are dropped and counted (default: 1024)
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
  --log-level LEVEL       error, warn, info (default), debug
  --help, --version

tunsocks does not change routes by itself yet: point routes at the TUN, and keep the
upstream's address (or packets with the fwmark) out of it, e.g.
  ip route add default dev tun0 table 100
  ip rule add not fwmark 0x2d0 table 100

Logs: one line per flow when it ends (source, destination, upstream reply, bytes each
way, duration, how it ended), and one per UDP association (`udp id=...`).
Signals: SIGUSR1 logs the counters as JSON; SIGINT/SIGTERM reset open flows, remove the
device (unless --attach) and exit 0.
)";

struct Options {
  std::string upstream;
  platform::TunConfig tun;
  tunnel::TunnelSettings settings;
  net::LogLevel log_level = net::LogLevel::info;
};

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

platform::TunAddress tun_address(std::string_view flag, std::string_view text, bool v6) {
  // The interface address is a host inside its prefix, so host bits are expected here.
  const auto slash = text.find('/');
  auto ip = net::IpAddress::parse(text.substr(0, slash));
  const std::size_t max = v6 ? 128 : 32;
  std::uint64_t prefix = max;
  if (slash != std::string_view::npos) prefix = parse_unsigned(flag, text.substr(slash + 1), max);
  if (!ip || ip->is_v6() != v6) {
    usage_error(std::string(flag) + " wants an " + (v6 ? "IPv6" : "IPv4") +
                " address with a prefix length, got '" + std::string(text) + "'");
  }
  platform::TunAddress address;
  address.family = v6 ? AF_INET6 : AF_INET;
  std::memcpy(address.bytes, ip->bytes().data(), ip->bytes().size());
  address.prefix_length = static_cast<int>(prefix);
  return address;
}

Options parse_options(int argc, char** argv) {
  Options options;
  options.tun.mtu = 65535;
  options.tun.ipv4 = tun_address("--address", "172.19.0.1/30", false);
  options.tun.ipv6 = tun_address("--address6", "fdfe:dcba:9876::1/126", true);
  options.settings.flow.fwmark = 0x2d0;
  options.settings.flow.idle_timeout_ms = 3600 * 1000;
  options.settings.dns = tunnel::DnsMode::fake_ip;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) usage_error(std::string(flag) + " needs a value");
      return argv[++i];
    };
    if (flag == "--help" || flag == "-h") {
      std::fputs(kHelp, stdout);
      std::exit(0);
    } else if (flag == "--version") {
      std::printf("tunsocks %s\n", kVersion);
      std::exit(0);
    } else if (flag == "--upstream") {
      options.upstream = value();
    } else if (flag == "--tun") {
      options.tun.name = value();
    } else if (flag == "--netns") {
      options.tun.netns = value();
    } else if (flag == "--attach") {
      options.tun.attach_only = true;
    } else if (flag == "--mtu") {
      options.tun.mtu = static_cast<int>(parse_unsigned(flag, value(), 65535));
      if (options.tun.mtu < 576) usage_error("--mtu must be at least 576");
    } else if (flag == "--address") {
      options.tun.ipv4 = tun_address(flag, value(), false);
    } else if (flag == "--address6") {
      const std::string_view text = value();
      if (text == "none") {
        options.tun.ipv6.reset();
      } else {
        options.tun.ipv6 = tun_address(flag, text, true);
      }
    } else if (flag == "--fwmark") {
      options.settings.flow.fwmark =
          static_cast<std::uint32_t>(parse_unsigned(flag, value(), 0xFFFFFFFF));
    } else if (flag == "--connect-timeout") {
      options.settings.flow.connect_timeout_ms =
          static_cast<std::uint64_t>(std::llround(parse_seconds(flag, value()) * 1000));
      if (options.settings.flow.connect_timeout_ms == 0)
        usage_error("--connect-timeout must be > 0");
    } else if (flag == "--idle-timeout") {
      options.settings.flow.idle_timeout_ms =
          static_cast<std::uint64_t>(std::llround(parse_seconds(flag, value()) * 1000));
    } else if (flag == "--max-flows") {
      options.settings.max_flows = parse_unsigned(flag, value(), 100'000'000);
    } else if (flag == "--udp-timeout") {
      options.settings.udp.idle_timeout_ms =
          static_cast<std::uint64_t>(std::llround(parse_seconds(flag, value()) * 1000));
      if (options.settings.udp.idle_timeout_ms == 0) usage_error("--udp-timeout must be > 0");
    } else if (flag == "--max-udp-sessions") {
      options.settings.udp.max_sessions = parse_unsigned(flag, value(), 1'000'000);
      if (options.settings.udp.max_sessions == 0) usage_error("--max-udp-sessions must be > 0");
    } else if (flag == "--dns-resolver") {
      const std::string_view text = value();
      // ADDR or ADDR:PORT ([v6] or [v6]:PORT); port 53 unless given.
      auto server = net::Endpoint::parse(text);
      if (!server) {
        if (auto ip = net::IpAddress::parse(text.starts_with('[') && text.ends_with(']')
                                                ? text.substr(1, text.size() - 2)
                                                : text)) {
          server = net::Endpoint{*ip, 53};
        }
      }
      if (!server || server->port == 0) {
        usage_error("--dns-resolver wants ADDR or ADDR:PORT ([v6]:PORT), got '" +
                    std::string(text) + "'");
      }
      options.settings.dns_server = *server;
    } else if (flag == "--answer-ping") {
      options.settings.answer_ping = true;
    } else if (flag == "--dns") {
      const std::string_view text = value();
      if (text == "fake-ip") {
        options.settings.dns = tunnel::DnsMode::fake_ip;
      } else if (text == "forward") {
        options.settings.dns = tunnel::DnsMode::forward;
      } else if (text == "tcp") {
        options.settings.dns = tunnel::DnsMode::tcp;
      } else if (text == "off") {
        options.settings.dns = tunnel::DnsMode::off;
      } else {
        usage_error("--dns wants fake-ip, forward, tcp or off, got '" + std::string(text) + "'");
      }
    } else if (flag == "--log-level") {
      const std::string_view text = value();
      auto level = net::parse_log_level(text);
      if (!level)
        usage_error("--log-level wants error, warn, info or debug, got '" + std::string(text) +
                    "'");
      options.log_level = *level;
    } else {
      usage_error("unknown option '" + std::string(flag) + "'");
    }
  }
  if (options.upstream.empty()) usage_error("--upstream URL is required");
  if (options.settings.dns == tunnel::DnsMode::tcp && !options.settings.dns_server) {
    usage_error("--dns tcp needs --dns-resolver ADDR[:PORT]: the resolver to CONNECT to");
  }
  return options;
}

// The upstream's address, resolved once at start (this is before the loop runs).
std::optional<sockaddr_storage> resolve_upstream(const tunnel::UpstreamUrl& url) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(url.port);
  const int status = ::getaddrinfo(url.host.c_str(), port.c_str(), &hints, &found);
  if (status != 0) {
    std::fprintf(stderr, "tunsocks: cannot resolve upstream host '%s': %s\n", url.host.c_str(),
                 ::gai_strerror(status));
    return std::nullopt;
  }
  sockaddr_storage address{};
  std::memcpy(&address, found->ai_addr, found->ai_addrlen);
  ::freeaddrinfo(found);
  return address;
}

// Each flow holds one socket: let the process use every descriptor it is allowed.
void raise_fd_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

// One connection attempt before the tunnel starts, so that a wrong address or a proxy that
// is down is reported at once rather than as the first refused flow. Not fatal: the
// upstream may come up later, and flows are refused cleanly until it does.
std::string probe_upstream(const sockaddr_storage& address, std::uint32_t fwmark) {
  const int fd = ::socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::strerror(errno);
  if (fwmark != 0) ::setsockopt(fd, SOL_SOCKET, SO_MARK, &fwmark, sizeof fwmark);
  const auto* target = reinterpret_cast<const sockaddr*>(&address);
  std::string error;
  if (::connect(fd, target, net::sockaddr_length(target)) < 0 && errno != EINPROGRESS) {
    error = std::strerror(errno);
  } else {
    pollfd waiting{fd, POLLOUT, 0};
    int code = 0;
    socklen_t length = sizeof code;
    if (::poll(&waiting, 1, 3000) == 0) {
      error = "no answer within 3 s";
    } else if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length) == 0 && code != 0) {
      error = std::strerror(code);
    }
  }
  ::close(fd);
  return error;
}

struct App {
  uv_loop_t* loop = nullptr;
  tunnel::Tunnel* tunnel = nullptr;
  uv_signal_t sigint{}, sigterm{}, sigusr1{};
  bool stopping = false;
};

void close_signals(App& app) {
  for (uv_signal_t* signal : {&app.sigint, &app.sigterm, &app.sigusr1}) {
    uv_close(reinterpret_cast<uv_handle_t*>(signal), nullptr);
  }
}

void on_stop_signal(uv_signal_t* handle, int signum) {
  App& app = *static_cast<App*>(handle->data);
  if (app.stopping) return;
  app.stopping = true;
  TS_LOG_INFO("%s: closing %zu flows", signum == SIGINT ? "SIGINT" : "SIGTERM",
              app.tunnel->flow_count());
  app.tunnel->stop([&app] { close_signals(app); });
}

void on_counters_signal(uv_signal_t* handle, int) {
  App& app = *static_cast<App*>(handle->data);
  TS_LOG_INFO("counters %s", app.tunnel->counters_json().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  // A write to an upstream that has just reset must come back as EPIPE to the flow, not
  // kill the process (libuv leaves SIGPIPE to the application).
  ::signal(SIGPIPE, SIG_IGN);
  Options options = parse_options(argc, argv);
  net::set_log_level(options.log_level);

  auto url = tunnel::parse_upstream_url(options.upstream);
  if (!url) usage_error(url.error());
  auto upstream_address = resolve_upstream(*url);
  if (!upstream_address) return 1;
  tunnel::FlowSettings& flow = options.settings.flow;
  auto server = std::make_shared<tunnel::Upstream>();
  server->address = *upstream_address;
  server->display = url->display();
  server->handshake.version = url->version;
  server->handshake.credentials = url->credentials;
  flow.upstream = server;
  if (options.settings.dns == tunnel::DnsMode::fake_ip &&
      url->version == tunnel::SocksVersion::socks4 && !url->remote_dns) {
    // A fake address is only worth its name, and SOCKS4 cannot send a name.
    TS_LOG_WARN("--dns fake-ip needs an upstream that takes names; %s does not: DNS is off",
                flow.upstream->display.c_str());
    options.settings.dns = tunnel::DnsMode::off;
  }

  raise_fd_limit();
  auto device = platform::TunDevice::open(options.tun);
  if (!device) {
    std::fprintf(stderr, "tunsocks: %s\n", device.error().message.c_str());
    return 1;
  }
  options.settings.mtu = device->mtu();
  TS_LOG_INFO(
      "tun %s up: mtu %d; upstream %s (%s), fwmark 0x%x", device->name().c_str(), device->mtu(),
      flow.upstream->display.c_str(),
      net::format_sockaddr(reinterpret_cast<const sockaddr*>(&flow.upstream->address)).c_str(),
      flow.fwmark);

  if (const std::string error = probe_upstream(flow.upstream->address, flow.fwmark);
      !error.empty()) {
    TS_LOG_WARN("upstream %s is not reachable now (%s): connections are refused until it is",
                flow.upstream->display.c_str(), error.c_str());
  }

  App app;
  app.loop = uv_default_loop();
  tunnel::Tunnel tunnel(app.loop, device->fd(), options.settings);
  app.tunnel = &tunnel;
  if (int status = tunnel.start(); status < 0) {
    std::fprintf(stderr, "tunsocks: cannot watch the TUN device: %s\n", uv_strerror(status));
    return 1;
  }
  auto watch = [&app](uv_signal_t* signal, int signum, uv_signal_cb handler) {
    uv_signal_init(app.loop, signal);
    signal->data = &app;
    uv_signal_start(signal, handler, signum);
  };
  watch(&app.sigint, SIGINT, on_stop_signal);
  watch(&app.sigterm, SIGTERM, on_stop_signal);
  watch(&app.sigusr1, SIGUSR1, on_counters_signal);
  uv_run(app.loop, UV_RUN_DEFAULT);
  TS_LOG_INFO("stopped: %s", tunnel.counters_json().c_str());
  const int status = uv_loop_close(app.loop);
  if (status != 0) TS_LOG_WARN("loop closed with handles open: %s", uv_err_name(status));
  return 0;
}
