#include "net/ip.h"

#include <algorithm>
#include <arpa/inet.h>
#include <charconv>
#include <cstring>
#include <netinet/in.h>

namespace tunsocks::net {
namespace {

// An IPv6 prefix of `bits` bits given as its first bytes.
bool has_prefix(const IpAddress& a, std::initializer_list<std::uint8_t> head, std::size_t bits) {
  auto bytes = a.bytes();
  std::size_t i = 0;
  for (std::uint8_t want : head) {
    if (bits == 0) break;
    std::uint8_t mask = bits >= 8 ? 0xff : static_cast<std::uint8_t>(0xff << (8 - bits));
    if ((bytes[i] & mask) != (want & mask)) return false;
    bits = bits >= 8 ? bits - 8 : 0;
    ++i;
  }
  return true;
}

bool v4_in(std::uint32_t value, std::uint32_t network, unsigned bits) {
  std::uint32_t mask = bits == 0 ? 0 : ~std::uint32_t{0} << (32 - bits);
  return (value & mask) == network;
}

constexpr std::uint32_t ip4(unsigned a, unsigned b, unsigned c, unsigned d) {
  return (a << 24) | (b << 16) | (c << 8) | d;
}

AddressClass classify_v4(std::uint32_t v) {
  if (v == 0) return AddressClass::unspecified;
  if (v == 0xffffffffu) return AddressClass::broadcast;
  if (v4_in(v, ip4(0, 0, 0, 0), 8)) return AddressClass::this_network;
  if (v4_in(v, ip4(127, 0, 0, 0), 8)) return AddressClass::loopback;
  if (v4_in(v, ip4(10, 0, 0, 0), 8) || v4_in(v, ip4(172, 16, 0, 0), 12) ||
      v4_in(v, ip4(192, 168, 0, 0), 16)) {
    return AddressClass::private_use;
  }
  if (v4_in(v, ip4(100, 64, 0, 0), 10)) return AddressClass::shared;
  if (v4_in(v, ip4(169, 254, 0, 0), 16)) return AddressClass::link_local;
  if (v4_in(v, ip4(192, 0, 0, 0), 24)) return AddressClass::protocol;
  if (v4_in(v, ip4(192, 0, 2, 0), 24) || v4_in(v, ip4(198, 51, 100, 0), 24) ||
      v4_in(v, ip4(203, 0, 113, 0), 24)) {
    return AddressClass::documentation;
  }
  if (v4_in(v, ip4(198, 18, 0, 0), 15)) return AddressClass::benchmarking;
  if (v4_in(v, ip4(192, 88, 99, 0), 24)) return AddressClass::reserved;  // 6to4 relays, gone
  if (v4_in(v, ip4(224, 0, 0, 0), 4)) return AddressClass::multicast;
  if (v4_in(v, ip4(240, 0, 0, 0), 4)) return AddressClass::reserved;
  return AddressClass::global;
}

std::uint32_t read_be32(std::span<const std::uint8_t> b, std::size_t at) {
  return (std::uint32_t{b[at]} << 24) | (std::uint32_t{b[at + 1]} << 16) |
         (std::uint32_t{b[at + 2]} << 8) | std::uint32_t{b[at + 3]};
}

// The more dangerous of two classes: anything special beats global.
AddressClass worse(AddressClass a, AddressClass b) {
  return a != AddressClass::global ? a : b;
}

}  // namespace

IpAddress IpAddress::v4(std::array<std::uint8_t, 4> bytes) {
  IpAddress a;
  a.family_ = Family::v4;
  std::copy(bytes.begin(), bytes.end(), a.bytes_.begin());
  return a;
}

IpAddress IpAddress::v4(std::uint32_t host_order) {
  return v4({static_cast<std::uint8_t>(host_order >> 24),
             static_cast<std::uint8_t>(host_order >> 16),
             static_cast<std::uint8_t>(host_order >> 8), static_cast<std::uint8_t>(host_order)});
}

IpAddress IpAddress::v6(std::array<std::uint8_t, 16> bytes) {
  IpAddress a;
  a.family_ = Family::v6;
  a.bytes_ = bytes;
  return a;
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  // inet_pton needs a NUL-terminated string; anything longer than the longest IPv6 text
  // (45 characters) is not an address anyway.
  char buffer[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof buffer) return std::nullopt;
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  std::array<std::uint8_t, 16> raw{};
  if (text.find(':') == std::string_view::npos) {
    if (inet_pton(AF_INET, buffer, raw.data()) != 1) return std::nullopt;
    return v4({raw[0], raw[1], raw[2], raw[3]});
  }
  if (inet_pton(AF_INET6, buffer, raw.data()) != 1) return std::nullopt;
  return v6(raw);
}

std::optional<IpAddress> IpAddress::from_sockaddr(const sockaddr* address) {
  if (address == nullptr) return std::nullopt;
  if (address->sa_family == AF_INET) {
    sockaddr_in in{};
    std::memcpy(&in, address, sizeof in);
    std::array<std::uint8_t, 4> raw{};
    std::memcpy(raw.data(), &in.sin_addr, 4);
    return v4(raw);
  }
  if (address->sa_family == AF_INET6) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, address, sizeof in6);
    std::array<std::uint8_t, 16> raw{};
    std::memcpy(raw.data(), &in6.sin6_addr, 16);
    return v6(raw);
  }
  return std::nullopt;
}

