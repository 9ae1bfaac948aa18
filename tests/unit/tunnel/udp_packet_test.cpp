#include "tunnel/udp_packet.h"

#include <algorithm>
#include <vector>

#include <doctest/doctest.h>

namespace {

using namespace tunsocks;
using namespace tunsocks::tunnel;
using Bytes = std::vector<std::uint8_t>;

net::Endpoint endpoint(const char* text) {
  return *net::Endpoint::parse(text);
}

Bytes payload_of(std::size_t size) {
  Bytes payload(size);
  for (std::size_t i = 0; i < size; ++i)
    payload[i] = static_cast<std::uint8_t>(i * 7 + 3);
  return payload;
}

// A UDP checksum verifies when the sum over pseudo header and datagram (checksum
// included) folds to zero.
bool udp_checksum_ok(const PacketInfo& info, PacketView packet) {
  const PacketView udp = packet.subspan(info.ip_header_length);
  return internet_checksum(udp, pseudo_header_sum(info.flow.source.ip, info.flow.destination.ip,
                                                  kProtoUdp, udp.size())) == 0;
}

// Splits a whole IPv6 UDP packet into fragments of `chunk` bytes (a multiple of 8) with a
// fragment header, as a sending kernel would.
std::vector<Bytes> ipv6_fragments(const Bytes& whole, std::size_t chunk, std::uint32_t id) {
  std::vector<Bytes> fragments;
  const PacketView transport = PacketView(whole).subspan(40);
  for (std::size_t offset = 0; offset < transport.size(); offset += chunk) {
    const std::size_t size = std::min(chunk, transport.size() - offset);
    const bool more = offset + size < transport.size();
    Bytes fragment(whole.begin(), whole.begin() + 40);
    fragment[4] = static_cast<std::uint8_t>((8 + size) >> 8);
    fragment[5] = static_cast<std::uint8_t>(8 + size);
    fragment[6] = 44;
    const std::uint16_t field = static_cast<std::uint16_t>(offset | (more ? 1 : 0));
    const std::uint8_t header[8] = {kProtoUdp,
                                    0,
                                    static_cast<std::uint8_t>(field >> 8),
                                    static_cast<std::uint8_t>(field),
                                    static_cast<std::uint8_t>(id >> 24),
                                    static_cast<std::uint8_t>(id >> 16),
                                    static_cast<std::uint8_t>(id >> 8),
                                    static_cast<std::uint8_t>(id)};
    fragment.insert(fragment.end(), header, header + 8);
    fragment.insert(fragment.end(), transport.begin() + static_cast<std::ptrdiff_t>(offset),
                    transport.begin() + static_cast<std::ptrdiff_t>(offset + size));
    fragments.push_back(fragment);
  }
  return fragments;
}

UdpReassembler::Result feed(UdpReassembler& reassembler, const Bytes& fragment,
                            std::uint64_t now_ms, UdpReassembler::Complete& out) {
  auto info = classify(fragment);
  REQUIRE(info.has_value());
  REQUIRE(info->fragment);
  return reassembler.add(*info, fragment, now_ms, out);
}

// The UDP datagram of a complete reassembly, checked against what was sent.
void check_complete(const UdpReassembler::Complete& whole, const net::Endpoint& source,
                    const net::Endpoint& destination, const Bytes& payload) {
  auto datagram = parse_udp(whole.source, whole.destination, whole.transport);
  REQUIRE(datagram.has_value());
  CHECK(datagram->source == source);
  CHECK(datagram->destination == destination);
  CHECK(Bytes(datagram->payload.begin(), datagram->payload.end()) == payload);
}

}  // namespace

