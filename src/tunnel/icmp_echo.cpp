#include "tunnel/icmp_echo.h"

#include <algorithm>

namespace tunsocks::tunnel {
namespace {

constexpr std::size_t kIpv4Header = 20;
constexpr std::size_t kIpv6Header = 40;
constexpr std::size_t kIcmpHeader = 8;
constexpr std::uint8_t kEchoRequest4 = 8;
constexpr std::uint8_t kEchoReply4 = 0;
constexpr std::uint8_t kEchoRequest6 = 128;
constexpr std::uint8_t kEchoReply6 = 129;
constexpr std::uint8_t kTtl = 64;

void store16(std::uint8_t* at, std::uint16_t value) {
  at[0] = static_cast<std::uint8_t>(value >> 8);
  at[1] = static_cast<std::uint8_t>(value);
}

}  // namespace

std::optional<PacketBytes> build_echo_reply(const PacketInfo& info, PacketView packet) {
  if (info.fragment || info.total_length < info.ip_header_length + kIcmpHeader) {
    return std::nullopt;
  }
  const PacketView icmp =
      packet.subspan(info.ip_header_length, info.total_length - info.ip_header_length);
  const bool v4 = info.version == 4;
  if (v4 ? (info.protocol != kProtoIcmp || icmp[0] != kEchoRequest4 || icmp[1] != 0)
         : (info.protocol != kProtoIcmpv6 || icmp[0] != kEchoRequest6 || icmp[1] != 0)) {
    return std::nullopt;
  }
  // Options and extension headers of the request are not repeated: a plain header serves.
  const std::size_t header = v4 ? kIpv4Header : kIpv6Header;
  PacketBytes reply(header + icmp.size());
  std::uint8_t* out = reply.data();
  const auto source = info.flow.destination.ip.bytes();
  const auto destination = info.flow.source.ip.bytes();
  if (v4) {
    out[0] = 0x45;
    store16(out + 2, static_cast<std::uint16_t>(reply.size()));
    out[8] = kTtl;
    out[9] = kProtoIcmp;
    std::copy(source.begin(), source.end(), out + 12);
    std::copy(destination.begin(), destination.end(), out + 16);
    store16(out + 10, internet_checksum({out, kIpv4Header}));
  } else {
    out[0] = 0x60;
    store16(out + 4, static_cast<std::uint16_t>(icmp.size()));
    out[6] = kProtoIcmpv6;
    out[7] = kTtl;
    std::copy(source.begin(), source.end(), out + 8);
    std::copy(destination.begin(), destination.end(), out + 24);
  }
  std::uint8_t* message = out + header;
  std::copy(icmp.begin(), icmp.end(), message);
  message[0] = v4 ? kEchoReply4 : kEchoReply6;
  store16(message + 2, 0);
  // ICMPv6 sums a pseudo header (RFC 4443 2.3); ICMP for IPv4 does not.
  const std::uint32_t initial =
      v4 ? 0
         : pseudo_header_sum(info.flow.destination.ip, info.flow.source.ip, kProtoIcmpv6,
                             icmp.size());
  store16(message + 2, internet_checksum({message, icmp.size()}, initial));
  return reply;
}

}  // namespace tunsocks::tunnel
