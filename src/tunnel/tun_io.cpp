#include "tunnel/tun_io.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <optional>
#include <sys/uio.h>
#include <unistd.h>

namespace tunsocks::tunnel {
namespace {

// struct virtio_net_hdr of linux/virtio_net.h, which C++ cannot include (a member is
// named "class"). Fields in host order: the legacy header of a little-endian host.
struct VnetHeader {
  std::uint8_t flags = 0;
  std::uint8_t gso_type = 0;
  std::uint16_t hdr_len = 0;  // IP + TCP headers, when segmenting
  std::uint16_t gso_size = 0;
  std::uint16_t csum_start = 0;
  std::uint16_t csum_offset = 0;
};
static_assert(sizeof(VnetHeader) == 10);
constexpr std::uint8_t kNeedsChecksum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
constexpr std::uint8_t kDataValid = 2;      // VIRTIO_NET_HDR_F_DATA_VALID
constexpr std::uint8_t kGsoTcpV4 = 1;       // VIRTIO_NET_HDR_GSO_TCPV4
constexpr std::uint8_t kGsoTcpV6 = 4;       // VIRTIO_NET_HDR_GSO_TCPV6

constexpr std::size_t kHeader = sizeof(VnetHeader);
// The largest IP packet (a TUN's MTU is at most 65535; a kernel-made segment at most that).
constexpr std::size_t kMaxPacket = TunIo::kMaxPacket;
constexpr std::size_t kTcpChecksumOffset = 16;
// More pieces than this are gathered into one buffer first. lwIP segments are a header
// and a few data pbufs; long chains come from many tiny writes and are rare.
constexpr std::size_t kMaxPieces = 32;

// Where a TCP packet's parts are, read from its first piece; nullopt for anything else.
struct TcpLayout {
  std::size_t ip_header = 0;
  std::size_t headers = 0;  // IP + TCP, options included
  std::uint32_t pseudo_sum = 0;
  bool v4 = true;
};

std::optional<TcpLayout> tcp_layout(std::span<const std::uint8_t> head, std::size_t total) {
  if (head.empty()) return std::nullopt;
  TcpLayout layout;
  net::IpAddress source, destination;
  if (head[0] >> 4 == 4) {
    layout.ip_header = std::size_t{head[0] & 0x0Fu} * 4;
    if (head.size() < 20 || head[9] != kProtoTcp || layout.ip_header < 20) return std::nullopt;
    std::array<std::uint8_t, 4> a{}, b{};
    std::copy_n(head.begin() + 12, 4, a.begin());
    std::copy_n(head.begin() + 16, 4, b.begin());
    source = net::IpAddress::v4(a);
    destination = net::IpAddress::v4(b);
  } else if (head[0] >> 4 == 6) {
    // lwIP writes no extension headers before TCP; a SYN that has some is left as it is.
    layout.ip_header = 40;
    if (head.size() < 40 || head[6] != kProtoTcp) return std::nullopt;
    std::array<std::uint8_t, 16> a{}, b{};
    std::copy_n(head.begin() + 8, 16, a.begin());
    std::copy_n(head.begin() + 24, 16, b.begin());
    source = net::IpAddress::v6(a);
    destination = net::IpAddress::v6(b);
    layout.v4 = false;
  } else {
    return std::nullopt;
  }
  if (head.size() < layout.ip_header + 20 || total < layout.ip_header + 20) return std::nullopt;
  layout.headers = layout.ip_header + std::size_t{head[layout.ip_header + 12]} / 16 * 4;
  if (layout.headers < layout.ip_header + 20 || head.size() < layout.headers) return std::nullopt;
  layout.pseudo_sum = pseudo_header_sum(source, destination, kProtoTcp, total - layout.ip_header);
  return layout;
}

}  // namespace

TunIo::TunIo(int fd, TunFraming framing) : fd_(fd), framing_(framing), buffer_(kMaxPacket) {
  if (!framing_.vnet_header) framing_.checksum_offload = false;
  if (!framing_.checksum_offload) framing_.segmentation = false;
}

int TunIo::stack_mtu() const {
  return framing_.segmentation ? static_cast<int>(kMaxPacket) : framing_.mtu;
}

std::expected<TunIo::Packet, int> TunIo::read(std::span<std::uint8_t> into) {
  into = into.size() >= kMaxPacket ? into.first(kMaxPacket) : std::span(buffer_);
  VnetHeader header{};
  std::array<iovec, 2> parts{};
  int count = 0;
  if (framing_.vnet_header) parts[count++] = {&header, kHeader};
  parts[count++] = {into.data(), into.size()};
  const ssize_t n = ::readv(fd_, parts.data(), count);
  if (n < 0) return std::unexpected(errno);
  const auto size = static_cast<std::size_t>(n);
  if (!framing_.vnet_header) return Packet{into.first(size), false};
  if (size < kHeader) return Packet{{}, false};  // counted as too short
  const bool trusted = (header.flags & (kNeedsChecksum | kDataValid)) != 0;
  return Packet{into.first(size - kHeader), trusted};
}

int TunIo::write(PacketView packet) {
  ssize_t n;
  if (framing_.vnet_header) {
    // All zero: complete checksums, no segmentation.
    VnetHeader header{};
    std::array<iovec, 2> parts{iovec{&header, kHeader},
                               iovec{const_cast<std::uint8_t*>(packet.data()), packet.size()}};
    n = ::writev(fd_, parts.data(), static_cast<int>(parts.size()));
  } else {
    n = ::write(fd_, packet.data(), packet.size());
  }
  return n < 0 ? errno : 0;
}

int TunIo::write(PacketPieces pieces) {
  std::size_t total = 0;
  for (auto piece : pieces)
    total += piece.size();
  VnetHeader header{};
  if (framing_.checksum_offload && !pieces.empty()) {
    if (auto tcp = tcp_layout(pieces.front(), total)) {
      // The field holds the pseudo-header sum; the kernel adds the rest (or, delivering
      // locally, trusts it as it trusts its own loopback).
      std::uint8_t* field = pieces.front().data() + tcp->ip_header + kTcpChecksumOffset;
      field[0] = static_cast<std::uint8_t>(tcp->pseudo_sum >> 8);
      field[1] = static_cast<std::uint8_t>(tcp->pseudo_sum);
      header.flags = kNeedsChecksum;
      header.csum_start = static_cast<std::uint16_t>(tcp->ip_header);
      header.csum_offset = kTcpChecksumOffset;
      if (framing_.segmentation && total > static_cast<std::size_t>(framing_.mtu)) {
        header.gso_type = tcp->v4 ? kGsoTcpV4 : kGsoTcpV6;
        header.hdr_len = static_cast<std::uint16_t>(tcp->headers);
        header.gso_size = static_cast<std::uint16_t>(framing_.mtu - tcp->headers);
      }
    }
  }
  std::array<iovec, kMaxPieces + 1> parts{};
  std::size_t count = 0;
  if (framing_.vnet_header) parts[count++] = {&header, kHeader};
  std::vector<std::uint8_t> gathered;
  if (pieces.size() <= kMaxPieces) {
    for (auto piece : pieces)
      parts[count++] = {piece.data(), piece.size()};
  } else {
    gathered.reserve(total);
    for (auto piece : pieces)
      gathered.insert(gathered.end(), piece.begin(), piece.end());
    parts[count++] = {gathered.data(), gathered.size()};
  }
  const ssize_t n = ::writev(fd_, parts.data(), static_cast<int>(count));
  return n < 0 ? errno : 0;
}

bool complete_tcp_checksum(std::span<std::uint8_t> packet) {
  auto tcp = tcp_layout(packet, packet.size());
  if (!tcp) return false;
  std::uint8_t* field = packet.data() + tcp->ip_header + kTcpChecksumOffset;
  field[0] = field[1] = 0;
  const std::uint16_t sum =
      internet_checksum(PacketView(packet).subspan(tcp->ip_header), tcp->pseudo_sum);
  field[0] = static_cast<std::uint8_t>(sum >> 8);
  field[1] = static_cast<std::uint8_t>(sum);
  return true;
}

}  // namespace tunsocks::tunnel
