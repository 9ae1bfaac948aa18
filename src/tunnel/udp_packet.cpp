#include "tunnel/udp_packet.h"

#include <algorithm>

namespace tunsocks::tunnel {
namespace {

constexpr std::size_t kIpv4Header = 20;
constexpr std::size_t kIpv6Header = 40;
constexpr std::size_t kUdpHeader = 8;
constexpr std::size_t kMaxUdpLength = 0xFFFF;
constexpr std::uint8_t kTtl = 64;
constexpr std::uint8_t kFragmentHeader = 44;

std::uint16_t load16(PacketView bytes, std::size_t offset) {
  return static_cast<std::uint16_t>(bytes[offset] << 8 | bytes[offset + 1]);
}

std::uint32_t load32(PacketView bytes, std::size_t offset) {
  return std::uint32_t{load16(bytes, offset)} << 16 | load16(bytes, offset + 2);
}

void store16(std::uint8_t* at, std::uint16_t value) {
  at[0] = static_cast<std::uint8_t>(value >> 8);
  at[1] = static_cast<std::uint8_t>(value);
}

void write_ipv4_header(std::uint8_t* header, const net::Endpoint& source,
                       const net::Endpoint& destination, std::size_t total, std::uint16_t id,
                       std::uint16_t fragment_field) {
  header[0] = 0x45;
  header[1] = 0;
  store16(header + 2, static_cast<std::uint16_t>(total));
  store16(header + 4, id);
  store16(header + 6, fragment_field);
  header[8] = kTtl;
  header[9] = kProtoUdp;
  store16(header + 10, 0);
  std::copy_n(source.ip.bytes().begin(), 4, header + 12);
  std::copy_n(destination.ip.bytes().begin(), 4, header + 16);
  store16(header + 10, internet_checksum({header, kIpv4Header}));
}

// Where a fragment's data sits and what it says about its datagram.
struct FragmentFields {
  std::uint32_t id = 0;
  std::size_t offset = 0;
  bool more = false;
  PacketView data;
};

std::optional<FragmentFields> fragment_fields(const PacketInfo& info, PacketView packet) {
  FragmentFields fields;
  if (info.version == 4) {
    const std::uint16_t field = load16(packet, 6);
    fields.id = load16(packet, 4);
    fields.offset = std::size_t{field & 0x1FFFu} * 8;
    fields.more = (field & 0x2000) != 0;
    fields.data = packet.subspan(info.ip_header_length, info.total_length - info.ip_header_length);
    return fields;
  }
  // IPv6: find the fragment header again; classify() checked the chain's lengths.
  std::uint8_t next = packet[6];
  std::size_t offset = kIpv6Header;
  while (offset + 8 <= info.total_length && offset < info.ip_header_length) {
    if (next == kFragmentHeader) {
      const std::uint16_t field = load16(packet, offset + 2);
      fields.id = load32(packet, offset + 4);
      fields.offset = field & 0xFFF8u;
      fields.more = (field & 1) != 0;
      // Only a fragment header as the last extension header is supported: then the data is
      // the UDP datagram's bytes (what follows a fragment header is part of the datagram).
      if (offset + 8 != info.ip_header_length) return std::nullopt;
      fields.data = packet.subspan(offset + 8, info.total_length - offset - 8);
      return fields;
    }
    const std::size_t length = next == 51 ? (std::size_t{packet[offset + 1]} + 2) * 4
                                          : (std::size_t{packet[offset + 1]} + 1) * 8;
    next = packet[offset];
    offset += length;
  }
  return std::nullopt;
}

}  // namespace

std::optional<UdpDatagramView> parse_udp(const net::IpAddress& source,
                                         const net::IpAddress& destination, PacketView transport) {
  if (transport.size() < kUdpHeader) return std::nullopt;
  const std::size_t length = load16(transport, 4);
  if (length < kUdpHeader || length > transport.size()) return std::nullopt;
  UdpDatagramView datagram;
  datagram.source = {source, load16(transport, 0)};
  datagram.destination = {destination, load16(transport, 2)};
  datagram.payload = transport.subspan(kUdpHeader, length - kUdpHeader);
  return datagram;
}

std::vector<PacketBytes> build_udp_packets(const net::Endpoint& source,
                                           const net::Endpoint& destination, PacketView payload,
                                           std::size_t mtu, std::uint16_t ip_id) {
  std::vector<PacketBytes> packets;
  const std::size_t udp_length = kUdpHeader + payload.size();
  if (source.ip.family() != destination.ip.family() || udp_length > kMaxUdpLength) {
    return packets;
  }
  const bool v4 = source.ip.is_v4();
  // IPv4's total length field must hold header + datagram as well.
  if (v4 && kIpv4Header + udp_length > kMaxUdpLength) return packets;

  PacketBytes udp(udp_length);
  store16(udp.data(), source.port);
  store16(udp.data() + 2, destination.port);
  store16(udp.data() + 4, static_cast<std::uint16_t>(udp_length));
  std::copy(payload.begin(), payload.end(), udp.begin() + kUdpHeader);
  std::uint16_t checksum =
      internet_checksum(udp, pseudo_header_sum(source.ip, destination.ip, kProtoUdp, udp_length));
  // 0 means "no checksum" in IPv4 and is forbidden in IPv6 (RFC 768, RFC 8200 8.1).
  if (checksum == 0) checksum = 0xFFFF;
  store16(udp.data() + 6, checksum);

  if (!v4) {
    PacketBytes& packet = packets.emplace_back(kIpv6Header + udp_length);
    packet[0] = 0x60;
    store16(packet.data() + 4, static_cast<std::uint16_t>(udp_length));
    packet[6] = kProtoUdp;
    packet[7] = kTtl;
    std::copy_n(source.ip.bytes().begin(), 16, packet.begin() + 8);
    std::copy_n(destination.ip.bytes().begin(), 16, packet.begin() + 24);
    std::copy(udp.begin(), udp.end(), packet.begin() + kIpv6Header);
    return packets;
  }
  // Fragment data sizes are multiples of 8 (the offset field counts 8-byte units); a
  // datagram that fits the MTU is one unfragmented packet whatever its length.
  const std::size_t room = kIpv4Header + udp_length <= mtu ? udp_length
                           : mtu > kIpv4Header + 8         ? (mtu - kIpv4Header) & ~std::size_t{7}
                                                           : 8;
  for (std::size_t offset = 0; offset < udp_length; offset += room) {
    const std::size_t chunk = std::min(room, udp_length - offset);
    const bool more = offset + chunk < udp_length;
    const std::uint16_t field = static_cast<std::uint16_t>((more ? 0x2000 : 0) | (offset / 8));
    PacketBytes& packet = packets.emplace_back(kIpv4Header + chunk);
    write_ipv4_header(packet.data(), source, destination, kIpv4Header + chunk, ip_id, field);
    std::copy_n(udp.begin() + static_cast<std::ptrdiff_t>(offset), chunk,
                packet.begin() + kIpv4Header);
  }
  return packets;
}

UdpReassembler::Result UdpReassembler::add(const PacketInfo& info, PacketView packet,
                                           std::uint64_t now_ms, Complete& out) {
  expire(now_ms);
  auto fields = fragment_fields(info, packet);
  if (!fields || (fields->data.empty() && fields->more)) {
    ++dropped_;
    return Result::dropped;
  }
  const std::size_t size = fields->data.size();
  const std::size_t end = fields->offset + size;
  if ((fields->more && size % 8 != 0) || end > kMaxUdpLength) {
    ++dropped_;
    return Result::dropped;
  }

  auto found = std::find_if(datagrams_.begin(), datagrams_.end(), [&](const Datagram& d) {
    return d.id == fields->id && d.source == info.flow.source.ip &&
           d.destination == info.flow.destination.ip;
  });
  if (found == datagrams_.end()) {
    // The oldest datagram makes room: it is the one most likely never to complete.
    if (datagrams_.size() >= limits_.max_datagrams) drop(0);
    Datagram& fresh = datagrams_.emplace_back();
    fresh.source = info.flow.source.ip;
    fresh.destination = info.flow.destination.ip;
    fresh.id = fields->id;
    fresh.started_ms = now_ms;
    found = datagrams_.end() - 1;
  }
  const auto index = static_cast<std::size_t>(found - datagrams_.begin());
  Datagram& datagram = *found;

  for (const Piece& piece : datagram.pieces) {
    const std::size_t piece_end = piece.offset + piece.bytes.size();
    if (piece.offset == fields->offset && piece_end == end) return Result::pending;  // duplicate
    if (fields->offset < piece_end && piece.offset < end) {
      drop(index);
      return Result::dropped;
    }
  }
  bool inconsistent = datagram.pieces.size() >= limits_.max_fragments ||
                      bytes_held_ + size > limits_.max_bytes ||
                      (datagram.total && end > *datagram.total);
  if (!fields->more) {
    inconsistent = inconsistent || (datagram.total && *datagram.total != end) ||
                   std::any_of(datagram.pieces.begin(), datagram.pieces.end(),
                               [&](const Piece& p) { return p.offset + p.bytes.size() > end; });
    datagram.total = end;
  }
  if (inconsistent) {
    drop(index);
    return Result::dropped;
  }
  datagram.pieces.push_back(
      {fields->offset, PacketBytes(fields->data.begin(), fields->data.end())});
  datagram.bytes += size;
  bytes_held_ += size;
  // No overlaps, so the pieces cover [0, total) exactly when their sizes add up to it.
  if (!datagram.total || datagram.bytes != *datagram.total) return Result::pending;

  std::sort(datagram.pieces.begin(), datagram.pieces.end(),
            [](const Piece& a, const Piece& b) { return a.offset < b.offset; });
  out.source = datagram.source;
  out.destination = datagram.destination;
  out.transport.clear();
  out.transport.reserve(datagram.bytes);
  for (const Piece& piece : datagram.pieces)
    out.transport.insert(out.transport.end(), piece.bytes.begin(), piece.bytes.end());
  bytes_held_ -= datagram.bytes;
  datagrams_.erase(found);
  return Result::complete;
}

std::size_t UdpReassembler::expire(std::uint64_t now_ms) {
  std::size_t expired = 0;
  // Datagrams are appended as they start, so the old ones are at the front.
  while (!datagrams_.empty() && now_ms - datagrams_.front().started_ms >= limits_.timeout_ms) {
    drop(0);
    ++expired;
  }
  return expired;
}

void UdpReassembler::drop(std::size_t index) {
  bytes_held_ -= datagrams_[index].bytes;
  datagrams_.erase(datagrams_.begin() + static_cast<std::ptrdiff_t>(index));
  ++dropped_;
}

}  // namespace tunsocks::tunnel