std::span<const std::uint8_t> IpAddress::bytes() const {
  return {bytes_.data(), is_v4() ? std::size_t{4} : std::size_t{16}};
}

std::uint32_t IpAddress::v4_value() const {
  return read_be32(bytes_, 0);
}

IpAddress IpAddress::unmapped() const {
  if (is_v6() && has_prefix(*this, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96)) {
    return v4({bytes_[12], bytes_[13], bytes_[14], bytes_[15]});
  }
  return *this;
}

std::string IpAddress::to_string() const {
  char buffer[INET6_ADDRSTRLEN];
  const char* s = inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), buffer, sizeof buffer);
  return s ? std::string(s) : std::string("?");
}

sockaddr_storage IpAddress::to_sockaddr(std::uint16_t port) const {
  sockaddr_storage storage{};
  if (is_v4()) {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(port);
    std::memcpy(&in.sin_addr, bytes_.data(), 4);
    std::memcpy(&storage, &in, sizeof in);
  } else {
    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(port);
    std::memcpy(&in6.sin6_addr, bytes_.data(), 16);
    std::memcpy(&storage, &in6, sizeof in6);
  }
  return storage;
}

std::expected<Cidr, std::string> Cidr::parse(std::string_view text) {
  auto slash = text.find('/');
  auto address = IpAddress::parse(text.substr(0, slash));
  if (!address) {
    return std::unexpected(
        "expected an IPv4 or IPv6 address or prefix like 10.0.0.0/8 or "
        "2001:db8::/32, got \"" +
        std::string(text) + "\"");
  }
  std::size_t prefix = address->prefix_bits();
  if (slash != std::string_view::npos) {
    auto digits = text.substr(slash + 1);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() ||
        value > address->prefix_bits()) {
      return std::unexpected("prefix length in \"" + std::string(text) + "\" must be 0.." +
                             std::to_string(address->prefix_bits()));
    }
    prefix = value;
  }
  auto cidr = make(*address, prefix);
  if (!cidr) {
    return std::unexpected("\"" + std::string(text) + "\" has host bits set beyond /" +
                           std::to_string(prefix) + " (write the network address)");
  }
  return *cidr;
}

std::optional<Cidr> Cidr::make(IpAddress network, std::size_t prefix) {
  if (prefix > network.prefix_bits()) return std::nullopt;
  auto bytes = network.bytes();
  for (std::size_t bit = prefix; bit < network.prefix_bits(); ++bit) {
    if (bytes[bit / 8] & (0x80 >> (bit % 8))) return std::nullopt;
  }
  Cidr c;
  c.network_ = network;
  c.prefix_ = prefix;
  return c;
}

bool Cidr::contains(const IpAddress& address) const {
  IpAddress a = network_.is_v4() ? address.unmapped() : address;
  if (a.family() != network_.family()) return false;
  auto want = network_.bytes();
  auto have = a.bytes();
  std::size_t full = prefix_ / 8;
  if (!std::equal(want.begin(), want.begin() + static_cast<std::ptrdiff_t>(full), have.begin())) {
    return false;
  }
  std::size_t rest = prefix_ % 8;
  if (rest == 0) return true;
  auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (want[full] & mask) == (have[full] & mask);
}

std::string Cidr::to_string() const {
  return network_.to_string() + "/" + std::to_string(prefix_);
}

