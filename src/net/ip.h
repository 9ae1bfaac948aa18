// IP addresses, CIDR prefixes and the classification of special-purpose ranges (IANA's
// IPv4 and IPv6 special-purpose address registries).
//
// Classification exists for access control: a proxy must judge the address it is about
// to connect to, after name resolution, never the text a client sent ("0x7f.1",
// "2130706433" and "localhost" all end up as 127.0.0.1). IPv6 forms that carry an IPv4
// address which the kernel or a translator will reach (IPv4-mapped ::ffff:a.b.c.d, the
// deprecated IPv4-compatible ::a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16, Teredo) are
// judged by that embedded IPv4 address, so "::ffff:127.0.0.1" is loopback too.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <sys/socket.h>

namespace tunsocks::net {

class IpAddress {
 public:
  enum class Family : std::uint8_t { v4, v6 };

  IpAddress() = default;  // 0.0.0.0
  static IpAddress v4(std::array<std::uint8_t, 4> bytes);
  static IpAddress v6(std::array<std::uint8_t, 16> bytes);
  static IpAddress v4(std::uint32_t host_order);

  // Strict textual forms only: dotted-quad IPv4 ("127.1" is not an address here: configs
  // must say what they mean) and RFC 4291 IPv6 without a zone ("%eth0").
  [[nodiscard]] static std::optional<IpAddress> parse(std::string_view text);
  // AF_INET / AF_INET6 socket addresses; anything else gives nullopt.
  [[nodiscard]] static std::optional<IpAddress> from_sockaddr(const sockaddr* address);

  [[nodiscard]] Family family() const { return family_; }
  [[nodiscard]] bool is_v4() const { return family_ == Family::v4; }
  [[nodiscard]] bool is_v6() const { return family_ == Family::v6; }
  // 4 or 16 bytes, network order.
  [[nodiscard]] std::span<const std::uint8_t> bytes() const;
  // IPv4 as a host-order integer (only meaningful for v4).
  [[nodiscard]] std::uint32_t v4_value() const;
  [[nodiscard]] std::size_t prefix_bits() const { return is_v4() ? 32 : 128; }

  // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 host a.b.c.d as far as the
  // kernel is concerned; everything that compares hosts (rules, limits per client) uses
  // this form. Any other address is returned unchanged.
  [[nodiscard]] IpAddress unmapped() const;

  // "127.0.0.1", "::1" (RFC 5952 canonical text, as inet_ntop writes it).
  [[nodiscard]] std::string to_string() const;
  // A socket address for this IP with `port` (host order).
  [[nodiscard]] sockaddr_storage to_sockaddr(std::uint16_t port) const;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
  friend std::strong_ordering operator<=>(const IpAddress&, const IpAddress&) = default;

 private:
  Family family_ = Family::v4;
  std::array<std::uint8_t, 16> bytes_{};  // IPv4 uses the first 4
};

// A prefix: "10.0.0.0/8", "2001:db8::/32"; a bare address means a single host.
class Cidr {
 public:
  Cidr() = default;
  // Fails (with a message saying what was expected) on a bad address or prefix length, and
  // when host bits are set ("10.1.2.3/8"): a typo there would silently widen a rule.
  [[nodiscard]] static std::expected<Cidr, std::string> parse(std::string_view text);
  [[nodiscard]] static std::optional<Cidr> make(IpAddress network, std::size_t prefix);

  // IPv4 prefixes also match IPv4-mapped IPv6 addresses (the same host, see unmapped()).
  [[nodiscard]] bool contains(const IpAddress& address) const;

  [[nodiscard]] const IpAddress& network() const { return network_; }
  [[nodiscard]] std::size_t prefix() const { return prefix_; }
  [[nodiscard]] std::string to_string() const;

  friend bool operator==(const Cidr&, const Cidr&) = default;

 private:
  IpAddress network_;
  std::size_t prefix_ = 0;
};

// Special-purpose ranges (RFC 6890 and the IANA registries), most specific wins.
enum class AddressClass : std::uint8_t {
  global,         // ordinary, globally routed unicast
  unspecified,    // 0.0.0.0, ::
  this_network,   // 0.0.0.0/8 (RFC 1122) — Linux connects 0.x.y.z to the local host
  loopback,       // 127.0.0.0/8, ::1
  private_use,    // 10/8, 172.16/12, 192.168/16 (RFC 1918)
  shared,         // 100.64.0.0/10, carrier-grade NAT (RFC 6598)
  link_local,     // 169.254/16, fe80::/10
  unique_local,   // fc00::/7 (RFC 4193), and the deprecated site-local fec0::/10
  multicast,      // 224/4, ff00::/8
  broadcast,      // 255.255.255.255
  documentation,  // 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20
  benchmarking,   // 198.18.0.0/15, 2001:2::/48
  protocol,       // 192.0.0.0/24, 2001::/23 (IETF protocol assignments), 64:ff9b:1::/48
  reserved,       // 240/4, 192.88.99/24, 100::/64, anything outside 2000::/3 not above
};

[[nodiscard]] std::string_view describe(AddressClass kind);  // "loopback", "private", ...
[[nodiscard]] AddressClass classify(const IpAddress& address);
// True for everything but global unicast.
[[nodiscard]] inline bool is_special(AddressClass kind) {
  return kind != AddressClass::global;
}
[[nodiscard]] inline bool is_loopback(const IpAddress& address) {
  return classify(address) == AddressClass::loopback;
}

// The IPv4 address an IPv6 address stands for, when it embeds one the network will act on:
// IPv4-mapped, IPv4-compatible (not :: or ::1), NAT64 well-known prefix, 6to4.
// (Teredo embeds two; classify() judges both.)
[[nodiscard]] std::optional<IpAddress> embedded_ipv4(const IpAddress& address);

struct IpAddressHash {
  std::size_t operator()(const IpAddress& address) const noexcept;
};

}  // namespace tunsocks::net
