// IP packets as they come off the TUN: classification (version, protocol, the flow's
// addresses and ports, TCP flags) without copying, and the few packets tunsocks writes by
// itself rather than through lwIP: a TCP reset or an ICMP "unreachable" answering a SYN
// whose upstream said no, so the application sees what a direct connect would show.
//
// Everything here reads untrusted bytes: lengths are checked before use, and a packet that
// cannot be used yields a DropReason that is counted, never an assertion.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "net/endpoint.h"

namespace tunsocks::tunnel {

using PacketView = std::span<const std::uint8_t>;
using PacketBytes = std::vector<std::uint8_t>;

inline constexpr std::uint8_t kProtoTcp = 6;
inline constexpr std::uint8_t kProtoUdp = 17;
inline constexpr std::uint8_t kProtoIcmp = 1;
inline constexpr std::uint8_t kProtoIcmpv6 = 58;

namespace tcp_flag {
inline constexpr std::uint8_t fin = 0x01;
inline constexpr std::uint8_t syn = 0x02;
inline constexpr std::uint8_t rst = 0x04;
inline constexpr std::uint8_t ack = 0x10;
}  // namespace tcp_flag

enum class DropReason : std::uint8_t {
  too_short,
  bad_version,
  bad_header_length,
  bad_total_length,
  too_many_extension_headers,
  count_,  // number of reasons, for counter arrays
};
std::string_view describe(DropReason reason);

// The identity of a TCP flow as the application sees it: it connects from `source` to
// `destination` (tunsocks plays the destination).
struct FlowKey {
  net::Endpoint source;
  net::Endpoint destination;
  friend bool operator==(const FlowKey&, const FlowKey&) = default;
};

struct FlowKeyHash {
  std::size_t operator()(const FlowKey& key) const noexcept;
};

struct PacketInfo {
  std::uint8_t version = 4;          // 4 or 6
  std::uint8_t protocol = 0;         // the transport after any IPv6 extension headers
  std::size_t ip_header_length = 0;  // bytes before the transport header
  std::size_t total_length = 0;      // the IP datagram's length (the read may carry padding)
  bool fragment = false;             // part of a fragmented datagram (ports may be absent)
  bool has_ports = false;            // TCP/UDP header present and ports filled in
  FlowKey flow;                      // addresses always; ports when has_ports
  std::uint8_t tcp_flags = 0;        // TCP only
  std::uint32_t tcp_seq = 0;         // TCP only

  [[nodiscard]] bool is_tcp() const { return protocol == kProtoTcp && has_ports; }
  // A connection attempt: SYN without ACK (nor RST).
  [[nodiscard]] bool is_tcp_syn() const {
    return is_tcp() &&
           (tcp_flags & (tcp_flag::syn | tcp_flag::ack | tcp_flag::rst)) == tcp_flag::syn;
  }
};

[[nodiscard]] std::expected<PacketInfo, DropReason> classify(PacketView packet);

// How a refused connection attempt is answered.
enum class Refusal : std::uint8_t {
  reset,                // TCP RST+ACK: the app sees ECONNREFUSED
  network_unreachable,  // ICMP destination unreachable (net / no route): ENETUNREACH
  host_unreachable,     // ICMP destination unreachable (host / address): EHOSTUNREACH
};

// The packet to write to the TUN in answer to `syn` (a packet for which is_tcp_syn()).
[[nodiscard]] PacketBytes build_refusal(const PacketInfo& syn, PacketView syn_packet,
                                        Refusal refusal);

// RFC 1071 one's-complement sum helpers, exposed for tests.
[[nodiscard]] std::uint16_t internet_checksum(PacketView bytes, std::uint32_t initial = 0);
[[nodiscard]] std::uint32_t pseudo_header_sum(const net::IpAddress& source,
                                              const net::IpAddress& destination,
                                              std::uint8_t protocol, std::size_t length);

}  // namespace tunsocks::tunnel