TEST_CASE("ipv4_udp_reply_has_valid_checksums") {
  const auto source = endpoint("192.0.2.7:53");
  const auto destination = endpoint("10.0.0.2:40000");
  const Bytes payload = payload_of(100);
  auto packets = build_udp_packets(source, destination, payload);
  REQUIRE(packets.size() == 1);
  auto info = classify(packets[0]);
  REQUIRE(info.has_value());
  CHECK(info->version == 4);
  CHECK(info->protocol == kProtoUdp);
  CHECK_FALSE(info->fragment);
  CHECK(info->total_length == 20 + 8 + 100);
  CHECK(internet_checksum(PacketView(packets[0]).first(20)) == 0);
  CHECK(udp_checksum_ok(*info, packets[0]));
  auto datagram = parse_udp(info->flow.source.ip, info->flow.destination.ip,
                            PacketView(packets[0]).subspan(20));
  REQUIRE(datagram.has_value());
  CHECK(datagram->source == source);
  CHECK(datagram->destination == destination);
  CHECK(Bytes(datagram->payload.begin(), datagram->payload.end()) == payload);
}

TEST_CASE("ipv6_udp_reply_has_valid_checksum") {
  const auto source = endpoint("[2001:db8::7]:5000");
  const auto destination = endpoint("[fd00::2]:41000");
  const Bytes payload = payload_of(1401);  // odd length: the checksum pads a zero byte
  auto packets = build_udp_packets(source, destination, payload, 1280);
  REQUIRE(packets.size() == 1);  // IPv6 is written whole
  auto info = classify(packets[0]);
  REQUIRE(info.has_value());
  CHECK(info->version == 6);
  CHECK(info->protocol == kProtoUdp);
  CHECK(info->total_length == 40 + 8 + 1401);
  CHECK(info->flow.source == source);
  CHECK(info->flow.destination == destination);
  CHECK(udp_checksum_ok(*info, packets[0]));
}

TEST_CASE("empty_udp_payload_is_a_valid_datagram") {
  auto packets = build_udp_packets(endpoint("192.0.2.7:9"), endpoint("10.0.0.2:9"), {});
  REQUIRE(packets.size() == 1);
  auto info = classify(packets[0]);
  REQUIRE(info.has_value());
  CHECK(udp_checksum_ok(*info, packets[0]));
}

TEST_CASE("udp_reply_with_mixed_families_or_too_large_is_not_built") {
  CHECK(
      build_udp_packets(endpoint("192.0.2.7:53"), endpoint("[fd00::2]:1"), payload_of(4)).empty());
  // IPv4: 20 + 8 + 65508 > 65535.
  CHECK(build_udp_packets(endpoint("192.0.2.7:53"), endpoint("10.0.0.2:1"), payload_of(65508))
            .empty());
  CHECK(build_udp_packets(endpoint("192.0.2.7:53"), endpoint("10.0.0.2:1"), payload_of(65507))
            .size() == 1);
  // IPv6: the UDP length field itself (8 + 65528 > 65535).
  CHECK(build_udp_packets(endpoint("[2001:db8::7]:1"), endpoint("[fd00::2]:1"), payload_of(65528))
            .empty());
}

TEST_CASE("parse_udp_refuses_a_length_beyond_the_packet") {
  Bytes transport = {0x9C, 0x40, 0x00, 0x35, 0x00, 0x20, 0x00, 0x00, 1, 2, 3};
  CHECK_FALSE(parse_udp(net::IpAddress::v4(1), net::IpAddress::v4(2), transport).has_value());
  transport[5] = 7;  // shorter than the header
  CHECK_FALSE(parse_udp(net::IpAddress::v4(1), net::IpAddress::v4(2), transport).has_value());
  transport[5] = 11;
  auto datagram = parse_udp(net::IpAddress::v4(1), net::IpAddress::v4(2), transport);
  REQUIRE(datagram.has_value());
  CHECK(datagram->payload.size() == 3);
}

TEST_CASE("ipv4_reply_over_the_mtu_is_fragmented_and_reassembles_in_order") {
  const auto source = endpoint("192.0.2.7:5000");
  const auto destination = endpoint("10.0.0.2:40000");
  const Bytes payload = payload_of(8000);
  auto packets = build_udp_packets(source, destination, payload, 1500, 0x4242);
  REQUIRE(packets.size() == 6);  // 8008 bytes of UDP in 1480-byte pieces
  UdpReassembler reassembler;
  UdpReassembler::Complete whole;
  for (std::size_t i = 0; i < packets.size(); ++i) {
    CHECK(packets[i].size() <= 1500);
    CHECK(internet_checksum(PacketView(packets[i]).first(20)) == 0);
    const auto result = feed(reassembler, packets[i], 0, whole);
    CHECK(result == (i + 1 == packets.size() ? UdpReassembler::Result::complete
                                             : UdpReassembler::Result::pending));
  }
  check_complete(whole, source, destination, payload);
  CHECK(reassembler.pending() == 0);
  CHECK(reassembler.bytes_held() == 0);
  CHECK(reassembler.dropped() == 0);
}

