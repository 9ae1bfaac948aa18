#include "ctl.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "config/tunsocks_config.h"

namespace tunsocks::app {
namespace {

constexpr const char* kUsage =
    "usage: tunsocks ctl [--socket PATH | --config FILE] [--json] COMMAND\n"
    "  status        profile, upstream, uptime, counters\n"
    "  flows         open TCP flows and UDP associations: addresses, bytes, age\n"
    "  switch NAME   run profile NAME from now on (new flows; open ones finish)\n"
    "  reload        re-read the config file (a bad file is refused, nothing changes)\n"
    "The socket is --socket, the control_socket of --config FILE, or /run/tunsocks/tun0.sock.\n";

int usage_error(const std::string& message) {
  std::fprintf(stderr, "tunsocks ctl: %s\n%s", message.c_str(), kUsage);
  return 2;
}

// One request, one answer line. The error says which step failed.
std::expected<std::string, std::string> ask(const std::string& path, const std::string& line) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::unexpected(std::string("socket: ") + std::strerror(errno));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) return std::unexpected("socket path too long");
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  std::string answer;
  std::string error;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) < 0) {
    error = "cannot connect to " + path + ": " + std::strerror(errno) +
            (errno == ENOENT ? " (is tunsocks running, with a control socket?)" : "");
  } else if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) !=
             static_cast<ssize_t>(line.size())) {
    error = std::string("cannot send: ") + std::strerror(errno);
  } else {
    char buffer[65536];
    while (answer.find('\n') == std::string::npos) {
      const ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
      if (got <= 0) {
        error = got == 0 ? "tunsocks closed the connection without an answer"
                         : std::string("cannot read: ") + std::strerror(errno);
        break;
      }
      answer.append(buffer, static_cast<std::size_t>(got));
    }
  }
  ::close(fd);
  if (!error.empty()) return std::unexpected(error);
  return answer.substr(0, answer.find('\n'));
}

std::string human_bytes(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(units)) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
  return text;
}

void print_status(const nlohmann::json& reply) {
  std::printf(
      "profile   %s%s\n", reply.value("profile", "?").c_str(),
      reply.value("config", "").empty() ? "" : (" (" + reply.value("config", "") + ")").c_str());
  std::printf("upstream  %s\n", reply.value("upstream", "?").c_str());
  std::printf("dns       %s\n", reply.value("dns", "?").c_str());
  std::printf("tun       %s\n", reply.value("tun", "?").c_str());
  std::printf("routes    %s\n", reply.value("routes", "?").c_str());
  std::printf("uptime    %.0f s\n", reply.value("uptime_s", 0.0));
  const auto& counters = reply.at("counters");
  std::printf("flows     %llu open, %llu total, %llu refused\n", counters.value("flows_open", 0ULL),
              counters.value("flows_total", 0ULL), counters.value("flows_refused", 0ULL));
  std::printf("bytes     %s up, %s down\n", human_bytes(counters.value("bytes_up", 0ULL)).c_str(),
              human_bytes(counters.value("bytes_down", 0ULL)).c_str());
  std::printf("udp       %llu associations open (and %llu spare), %llu datagrams up, %llu down\n",
              counters.value("udp_sessions_open", 0ULL), counters.value("udp_spares_open", 0ULL),
              counters.value("udp_datagrams_up", 0ULL), counters.value("udp_datagrams_down", 0ULL));
  std::printf("queries   %llu answered (fake-ip), %llu forwarded\n",
              counters.value("dns_answered", 0ULL), counters.value("dns_forwarded", 0ULL));
}

void print_flows(const nlohmann::json& reply) {
  const auto& flows = reply.at("flows");
  std::printf("%-5s %-8s %-45s %-45s %10s %10s %8s  %s\n", "proto", "id", "source", "destination",
              "up", "down", "age", "upstream");
  for (const auto& flow : flows) {
    std::printf("%-5s %-8llu %-45s %-45s %10s %10s %7.1fs  %s\n", flow.value("proto", "").c_str(),
                flow.value("id", 0ULL), flow.value("src", "").c_str(),
                flow.value("dst", "-").c_str(), human_bytes(flow.value("up", 0ULL)).c_str(),
                human_bytes(flow.value("down", 0ULL)).c_str(), flow.value("age_ms", 0ULL) / 1000.0,
                flow.value("upstream", "").c_str());
  }
  std::printf("%zu open\n", flows.size());
}

}  // namespace

int run_ctl(int argc, char** argv) {
  std::string socket_path, config_path;
  bool as_json = false;
  nlohmann::json request;
  for (int i = 2; i < argc; ++i) {
    const std::string_view word = argv[i];
    if (word == "--socket" || word == "--config") {
      if (i + 1 >= argc) return usage_error(std::string(word) + " needs a value");
      (word == "--socket" ? socket_path : config_path) = argv[++i];
    } else if (word == "--json") {
      as_json = true;
    } else if (word == "-h" || word == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (request.is_null() && (word == "status" || word == "flows" || word == "reload")) {
      request = {{"cmd", word}};
    } else if (request.is_null() && word == "switch") {
      if (i + 1 >= argc) return usage_error("switch needs a profile name");
      request = {{"cmd", "switch"}, {"profile", argv[++i]}};
    } else {
      return usage_error("unexpected '" + std::string(word) + "'");
    }
  }
  if (request.is_null()) return usage_error("which command?");
  if (socket_path.empty() && !config_path.empty()) {
    auto config = config::load_tunsocks_config(config_path);
    if (!config) {
      std::fprintf(stderr, "tunsocks ctl: %s\n", config.error().to_string().c_str());
      return 1;
    }
    socket_path = config->control_socket_path();
  }
  if (socket_path.empty()) socket_path = "/run/tunsocks/tun0.sock";

  auto answer = ask(socket_path, request.dump() + "\n");
  if (!answer) {
    std::fprintf(stderr, "tunsocks ctl: %s\n", answer.error().c_str());
    return 1;
  }
  nlohmann::json reply = nlohmann::json::parse(*answer, nullptr, false);
  if (reply.is_discarded() || !reply.is_object()) {
    std::fprintf(stderr, "tunsocks ctl: not a JSON answer: %s\n", answer->c_str());
    return 1;
  }
  if (!reply.value("ok", false)) {
    std::fprintf(stderr, "tunsocks ctl: %s\n", reply.value("error", "failed").c_str());
    return 1;
  }
  const std::string command = request["cmd"];
  if (as_json) {
    std::printf("%s\n", reply.dump(2).c_str());
  } else if (command == "status") {
    print_status(reply);
  } else if (command == "flows") {
    print_flows(reply);
  } else {
    std::printf("%s\n", reply.value("message", "done").c_str());
  }
  return 0;
}

}  // namespace tunsocks::app
