// An IP address and a port: "127.0.0.1:1080", "[::1]:1080". The text form is the one
// every command line and config of the project uses, and the one socksd prints in
// "listening on ..." and session lines (IPv6 always in brackets).
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <sys/socket.h>

#include "net/ip.h"

namespace tunsocks::net {

struct Endpoint {
  IpAddress ip;
  std::uint16_t port = 0;  // host order

  // "ADDR:PORT" with a dotted-quad IPv4 address or a bracketed IPv6 address; port 0..65535
  // (0 lets the kernel choose). The error says what was expected.
  [[nodiscard]] static std::expected<Endpoint, std::string> parse(std::string_view text);
  [[nodiscard]] static std::optional<Endpoint> from_sockaddr(const sockaddr* address);

  [[nodiscard]] sockaddr_storage to_sockaddr() const { return ip.to_sockaddr(port); }
  [[nodiscard]] std::string to_string() const;

  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// parse() straight to a socket address (the form libuv's bind/connect take).
[[nodiscard]] std::expected<sockaddr_storage, std::string> parse_endpoint(std::string_view text);

// "127.0.0.1:80", "[::1]:80", or "-" for a family that is not IP.
[[nodiscard]] std::string format_sockaddr(const sockaddr* address);

// sizeof the concrete structure behind a sockaddr (what bind/connect want as length).
[[nodiscard]] socklen_t sockaddr_length(const sockaddr* address);

// The port of an AF_INET/AF_INET6 address, host order (0 otherwise).
[[nodiscard]] std::uint16_t sockaddr_port(const sockaddr* address);

// Parses a decimal port 0..65535 (no sign, no spaces).
[[nodiscard]] std::optional<std::uint16_t> parse_port(std::string_view text);

}  // namespace tunsocks::net