TEST_CASE("ipv4_fragments_out_of_order_with_a_duplicate_reassemble") {
  const auto source = endpoint("192.0.2.7:5000");
  const auto destination = endpoint("10.0.0.2:40000");
  const Bytes payload = payload_of(3000);
  auto packets = build_udp_packets(source, destination, payload, 576, 7);
  REQUIRE(packets.size() > 3);
  UdpReassembler reassembler;
  UdpReassembler::Complete whole;
  // Last first, then a duplicate of it, then the rest backwards.
  CHECK(feed(reassembler, packets.back(), 0, whole) == UdpReassembler::Result::pending);
  CHECK(feed(reassembler, packets.back(), 0, whole) == UdpReassembler::Result::pending);
  for (std::size_t i = packets.size() - 1; i-- > 1;)
    CHECK(feed(reassembler, packets[i], 0, whole) == UdpReassembler::Result::pending);
  CHECK(feed(reassembler, packets[0], 0, whole) == UdpReassembler::Result::complete);
  check_complete(whole, source, destination, payload);
  CHECK(reassembler.dropped() == 0);
}

TEST_CASE("ipv4_overlapping_fragment_drops_the_datagram") {
  auto packets =
      build_udp_packets(endpoint("192.0.2.7:1"), endpoint("10.0.0.2:2"), payload_of(2000), 576, 9);
  REQUIRE(packets.size() >= 3);
  // The second piece, moved 8 bytes back so that it overlaps the first.
  Bytes overlapping = packets[1];
  const std::uint16_t field =
      static_cast<std::uint16_t>((overlapping[6] << 8 | overlapping[7]) - 1);
  overlapping[6] = static_cast<std::uint8_t>(field >> 8);
  overlapping[7] = static_cast<std::uint8_t>(field);
  UdpReassembler reassembler;
  UdpReassembler::Complete whole;
  CHECK(feed(reassembler, packets[0], 0, whole) == UdpReassembler::Result::pending);
  CHECK(feed(reassembler, overlapping, 0, whole) == UdpReassembler::Result::dropped);
  CHECK(reassembler.dropped() == 1);
  CHECK(reassembler.pending() == 0);
  CHECK(reassembler.bytes_held() == 0);
}

TEST_CASE("incomplete_datagram_expires_after_the_timeout") {
  auto packets =
      build_udp_packets(endpoint("192.0.2.7:1"), endpoint("10.0.0.2:2"), payload_of(2000), 576, 3);
  UdpReassembler reassembler({.timeout_ms = 1000});
  UdpReassembler::Complete whole;
  CHECK(feed(reassembler, packets[0], 100, whole) == UdpReassembler::Result::pending);
  CHECK(reassembler.expire(1099) == 0);
  CHECK(reassembler.pending() == 1);
  CHECK(reassembler.expire(1100) == 1);
  CHECK(reassembler.pending() == 0);
  CHECK(reassembler.bytes_held() == 0);
  CHECK(reassembler.dropped() == 1);
  // The rest arriving late starts over and never completes without the first piece.
  for (std::size_t i = 1; i < packets.size(); ++i)
    CHECK(feed(reassembler, packets[i], 1200, whole) == UdpReassembler::Result::pending);
}

TEST_CASE("too_many_fragments_drop_the_datagram") {
  auto packets =
      build_udp_packets(endpoint("192.0.2.7:1"), endpoint("10.0.0.2:2"), payload_of(4000), 100, 5);
  REQUIRE(packets.size() > 8);
  UdpReassembler reassembler({.max_fragments = 8});
  UdpReassembler::Complete whole;
  UdpReassembler::Result result = UdpReassembler::Result::pending;
  for (const Bytes& packet : packets) {
    result = feed(reassembler, packet, 0, whole);
    if (result != UdpReassembler::Result::pending) break;
  }
  CHECK(result == UdpReassembler::Result::dropped);
  CHECK(reassembler.pending() == 0);
  CHECK(reassembler.bytes_held() == 0);
}