std::optional<IpAddress> embedded_ipv4(const IpAddress& a) {
  if (a.is_v4()) return std::nullopt;
  auto b = a.bytes();
  auto last32 = [&] { return IpAddress::v4({b[12], b[13], b[14], b[15]}); };
  if (has_prefix(a, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96)) return last32();
  if (has_prefix(a, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 96)) {
    // ::a.b.c.d (RFC 4291 "IPv4-compatible", deprecated); :: and ::1 are themselves.
    if (read_be32(b, 12) <= 1) return std::nullopt;
    return last32();
  }
  if (has_prefix(a, {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0}, 96)) return last32();
  if (has_prefix(a, {0x20, 0x02}, 16)) return IpAddress::v4({b[2], b[3], b[4], b[5]});
  return std::nullopt;
}

AddressClass classify(const IpAddress& a) {
  if (a.is_v4()) return classify_v4(a.v4_value());

  auto b = a.bytes();
  bool zero_head = has_prefix(a, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 96);
  if (zero_head && read_be32(b, 12) == 0) return AddressClass::unspecified;
  if (zero_head && read_be32(b, 12) == 1) return AddressClass::loopback;
  if (auto v4 = embedded_ipv4(a)) {
    // 6to4 and NAT64 of a global IPv4 address are ordinary global destinations.
    return classify_v4(v4->v4_value());
  }
  if (has_prefix(a, {0x20, 0x01, 0x00, 0x00}, 32)) {
    // Teredo: server IPv4 in bits 32..63, client IPv4 (inverted) in bits 96..127.
    auto server = classify_v4(read_be32(b, 4));
    auto client = classify_v4(~read_be32(b, 12));
    auto w = worse(server, client);
    return w == AddressClass::global ? AddressClass::protocol : w;
  }
  if (has_prefix(a, {0xff}, 8)) return AddressClass::multicast;
  if (has_prefix(a, {0xfe, 0x80}, 10)) return AddressClass::link_local;
  if (has_prefix(a, {0xfe, 0xc0}, 10)) return AddressClass::unique_local;  // site-local
  if (has_prefix(a, {0xfc}, 7)) return AddressClass::unique_local;
  if (has_prefix(a, {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48)) return AddressClass::protocol;
  if (has_prefix(a, {0x01, 0x00, 0, 0, 0, 0, 0, 0}, 64)) return AddressClass::reserved;
  if (has_prefix(a, {0x20, 0x01, 0x0d, 0xb8}, 32)) return AddressClass::documentation;
  if (has_prefix(a, {0x3f, 0xff}, 20)) return AddressClass::documentation;
  if (has_prefix(a, {0x20, 0x01, 0x00, 0x02, 0x00, 0x00}, 48)) return AddressClass::benchmarking;
  if (has_prefix(a, {0x20, 0x01, 0x00}, 23)) return AddressClass::protocol;
  if (has_prefix(a, {0x5f, 0x00}, 16)) return AddressClass::reserved;  // SRv6 SIDs (RFC 9602)
  if (!has_prefix(a, {0x20}, 3)) return AddressClass::reserved;
  return AddressClass::global;
}

std::string_view describe(AddressClass kind) {
  switch (kind) {
    case AddressClass::global:
      return "global";
    case AddressClass::unspecified:
      return "unspecified";
    case AddressClass::this_network:
      return "this-network";
    case AddressClass::loopback:
      return "loopback";
    case AddressClass::private_use:
      return "private";
    case AddressClass::shared:
      return "shared-cgnat";
    case AddressClass::link_local:
      return "link-local";
    case AddressClass::unique_local:
      return "unique-local";
    case AddressClass::multicast:
      return "multicast";
    case AddressClass::broadcast:
      return "broadcast";
    case AddressClass::documentation:
      return "documentation";
    case AddressClass::benchmarking:
      return "benchmarking";
    case AddressClass::protocol:
      return "protocol-assignment";
    case AddressClass::reserved:
      return "reserved";
  }
  return "?";
}

std::size_t IpAddressHash::operator()(const IpAddress& address) const noexcept {
  // FNV-1a over family and bytes: cheap and good enough for a per-client table.
  std::size_t h = 1469598103934665603ull;
  h = (h ^ static_cast<std::size_t>(address.family())) * 1099511628211ull;
  for (std::uint8_t byte : address.bytes())
    h = (h ^ byte) * 1099511628211ull;
  return h;
}

}  // namespace tunsocks::net
