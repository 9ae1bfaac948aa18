#include "tunnel/packet.h"

#include <algorithm>
#include <cstring>

namespace tunsocks::tunnel {
namespace {

constexpr std::size_t kIpv4MinHeader = 20;
constexpr std::size_t kIpv6Header = 40;
constexpr std::size_t kTcpMinHeader = 20;
constexpr std::size_t kUdpHeader = 8;
// Beyond a handful, extension header chains are an attack, not traffic.
constexpr int kMaxExtensionHeaders = 8;
// An ICMP error quotes as much of the offending packet as fits in the minimum IPv6 MTU
// (RFC 4443) / RFC 1812's 576 bytes, but the SYN is small anyway.
constexpr std::size_t kIcmpQuoteLimit = 512;

std::uint16_t load16(PacketView bytes, std::size_t offset) {
  return static_cast<std::uint16_t>(bytes[offset] << 8 | bytes[offset + 1]);
}

std::uint32_t load32(PacketView bytes, std::size_t offset) {
  return std::uint32_t{bytes[offset]} << 24 | std::uint32_t{bytes[offset + 1]} << 16 |
         std::uint32_t{bytes[offset + 2]} << 8 | std::uint32_t{bytes[offset + 3]};
}

template <std::size_t N>
std::array<std::uint8_t, N> address_at(PacketView bytes, std::size_t offset) {
  std::array<std::uint8_t, N> address{};
  std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(offset), N, address.begin());
  return address;
}

void store16(PacketBytes& bytes, std::size_t offset, std::uint16_t value) {
  bytes[offset] = static_cast<std::uint8_t>(value >> 8);
  bytes[offset + 1] = static_cast<std::uint8_t>(value);
}

void store32(PacketBytes& bytes, std::size_t offset, std::uint32_t value) {
  store16(bytes, offset, static_cast<std::uint16_t>(value >> 16));
  store16(bytes, offset + 2, static_cast<std::uint16_t>(value));
}

std::uint32_t add_words(PacketView bytes, std::uint32_t sum) {
  std::size_t i = 0;
  for (; i + 1 < bytes.size(); i += 2)
    sum += load16(bytes, i);
  if (i < bytes.size()) sum += std::uint32_t{bytes[i]} << 8;
  return sum;
}

std::uint16_t fold(std::uint32_t sum) {
  while (sum >> 16)
    sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

// Fills in ports, flags and sequence number from the transport header at `offset`.
void read_transport(PacketView packet, std::size_t offset, PacketInfo& info) {
  const std::size_t available = info.total_length - offset;
  if (info.protocol == kProtoTcp && available >= kTcpMinHeader) {
    info.flow.source.port = load16(packet, offset);
    info.flow.destination.port = load16(packet, offset + 2);
    info.tcp_seq = load32(packet, offset + 4);
    info.tcp_flags = packet[offset + 13];
    info.has_ports = true;
  } else if (info.protocol == kProtoUdp && available >= kUdpHeader) {
    info.flow.source.port = load16(packet, offset);
    info.flow.destination.port = load16(packet, offset + 2);
    info.has_ports = true;
  }
}

std::expected<PacketInfo, DropReason> classify_ipv4(PacketView packet) {
  PacketInfo info;
  info.version = 4;
  const std::size_t header = std::size_t{packet[0] & 0x0Fu} * 4;
  if (header < kIpv4MinHeader || header > packet.size()) {
    return std::unexpected(DropReason::bad_header_length);
  }
  const std::size_t total = load16(packet, 2);
  if (total < header || total > packet.size()) {
    return std::unexpected(DropReason::bad_total_length);
  }
  info.total_length = total;
  info.ip_header_length = header;
  info.protocol = packet[9];
  info.flow.source.ip = net::IpAddress::v4(address_at<4>(packet, 12));
  info.flow.destination.ip = net::IpAddress::v4(address_at<4>(packet, 16));
  const std::uint16_t fragment_field = load16(packet, 6);
  const bool more_fragments = (fragment_field & 0x2000) != 0;
  const std::uint16_t fragment_offset = fragment_field & 0x1FFF;
  info.fragment = more_fragments || fragment_offset != 0;
  if (fragment_offset == 0) read_transport(packet, header, info);
  return info;
}

bool is_extension_header(std::uint8_t next) {
  return next == 0 || next == 43 || next == 44 || next == 51 || next == 60;
}

std::expected<PacketInfo, DropReason> classify_ipv6(PacketView packet) {
  PacketInfo info;
  info.version = 6;
  if (packet.size() < kIpv6Header) return std::unexpected(DropReason::too_short);
  const std::size_t payload = load16(packet, 4);
  // Payload length 0 means a jumbogram, which a TUN cannot carry.
  if (payload == 0 || kIpv6Header + payload > packet.size()) {
    return std::unexpected(DropReason::bad_total_length);
  }
  info.total_length = kIpv6Header + payload;
  info.flow.source.ip = net::IpAddress::v6(address_at<16>(packet, 8));
  info.flow.destination.ip = net::IpAddress::v6(address_at<16>(packet, 24));

  std::uint8_t next = packet[6];
  std::size_t offset = kIpv6Header;
  bool first_fragment = true;
  for (int count = 0; is_extension_header(next); ++count) {
    if (count == kMaxExtensionHeaders) {
      return std::unexpected(DropReason::too_many_extension_headers);
    }
    if (offset + 8 > info.total_length) return std::unexpected(DropReason::bad_header_length);
    std::size_t length = 0;
    if (next == 44) {  // fragment header: fixed 8 bytes
      const std::uint16_t field = load16(packet, offset + 2);
      info.fragment = true;
      first_fragment = (field & 0xFFF8) == 0;
      length = 8;
    } else if (next == 51) {  // authentication header counts 4-byte units
      length = (std::size_t{packet[offset + 1]} + 2) * 4;
    } else {
      length = (std::size_t{packet[offset + 1]} + 1) * 8;
    }
    next = packet[offset];
    offset += length;
    if (offset > info.total_length) return std::unexpected(DropReason::bad_header_length);
  }
  info.protocol = next;
  info.ip_header_length = offset;
  if (first_fragment) read_transport(packet, offset, info);
  return info;
}

void put_ip(PacketBytes& out, std::size_t offset, const net::IpAddress& address) {
  const auto bytes = address.bytes();
  std::copy(bytes.begin(), bytes.end(), out.begin() + static_cast<std::ptrdiff_t>(offset));
}

// An IP header in front of `transport_length` bytes of `protocol`, from `source` to
// `destination`; returns the packet sized to hold both, transport bytes zeroed.
PacketBytes ip_packet(const net::IpAddress& source, const net::IpAddress& destination,
                      std::uint8_t protocol, std::size_t transport_length) {
  if (source.is_v4()) {
    PacketBytes out(kIpv4MinHeader + transport_length, 0);
    out[0] = 0x45;
    store16(out, 2, static_cast<std::uint16_t>(out.size()));
    out[8] = 64;  // TTL
    out[9] = protocol;
    put_ip(out, 12, source);
    put_ip(out, 16, destination);
    store16(out, 10, internet_checksum(PacketView(out).first(kIpv4MinHeader)));
    return out;
  }
  PacketBytes out(kIpv6Header + transport_length, 0);
  out[0] = 0x60;
  store16(out, 4, static_cast<std::uint16_t>(transport_length));
  out[6] = protocol;
  out[7] = 64;  // hop limit
  put_ip(out, 8, source);
  put_ip(out, 24, destination);
  return out;
}

PacketBytes build_reset(const PacketInfo& syn) {
  const net::Endpoint& us = syn.flow.destination;
  const net::Endpoint& app = syn.flow.source;
  PacketBytes out = ip_packet(us.ip, app.ip, kProtoTcp, kTcpMinHeader);
  const std::size_t tcp = out.size() - kTcpMinHeader;
  // RFC 9293 3.10.7.1: the SYN carried no ACK, so the reset has SEQ 0 and acknowledges
  // SEG.SEQ + SEG.LEN (the SYN counts one).
  store16(out, tcp, us.port);
  store16(out, tcp + 2, app.port);
  store32(out, tcp + 4, 0);
  store32(out, tcp + 8, syn.tcp_seq + 1);
  out[tcp + 12] = 5 << 4;
  out[tcp + 13] = tcp_flag::rst | tcp_flag::ack;
  const std::uint32_t pseudo = pseudo_header_sum(us.ip, app.ip, kProtoTcp, kTcpMinHeader);
  store16(out, tcp + 16, internet_checksum(PacketView(out).subspan(tcp), pseudo));
  return out;
}

PacketBytes build_unreachable(const PacketInfo& syn, PacketView syn_packet, bool host) {
  const net::IpAddress& us = syn.flow.destination.ip;
  const net::IpAddress& app = syn.flow.source.ip;
  const std::size_t quoted = std::min(syn.total_length, kIcmpQuoteLimit);
  const std::uint8_t protocol = us.is_v4() ? kProtoIcmp : kProtoIcmpv6;
  PacketBytes out = ip_packet(us, app, protocol, 8 + quoted);
  const std::size_t icmp = out.size() - 8 - quoted;
  if (us.is_v4()) {
    out[icmp] = 3;                 // destination unreachable
    out[icmp + 1] = host ? 1 : 0;  // host / net unreachable
  } else {
    out[icmp] = 1;                 // destination unreachable
    out[icmp + 1] = host ? 3 : 0;  // address unreachable / no route
  }
  std::copy_n(syn_packet.begin(), quoted, out.begin() + icmp + 8);
  const std::uint32_t pseudo = us.is_v4() ? 0 : pseudo_header_sum(us, app, protocol, 8 + quoted);
  store16(out, icmp + 2, internet_checksum(PacketView(out).subspan(icmp), pseudo));
  return out;
}

}  // namespace

std::string_view describe(DropReason reason) {
  switch (reason) {
    case DropReason::too_short:
      return "too_short";
    case DropReason::bad_version:
      return "bad_version";
    case DropReason::bad_header_length:
      return "bad_header_length";
    case DropReason::bad_total_length:
      return "bad_total_length";
    case DropReason::too_many_extension_headers:
      return "too_many_extension_headers";
    case DropReason::count_:
      break;
  }
  return "unknown";
}

std::size_t FlowKeyHash::operator()(const FlowKey& key) const noexcept {
  // FNV-1a over the bytes that differ between flows; good enough spread for a hash table
  // whose keys an application (not an attacker on the wire) chooses.
  std::uint64_t hash = 0xcbf29ce484222325ull;
  auto mix = [&hash](std::uint8_t byte) {
    hash ^= byte;
    hash *= 0x100000001b3ull;
  };
  for (std::uint8_t byte : key.source.ip.bytes())
    mix(byte);
  for (std::uint8_t byte : key.destination.ip.bytes())
    mix(byte);
  mix(static_cast<std::uint8_t>(key.source.port >> 8));
  mix(static_cast<std::uint8_t>(key.source.port));
  mix(static_cast<std::uint8_t>(key.destination.port >> 8));
  mix(static_cast<std::uint8_t>(key.destination.port));
  return static_cast<std::size_t>(hash);
}

std::expected<PacketInfo, DropReason> classify(PacketView packet) {
  if (packet.empty()) return std::unexpected(DropReason::too_short);
  switch (packet[0] >> 4) {
    case 4:
      if (packet.size() < kIpv4MinHeader) return std::unexpected(DropReason::too_short);
      return classify_ipv4(packet);
    case 6:
      return classify_ipv6(packet);
    default:
      return std::unexpected(DropReason::bad_version);
  }
}

PacketBytes build_refusal(const PacketInfo& syn, PacketView syn_packet, Refusal refusal) {
  switch (refusal) {
    case Refusal::reset:
      break;
    case Refusal::network_unreachable:
      return build_unreachable(syn, syn_packet, false);
    case Refusal::host_unreachable:
      return build_unreachable(syn, syn_packet, true);
  }
  return build_reset(syn);
}

std::uint16_t internet_checksum(PacketView bytes, std::uint32_t initial) {
  return fold(add_words(bytes, initial));
}

std::uint32_t pseudo_header_sum(const net::IpAddress& source, const net::IpAddress& destination,
                                std::uint8_t protocol, std::size_t length) {
  std::uint32_t sum = add_words(source.bytes(), 0);
  sum = add_words(destination.bytes(), sum);
  sum += protocol;
  sum += static_cast<std::uint32_t>(length & 0xFFFF) + static_cast<std::uint32_t>(length >> 16);
  while (sum >> 16)
    sum = (sum & 0xFFFF) + (sum >> 16);
  return sum;
}

}  // namespace tunsocks::tunnel
