// tunsocks: route everything that enters a TUN device through a SOCKS proxy.
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <expected>
#include <malloc.h>
#include <memory>
#include <netdb.h>
#include <string>
#include <string_view>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <uv.h>

#include "control_server.h"
#include "ctl.h"
#include "net/endpoint.h"
#include "net/log.h"
#include "options.h"
#include "platform/linux/tun_device.h"
#include "routes.h"
#include "tunnel/tunnel.h"
#include "tunnel/upstream_probe.h"

namespace {

using namespace tunsocks;
using nlohmann::json;

// The upstream's address. Resolved when a profile is applied: at start (before any route
// points into the TUN) and on a switch or reload (blocking for the moment it takes; an IP
// literal takes none, and is what a profile whose DNS goes through the tunnel should use).
std::expected<sockaddr_storage, std::string> resolve_upstream(const tunnel::UpstreamUrl& url) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(url.port);
  const int status = ::getaddrinfo(url.host.c_str(), port.c_str(), &hints, &found);
  if (status != 0) {
    return std::unexpected("cannot resolve upstream host '" + url.host +
                           "': " + ::gai_strerror(status));
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

platform::TunAddress tun_address(const config::InterfaceAddress& address) {
  platform::TunAddress out;
  out.family = address.ip.is_v6() ? AF_INET6 : AF_INET;
  std::memcpy(out.bytes, address.ip.bytes().data(), address.ip.bytes().size());
  out.prefix_length = address.prefix_length;
  return out;
}

std::uint64_t milliseconds(double seconds) {
  return static_cast<std::uint64_t>(seconds * 1000 + 0.5);
}

const char* offload_name(const platform::TunOffload& offload) {
  if (offload.segmentation) return "checksum+segmentation";
  if (offload.checksum) return "checksum";
  return offload.vnet_header ? "none (refused by the kernel)" : "off";
}

// Says what probing `server` found (see tunnel/upstream_probe.h); whether it takes
// pipelined requests. Not fatal when the upstream is down: it may come up later, and flows
// are refused cleanly until it does.
bool report_probe(const tunnel::Upstream& server, const tunnel::ProbeResult& probe) {
  if (!probe.unreachable.empty()) {
    TS_LOG_WARN("upstream %s is not reachable now (%s): connections are refused until it is",
                server.display.c_str(), probe.unreachable.c_str());
  } else if (probe.refused) {
    TS_LOG_WARN("upstream %s refuses our handshake (%s): connections are refused",
                server.display.c_str(), probe.no_pipelining.c_str());
  } else if (!probe.no_pipelining.empty()) {
    TS_LOG_INFO("upstream %s: requests wait for the method selection (%s)", server.display.c_str(),
                probe.no_pipelining.c_str());
  }
  return probe.pipelining;
}

bool same_upstream(const tunnel::Upstream& a, const tunnel::Upstream& b) {
  return std::memcmp(&a.address, &b.address, sizeof a.address) == 0 &&
         a.handshake.version == b.handshake.version &&
         a.handshake.credentials == b.handshake.credentials;
}

// Sets whether `settings`' upstream gets pipelined requests: at start-up by probing it
// (before any flow, so blocking is fine); see Service::probe_in_background for a switch.
void learn_pipelining(tunnel::TunnelSettings& settings, std::uint32_t fwmark) {
  auto server = std::make_shared<tunnel::Upstream>(*settings.flow.upstream);
  server->handshake.pipeline_request =
      report_probe(*server, tunnel::probe_upstream(*server, fwmark));
  settings.flow.upstream = std::move(server);
}

// The tunnel's settings for `profile`: the upstream resolved, DNS checked against what the
// upstream can carry.
std::expected<tunnel::TunnelSettings, std::string> tunnel_settings(
    const config::GlobalSettings& global, const config::Profile& profile) {
  auto address = resolve_upstream(profile.upstream);
  if (!address) return std::unexpected(address.error());
  tunnel::TunnelSettings settings;
  auto server = std::make_shared<tunnel::Upstream>();
  server->address = *address;
  server->display = profile.upstream.display();
  server->handshake.version = profile.upstream.version;
  server->handshake.credentials = profile.upstream.credentials;
  settings.flow.upstream = server;
  settings.flow.fwmark = global.fwmark;
  settings.flow.connect_timeout_ms = milliseconds(profile.connect_timeout_s);
  settings.flow.idle_timeout_ms = milliseconds(profile.idle_timeout_s);
  settings.udp.idle_timeout_ms = milliseconds(profile.udp_timeout_s);
  settings.udp.max_sessions = profile.max_udp_sessions;
  settings.udp.recycle = profile.udp_recycle;
  settings.udp.spares = profile.udp_spares;
  settings.max_flows = profile.max_flows;
  settings.dns = profile.dns;
  settings.dns_server = profile.dns_resolver;
  settings.answer_ping = profile.answer_ping;
  settings.udp_blocked = profile.udp == config::UdpPolicy::block;
  if (settings.dns == tunnel::DnsMode::fake_ip &&
      profile.upstream.version == tunnel::SocksVersion::socks4 && !profile.upstream.remote_dns) {
    // A fake address is only worth its name, and SOCKS4 cannot send a name.
    TS_LOG_WARN(
        "profile %s: dns fake-ip needs an upstream that takes names; %s does not: DNS is off",
        profile.name.c_str(), server->display.c_str());
    settings.dns = tunnel::DnsMode::off;
  }
  return settings;
}

// The running tunsocks: the device, the tunnel, the control socket, the routes, the
// signals, and the profile in force. One teardown path: stop() → tunnel → control socket
// → routes down → signals; the loop then ends.
class Service {
 public:
  Service(uv_loop_t* loop, app::Launch launch, platform::TunDevice& device,
          tunnel::TunnelSettings settings)
      : loop_(loop),
        launch_(std::move(launch)),
        device_(device),
        tunnel_(loop, device.fd(), std::move(settings)),
        routes_(loop, launch_.config) {}

  int start() {
    if (int status = tunnel_.start(); status < 0) {
      std::fprintf(stderr, "tunsocks: cannot watch the TUN device: %s\n", uv_strerror(status));
      return 1;
    }
    started_ms_ = uv_now(loop_);
    watch(sigint_, SIGINT);
    watch(sigterm_, SIGTERM);
    watch(sighup_, SIGHUP);
    watch(sigusr1_, SIGUSR1);
    if (launch_.control) {
      const std::string path = launch_.config.control_socket_path();
      auto server =
          app::ControlServer::start(loop_, path, launch_.config.global.control_mode,
                                    [this](const json& request) { return handle(request); });
      if (!server) {
        TS_LOG_ERROR("%s", server.error().c_str());
        stop(1);
        return 0;
      }
      control_ = std::move(*server);
      TS_LOG_INFO("control socket %s (mode 0%o)", path.c_str(), launch_.config.global.control_mode);
    }
    if (auto_routes()) {
      routes_.up(profile(), [this](bool ok) {
        if (!ok) {
          TS_LOG_ERROR("routes: could not be installed; stopping (nothing of them is left)");
          return stop(1);
        }
        routes_up_ = true;
      });
    }
    return 0;
  }

  void stop(int exit_code) {
    if (stopping_) return;
    stopping_ = true;
    probe_cancel_ = true;  // the loop cannot end before a background probe has
    exit_code_ = exit_code;
    TS_LOG_INFO("stopping: closing %zu flows", tunnel_.flow_count());
    tunnel_.stop([this] {
      auto after_control = [this] {
        if (!auto_routes()) return close_signals();
        // Also when `up` failed or is still running: its state file says what to undo.
        routes_.down([this](bool ok) {
          if (!ok) {
            TS_LOG_ERROR("routes: down failed; see tunsocks-routes status");
            exit_code_ = 1;
          }
          close_signals();
        });
      };
      if (control_) return control_->close(after_control);
      after_control();
    });
  }

  [[nodiscard]] int exit_code() const { return exit_code_; }
  [[nodiscard]] const tunnel::Tunnel& tunnel() const { return tunnel_; }

  void on_signal(int signum) {
    switch (signum) {
      case SIGINT:
      case SIGTERM:
        TS_LOG_INFO("%s received", signum == SIGINT ? "SIGINT" : "SIGTERM");
        return stop(0);
      case SIGHUP: {
        const json reply = reload();
        if (reply.value("ok", false)) return;
        return;  // reload() logged why
      }
      case SIGUSR1:
        TS_LOG_INFO("counters %s", tunnel_.counters_json().c_str());
        return;
    }
  }

 private:
  [[nodiscard]] bool auto_routes() const {
    return launch_.config.global.routes == config::RoutesMode::automatic;
  }
  [[nodiscard]] const config::Profile& profile() const {
    return *launch_.config.find(launch_.profile);
  }

  // Probes `upstream`, the running one, on libuv's thread pool: the loop goes on serving
  // meanwhile (a dead upstream would hold it for the whole connect timeout). When the
  // answer comes and `upstream` still runs, new flows get what was learnt.
  void probe_in_background(std::shared_ptr<const tunnel::Upstream> upstream, std::uint32_t fwmark) {
    struct Probe {
      uv_work_t request{};
      Service* service = nullptr;
      std::shared_ptr<const tunnel::Upstream> upstream;
      std::uint32_t fwmark = 0;
      tunnel::ProbeResult result;
    };
    auto probe = std::make_unique<Probe>();
    probe->request.data = probe.get();
    probe->service = this;
    probe->upstream = std::move(upstream);
    probe->fwmark = fwmark;
    auto work = [](uv_work_t* request) {
      auto* p = static_cast<Probe*>(request->data);
      p->result =
          tunnel::probe_upstream(*p->upstream, p->fwmark, {.cancel = &p->service->probe_cancel_});
    };
    auto done = [](uv_work_t* request, int status) {
      std::unique_ptr<Probe> p(static_cast<Probe*>(request->data));
      if (status < 0) return;
      p->service->probe_done(p->upstream, p->result);
    };
    if (uv_queue_work(loop_, &probe->request, work, done) == 0) probe.release();
  }

  void probe_done(const std::shared_ptr<const tunnel::Upstream>& probed,
                  const tunnel::ProbeResult& result) {
    // Stale when another switch came first: its own probe speaks for its upstream.
    if (stopping_ || tunnel_.flow_settings().upstream != probed) return;
    if (!report_probe(*probed, result)) return;
    auto server = std::make_shared<tunnel::Upstream>(*probed);
    server->handshake.pipeline_request = true;
    tunnel_.update_upstream(std::move(server));
    TS_LOG_INFO("upstream %s: requests pipelined from now on", probed->display.c_str());
  }

  void watch(uv_signal_t& signal, int signum) {
    uv_signal_init(loop_, &signal);
    signal.data = this;
    uv_signal_start(
        &signal,
        [](uv_signal_t* handle, int number) {
          static_cast<Service*>(handle->data)->on_signal(number);
        },
        signum);
  }

  void close_signals() {
    for (uv_signal_t* signal : {&sigint_, &sigterm_, &sighup_, &sigusr1_}) {
      uv_close(reinterpret_cast<uv_handle_t*>(signal), nullptr);
    }
  }

  json handle(const json& request) {
    const std::string command = request["cmd"];
    if (command == "status") return status();
    if (command == "flows") {
      return {{"ok", true}, {"flows", json::parse(tunnel_.flows_json())}};
    }
    if (command == "switch") {
      if (!request.contains("profile") || !request["profile"].is_string()) {
        return failure("switch needs \"profile\": NAME");
      }
      return switch_to(request["profile"].get<std::string>(), launch_.config);
    }
    if (command == "reload") return reload();
    return failure("unknown command \"" + command + "\" (status, flows, switch, reload)");
  }

  static json failure(const std::string& message) { return {{"ok", false}, {"error", message}}; }

  json status() const {
    const config::Profile& current = profile();
    return {{"ok", true},
            {"profile", current.name},
            {"config", launch_.config_path},
            {"profiles",
             [this] {
               auto names = json::array();
               for (const config::Profile& p : launch_.config.profiles)
                 names.push_back(p.name);
               return names;
             }()},
            {"upstream", current.upstream.display()},
            {"dns", config::dns_mode_name(current.dns)},
            {"tun", device_.name()},
            {"routes", auto_routes() ? routes_.describe() : "manual"},
            {"uptime_s", static_cast<double>(uv_now(loop_) - started_ms_) / 1000},
            {"counters", json::parse(tunnel_.counters_json())}};
  }

  // Makes `name` of `config` the running profile (config becomes the running one).
  json switch_to(const std::string& name, const config::TunsocksConfig& next_config) {
    if (stopping_) return failure("stopping");
    const config::Profile* next = next_config.find(name);
    if (next == nullptr) {
      std::string names;
      for (const config::Profile& p : next_config.profiles)
        names += (names.empty() ? "" : ", ") + p.name;
      return failure("no profile is named \"" + name + "\" (profiles: " + names + ")");
    }
    auto settings = tunnel_settings(next_config.global, *next);
    if (!settings) return failure("profile " + name + ": " + settings.error());
    // A switch that keeps the upstream keeps what was learnt about it; a new one gets
    // requests in turn (what every server takes) until the probe says more.
    const tunnel::Upstream& running = *tunnel_.flow_settings().upstream;
    const bool new_upstream = !same_upstream(running, *settings->flow.upstream);
    if (!new_upstream) {
      auto server = std::make_shared<tunnel::Upstream>(*settings->flow.upstream);
      server->handshake.pipeline_request = running.handshake.pipeline_request;
      settings->flow.upstream = std::move(server);
    }
    const bool reset = next->on_switch == config::OnSwitch::reset;
    const std::string previous = launch_.profile;
    tunnel_.reconfigure(std::move(*settings), reset);
    if (new_upstream)
      probe_in_background(tunnel_.flow_settings().upstream, next_config.global.fwmark);
    if (&next_config != &launch_.config) launch_.config = next_config;
    launch_.profile = name;
    TS_LOG_INFO("profile %s -> %s: upstream %s, dns %s; open flows %s", previous.c_str(),
                name.c_str(), next->upstream.display().c_str(),
                std::string(config::dns_mode_name(next->dns)).c_str(), reset ? "reset" : "kept");
    if (auto_routes() && routes_up_) {
      routes_.update(profile(), [](bool ok) {
        if (!ok)
          TS_LOG_ERROR("routes: the update for the new profile failed; routes are as before");
      });
    }
    return {{"ok", true},
            {"message", "switched to " + name + " (upstream " + next->upstream.display() + ")"}};
  }

  json reload() {
    if (launch_.config_path.empty()) {
      return failure("started from command-line flags: there is no file to reload");
    }
    auto loaded = config::load_tunsocks_config(launch_.config_path);
    if (!loaded) {
      const std::string why = loaded.error().to_string();
      TS_LOG_WARN("reload refused, still running profile %s: %s", launch_.profile.c_str(),
                  why.c_str());
      return failure("reload refused (still running profile " + launch_.profile + "): " + why);
    }
    const config::GlobalSettings& now = launch_.config.global;
    const config::GlobalSettings& next = loaded->global;
    if (next.tun_name != now.tun_name || next.mtu != now.mtu || next.address != now.address ||
        next.address6 != now.address6 || next.netns != now.netns || next.fwmark != now.fwmark ||
        next.routes != now.routes ||
        loaded->control_socket_path() != launch_.config.control_socket_path() ||
        loaded->route_table() != launch_.config.route_table() ||
        next.route_priority != now.route_priority) {
      TS_LOG_WARN(
          "reload: TUN, fwmark, route table and control socket settings take effect at "
          "the next start; the running ones are kept");
    }
    loaded->global.tun_name = now.tun_name;
    loaded->global.mtu = now.mtu;
    loaded->global.address = now.address;
    loaded->global.address6 = now.address6;
    loaded->global.netns = now.netns;
    loaded->global.fwmark = now.fwmark;
    loaded->global.routes = now.routes;
    loaded->global.control_socket = launch_.config.control_socket_path();
    loaded->global.route_table = launch_.config.route_table();
    loaded->global.route_priority = now.route_priority;
    net::set_log_level(loaded->global.log_level);
    if (loaded->find(launch_.profile) == nullptr) {
      TS_LOG_WARN("reload refused: the running profile %s is not in the file any more",
                  launch_.profile.c_str());
      return failure("reload refused: the running profile " + launch_.profile +
                     " is not in the file any more (switch to another one first)");
    }
    json reply = switch_to(launch_.profile, *loaded);
    if (reply.value("ok", false)) {
      TS_LOG_INFO("reloaded %s", launch_.config_path.c_str());
      reply["message"] = "reloaded " + launch_.config_path + "; running profile " + launch_.profile;
    }
    return reply;
  }

  uv_loop_t* loop_;
  app::Launch launch_;
  platform::TunDevice& device_;
  tunnel::Tunnel tunnel_;
  app::Routes routes_;
  std::unique_ptr<app::ControlServer> control_;
  uv_signal_t sigint_{}, sigterm_{}, sighup_{}, sigusr1_{};
  std::uint64_t started_ms_ = 0;
  bool routes_up_ = false;
  bool stopping_ = false;
  // Read by a probe on the thread pool (probe_in_background): stop() ends it early.
  std::atomic<bool> probe_cancel_{false};
  int exit_code_ = 0;
};

int run(int argc, char** argv) {
  app::Launch launch = app::parse_run_options(argc, argv);
  const config::GlobalSettings& global = launch.config.global;
  net::set_log_level(global.log_level);
  const config::Profile& profile = *launch.config.find(launch.profile);
  auto settings = tunnel_settings(global, profile);
  if (!settings) {
    std::fprintf(stderr, "tunsocks: %s\n", settings.error().c_str());
    return 1;
  }

  raise_fd_limit();
  platform::TunConfig tun;
  tun.name = global.tun_name;
  tun.netns = global.netns;
  tun.mtu = global.mtu;
  tun.attach_only = launch.attach_only;
  tun.offload = global.offload;
  tun.ipv4 = tun_address(global.address);
  if (global.address6) tun.ipv6 = tun_address(*global.address6);
  auto device = platform::TunDevice::open(tun);
  if (!device) {
    std::fprintf(stderr, "tunsocks: %s\n", device.error().message.c_str());
    return 1;
  }
  const platform::TunOffload& offload = device->offload();
  settings->framing = {.vnet_header = offload.vnet_header,
                       .checksum_offload = offload.checksum,
                       .segmentation = offload.segmentation,
                       .mtu = device->mtu()};
  // After the device: a TUN error is the one line printed when there is no device.
  learn_pipelining(*settings, global.fwmark);
  const tunnel::Upstream& upstream = *settings->flow.upstream;
  TS_LOG_INFO(
      "tun %s up: mtu %d, offload %s; profile %s; upstream %s (%s, requests %s), fwmark 0x%x",
      device->name().c_str(), device->mtu(), offload_name(offload), profile.name.c_str(),
      upstream.display.c_str(),
      net::format_sockaddr(reinterpret_cast<const sockaddr*>(&upstream.address)).c_str(),
      upstream.handshake.pipeline_request ? "pipelined" : "in turn", global.fwmark);

  uv_loop_t* loop = uv_default_loop();
  Service service(loop, std::move(launch), *device, std::move(*settings));
  if (const int status = service.start(); status != 0) return status;
  uv_run(loop, UV_RUN_DEFAULT);
  TS_LOG_INFO("stopped: %s", service.tunnel().counters_json().c_str());
  if (const int status = uv_loop_close(loop); status != 0) {
    TS_LOG_WARN("loop closed with handles open: %s", uv_err_name(status));
  }
  return service.exit_code();
}

}  // namespace

int main(int argc, char** argv) {
  // A write to an upstream that has just reset must come back as EPIPE to the flow, not
  // kill the process (libuv leaves SIGPIPE to the application).
  ::signal(SIGPIPE, SIG_IGN);
  // Each segment lives in a packet-sized allocation (up to 64 KiB) from the TUN read or the
  // upstream read until it is delivered. glibc hands the top of the heap back to the kernel
  // as soon as 128 KiB are free there, so a stream faulted the same pages in again and
  // again (page faults and page clearing were a tenth of tunsocks' time in a profile of
  // one stream). Keep up to 2 MiB of free heap instead; it is only ever what a burst used.
  ::mallopt(M_TRIM_THRESHOLD, 2 << 20);
  // Downloads are read into 256 KiB blocks that live until the application acknowledged
  // them (src/tunnel/payload_block.h). At glibc's default threshold (128 KiB) each would be
  // an mmap, page faults and a munmap; from the heap they are reused.
  ::mallopt(M_MMAP_THRESHOLD, 1 << 20);
  const std::string_view command = argc > 1 ? argv[1] : "";
  if (command == "check") return app::run_check(argc, argv);
  if (command == "ctl") return app::run_ctl(argc, argv);
  return run(argc, argv);
}