TEST_CASE("pending_datagrams_and_bytes_are_bounded") {
  UdpReassembler reassembler({.max_datagrams = 4, .max_bytes = 4000});
  UdpReassembler::Complete whole;
  // First pieces of 10 datagrams: only the 4 newest are kept.
  for (std::uint16_t id = 0; id < 10; ++id) {
    auto packets = build_udp_packets(endpoint("192.0.2.7:1"), endpoint("10.0.0.2:2"),
                                     payload_of(3000), 576, id);
    feed(reassembler, packets[0], 0, whole);
    CHECK(reassembler.pending() <= 4);
    CHECK(reassembler.bytes_held() <= 4000);
  }
  CHECK(reassembler.pending() == 4);
  CHECK(reassembler.dropped() == 6);
  // A datagram larger than the byte budget is given up, not held.
  UdpReassembler small({.max_bytes = 1000});
  auto packets =
      build_udp_packets(endpoint("192.0.2.7:1"), endpoint("10.0.0.2:2"), payload_of(3000), 576, 77);
  UdpReassembler::Result result = UdpReassembler::Result::pending;
  for (const Bytes& packet : packets) {
    result = feed(small, packet, 0, whole);
    CHECK(small.bytes_held() <= 1000);
    if (result != UdpReassembler::Result::pending) break;
  }
  CHECK(result == UdpReassembler::Result::dropped);
}

TEST_CASE("ipv6_fragments_reassemble_out_of_order") {
  const auto source = endpoint("[fd00::2]:40000");
  const auto destination = endpoint("[2001:db8::7]:5000");
  const Bytes payload = payload_of(5000);
  auto whole_packets = build_udp_packets(source, destination, payload);
  REQUIRE(whole_packets.size() == 1);
  auto fragments = ipv6_fragments(whole_packets[0], 1448, 0xA1B2C3D4);
  REQUIRE(fragments.size() == 4);
  UdpReassembler reassembler;
  UdpReassembler::Complete whole;
  CHECK(feed(reassembler, fragments[2], 0, whole) == UdpReassembler::Result::pending);
  CHECK(feed(reassembler, fragments[0], 0, whole) == UdpReassembler::Result::pending);
  CHECK(feed(reassembler, fragments[3], 0, whole) == UdpReassembler::Result::pending);
  CHECK(feed(reassembler, fragments[1], 0, whole) == UdpReassembler::Result::complete);
  check_complete(whole, source, destination, payload);
}

TEST_CASE("fragments_of_different_datagrams_do_not_mix") {
  const Bytes a = payload_of(2000);
  Bytes b = payload_of(2000);
  b[0] ^= 0xFF;
  auto first = build_udp_packets(endpoint("192.0.2.7:1"), endpoint("10.0.0.2:2"), a, 576, 1);
  auto second = build_udp_packets(endpoint("192.0.2.7:1"), endpoint("10.0.0.2:2"), b, 576, 2);
  REQUIRE(first.size() == second.size());
  UdpReassembler reassembler;
  UdpReassembler::Complete whole;
  for (std::size_t i = 0; i + 1 < first.size(); ++i) {
    CHECK(feed(reassembler, first[i], 0, whole) == UdpReassembler::Result::pending);
    CHECK(feed(reassembler, second[i], 0, whole) == UdpReassembler::Result::pending);
  }
  CHECK(feed(reassembler, second.back(), 0, whole) == UdpReassembler::Result::complete);
  check_complete(whole, endpoint("192.0.2.7:1"), endpoint("10.0.0.2:2"), b);
  CHECK(feed(reassembler, first.back(), 0, whole) == UdpReassembler::Result::complete);
  check_complete(whole, endpoint("192.0.2.7:1"), endpoint("10.0.0.2:2"), a);
}
