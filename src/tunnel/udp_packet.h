// UDP straight off the packet: the datagram inside an IP packet, the reply packets tunsocks
// writes to the TUN, and a small bounded reassembler for fragmented UDP datagrams.
//
// UDP is handled beside lwIP, not through it (lwIP is built with LWIP_UDP 0): a datagram
// needs no pcb per flow and no copy through lwIP's buffers; its addresses and ports are all
// the relay needs, and a reply is one IP header plus one UDP header with checksums.
//
// Everything here reads untrusted bytes: lengths are checked before use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "net/endpoint.h"
#include "tunnel/packet.h"

namespace tunsocks::tunnel {

// One UDP datagram from the application: who sent it, to whom, and its payload (pointing
// into the packet it was read from).
struct UdpDatagramView {
  net::Endpoint source;
  net::Endpoint destination;
  PacketView payload;
};

// The UDP datagram in `transport` (UDP header + payload) between the given addresses;
// nullopt when the UDP header's length does not fit. The checksum is not verified: the
// packet comes from the local kernel, which computed it (or offloaded it to us).
[[nodiscard]] std::optional<UdpDatagramView> parse_udp(const net::IpAddress& source,
                                                       const net::IpAddress& destination,
                                                       PacketView transport);

// The IP packets carrying one UDP datagram from `source` to `destination` (same family),
// with IP and UDP checksums. An IPv4 packet larger than `mtu` is split into fragments (the
// kernel reassembles them); IPv6 is written whole, since the TUN's own kernel side accepts
// a packet larger than its MTU and an IPv6 sender must not rely on routers fragmenting.
// `ip_id` identifies IPv4 fragments of one datagram. Empty when the families differ or the
// datagram cannot be carried (UDP length over 65535 bytes).
[[nodiscard]] std::vector<PacketBytes> build_udp_packets(const net::Endpoint& source,
                                                         const net::Endpoint& destination,
                                                         PacketView payload,
                                                         std::size_t mtu = 65535,
                                                         std::uint16_t ip_id = 0);

// Reassembles fragmented UDP datagrams (IPv4 and IPv6 fragment headers). Bounded: at most
// `max_datagrams` being put together, `max_fragments` pieces each, `max_bytes` held in all;
// a datagram not complete within `timeout_ms` is dropped. Overlapping pieces drop the whole
// datagram (RFC 5722 requires it for IPv6; for IPv4 it is the safe choice, since a
// legitimate sender never overlaps); an exact duplicate is ignored.
class UdpReassembler {
 public:
  struct Limits {
    std::size_t max_datagrams = 64;
    std::size_t max_fragments = 64;
    std::size_t max_bytes = 1024 * 1024;
    std::uint64_t timeout_ms = 10'000;
  };

  struct Complete {
    net::IpAddress source;
    net::IpAddress destination;
    PacketBytes transport;  // UDP header + payload
  };

  enum class Result : std::uint8_t { complete, pending, dropped };

  UdpReassembler() = default;
  explicit UdpReassembler(Limits limits) : limits_(limits) {}

  // Takes one fragment (`info.fragment`, protocol UDP). On `complete`, `out` holds the
  // datagram. `dropped` counts every datagram given up (this fragment or earlier ones).
  Result add(const PacketInfo& info, PacketView packet, std::uint64_t now_ms, Complete& out);
  // Drops datagrams older than the timeout; returns how many.
  std::size_t expire(std::uint64_t now_ms);

  [[nodiscard]] std::size_t pending() const { return datagrams_.size(); }
  [[nodiscard]] std::size_t bytes_held() const { return bytes_held_; }
  [[nodiscard]] std::uint64_t dropped() const { return dropped_; }

 private:
  struct Piece {
    std::size_t offset = 0;
    PacketBytes bytes;
  };
  struct Datagram {
    net::IpAddress source;
    net::IpAddress destination;
    std::uint32_t id = 0;
    std::uint64_t started_ms = 0;
    std::optional<std::size_t> total;  // known once the last piece (MF = 0) arrived
    std::vector<Piece> pieces;
    std::size_t bytes = 0;
  };

  void drop(std::size_t index);

  Limits limits_;
  std::vector<Datagram> datagrams_;  // few at a time: a linear search beats a hash here
  std::size_t bytes_held_ = 0;
  std::uint64_t dropped_ = 0;
};

}  // namespace tunsocks::tunnel
