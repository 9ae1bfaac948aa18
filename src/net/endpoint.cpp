#include "net/endpoint.h"

#include <arpa/inet.h>
#include <charconv>
#include <cstring>
#include <netinet/in.h>

namespace tunsocks::net {

std::optional<std::uint16_t> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(value);
}

std::expected<Endpoint, std::string> Endpoint::parse(std::string_view text) {
  auto fail = [&](std::string_view why) {
    return std::unexpected("expected ADDR:PORT like 127.0.0.1:1080 or [::1]:1080 (" +
                           std::string(why) + "), got \"" + std::string(text) + "\"");
  };
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    auto close = text.find(']');
    if (close == std::string_view::npos) return fail("missing ']'");
    host = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':') return fail("missing :PORT");
    port = text.substr(close + 2);
    auto ip = IpAddress::parse(host);
    if (!ip || !ip->is_v6()) return fail("not an IPv6 address inside brackets");
    auto p = parse_port(port);
    if (!p) return fail("port must be 0..65535");
    return Endpoint{*ip, *p};
  }
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return fail("missing :PORT");
  host = text.substr(0, colon);
  port = text.substr(colon + 1);
  if (host.find(':') != std::string_view::npos) return fail("IPv6 addresses go in brackets");
  auto ip = IpAddress::parse(host);
  if (!ip) return fail("not an IPv4 address");
  auto p = parse_port(port);
  if (!p) return fail("port must be 0..65535");
  return Endpoint{*ip, *p};
}

std::optional<Endpoint> Endpoint::from_sockaddr(const sockaddr* address) {
  auto ip = IpAddress::from_sockaddr(address);
  if (!ip) return std::nullopt;
  return Endpoint{*ip, sockaddr_port(address)};
}

std::string Endpoint::to_string() const {
  // Appended piece by piece: g++ 12 -O3 reports a false -Wrestrict for "[" + std::string.
  const bool v6 = ip.is_v6();
  std::string text;
  if (v6) text += '[';
  text += ip.to_string();
  if (v6) text += ']';
  text += ':';
  text += std::to_string(port);
  return text;
}

std::expected<sockaddr_storage, std::string> parse_endpoint(std::string_view text) {
  auto endpoint = Endpoint::parse(text);
  if (!endpoint) return std::unexpected(endpoint.error());
  return endpoint->to_sockaddr();
}

std::string format_sockaddr(const sockaddr* address) {
  auto endpoint = Endpoint::from_sockaddr(address);
  return endpoint ? endpoint->to_string() : std::string("-");
}

socklen_t sockaddr_length(const sockaddr* address) {
  if (address != nullptr && address->sa_family == AF_INET) return sizeof(sockaddr_in);
  if (address != nullptr && address->sa_family == AF_INET6) return sizeof(sockaddr_in6);
  return sizeof(sockaddr_storage);
}

std::uint16_t sockaddr_port(const sockaddr* address) {
  if (address == nullptr) return 0;
  if (address->sa_family == AF_INET) {
    sockaddr_in in{};
    std::memcpy(&in, address, sizeof in);
    return ntohs(in.sin_port);
  }
  if (address->sa_family == AF_INET6) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, address, sizeof in6);
    return ntohs(in6.sin6_port);
  }
  return 0;
}

}  // namespace tunsocks::net
