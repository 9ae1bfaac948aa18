#include "routes.h"

#include <climits>
#include <cstdlib>
#include <unistd.h>

#include "net/log.h"
#include "tunnel/tunnel.h"

namespace tunsocks::app {
namespace {

// A file name for the namespace (a name or a path) to keep state files apart.
std::string namespace_tag(const std::string& netns) {
  std::string tag = netns.substr(netns.rfind('/') + 1);
  for (char& c : tag) {
    if (c == ' ' || c == '/') c = '_';
  }
  return tag;
}

// The peer address of the TUN's own IPv4 address: in its prefix, so routed into the TUN
// whatever the include list says, and not local (the kernel would answer a local one).
std::string dns_peer(const config::InterfaceAddress& address) {
  auto bytes = address.ip.bytes();
  std::uint32_t value =
      static_cast<std::uint32_t>(bytes[0]) << 24 | bytes[1] << 16 | bytes[2] << 8 | bytes[3];
  value = address.prefix_length >= 31 ? value ^ 1U : value + 1;
  return net::IpAddress::v4(value).to_string();
}

}  // namespace

std::string find_routes_script() {
  char self[PATH_MAX];
  const ssize_t length = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (length > 0) {
    std::string path(self, static_cast<std::size_t>(length));
    path = path.substr(0, path.rfind('/') + 1) + "tunsocks-routes";
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return "tunsocks-routes";  // uv_spawn searches PATH
}

Routes::Routes(uv_loop_t* loop, const config::TunsocksConfig& config)
    : loop_(loop),
      tun_(config.global.tun_name),
      fwmark_(config.global.fwmark),
      table_(config.route_table()),
      priority_(config.global.route_priority),
      dns_address_(dns_peer(config.global.address)) {
  const std::string& netns = config.global.netns;
  if (!netns.empty()) {
    prefix_ = {"nsenter",
               "--net=" + (netns.find('/') == std::string::npos ? "/run/netns/" + netns : netns)};
  }
  prefix_.push_back(find_routes_script());
  state_file_ = "/run/tunsocks/routes-" +
                (netns.empty() ? std::string() : namespace_tag(netns) + "-") + tun_ + ".state";
  process_.data = this;
}

std::string Routes::describe() const {
  return "auto (table " + std::to_string(table_) + ", state " + state_file_ + ")";
}

std::vector<std::string> Routes::profile_arguments(const config::Profile& profile) const {
  std::vector<std::string> arguments{"--tun", tun_, "--state", state_file_};
  for (const net::Cidr& cidr : profile.include) {
    arguments.insert(arguments.end(), {"--include", cidr.to_string()});
  }
  for (const net::Cidr& cidr : profile.exclude) {
    arguments.insert(arguments.end(), {"--exclude", cidr.to_string()});
  }
  // Only fake-ip needs the system's queries: forward and tcp relay them wherever they go.
  if (profile.dns == tunnel::DnsMode::fake_ip) {
    arguments.insert(arguments.end(), {"--dns", dns_address_});
  }
  return arguments;
}

void Routes::up(const config::Profile& profile, Done done) {
  std::vector<std::string> arguments{"up",
                                     "--fwmark",
                                     std::to_string(fwmark_),
                                     "--table",
                                     std::to_string(table_),
                                     "--priority",
                                     std::to_string(priority_)};
  auto rest = profile_arguments(profile);
  arguments.insert(arguments.end(), rest.begin(), rest.end());
  enqueue(std::move(arguments), std::move(done));
}

void Routes::update(const config::Profile& profile, Done done) {
  std::vector<std::string> arguments{"update"};
  auto rest = profile_arguments(profile);
  arguments.insert(arguments.end(), rest.begin(), rest.end());
  enqueue(std::move(arguments), std::move(done));
}

void Routes::down(Done done) {
  enqueue({"down", "--tun", tun_, "--state", state_file_}, std::move(done));
}

void Routes::enqueue(std::vector<std::string> arguments, Done done) {
  std::vector<std::string> argv = prefix_;
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  queue_.push_back({std::move(argv), std::move(done)});
  if (!running_) run_next();
}

void Routes::run_next() {
  if (queue_.empty()) return;
  Command& command = queue_.front();
  std::vector<char*> argv;
  for (std::string& word : command.argv)
    argv.push_back(word.data());
  argv.push_back(nullptr);
  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_INHERIT_FD;
  stdio[1].data.fd = 2;  // its output belongs in the log, not in ours stdout
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;
  uv_process_options_t options{};
  options.file = argv[0];
  options.args = argv.data();
  options.stdio = stdio;
  options.stdio_count = 3;
  options.exit_cb = [](uv_process_t* process, std::int64_t status, int signal) {
    static_cast<Routes*>(process->data)->on_exit(status, signal);
  };
  std::string line;
  for (const std::string& word : command.argv)
    line += (line.empty() ? "" : " ") + word;
  TS_LOG_INFO("routes: running %s", line.c_str());
  running_ = true;
  if (const int status = uv_spawn(loop_, &process_, &options); status < 0) {
    TS_LOG_ERROR("routes: cannot run %s: %s", argv[0], uv_strerror(status));
    finish(false);  // uv_spawn initialised the handle even so
  }
}

void Routes::on_exit(std::int64_t status, int signal) {
  const bool ok = status == 0 && signal == 0;
  if (!ok) {
    TS_LOG_ERROR("routes: %s failed (exit status %lld%s)",
                 queue_.front().argv[prefix_.size()].c_str(), static_cast<long long>(status),
                 signal != 0 ? ", killed by a signal" : "");
  }
  finish(ok);
}

void Routes::finish(bool ok) {
  last_ok_ = ok;
  uv_close(reinterpret_cast<uv_handle_t*>(&process_), [](uv_handle_t* handle) {
    auto* self = static_cast<Routes*>(handle->data);
    self->running_ = false;
    Command finished = std::move(self->queue_.front());
    self->queue_.pop_front();
    if (finished.done) finished.done(self->last_ok_);
    self->run_next();
  });
}

}  // namespace tunsocks::app
