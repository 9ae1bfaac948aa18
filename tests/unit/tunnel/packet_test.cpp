#include "tunnel/packet.h"

#include <vector>

#include <doctest/doctest.h>

namespace {

using namespace tunsocks::tunnel;
using Bytes = std::vector<std::uint8_t>;

// A TCP SYN from 10.0.0.2:40000 to 192.0.2.7:443, sequence 0x01020304. Checksums stay
// zero: the classifier does not verify them (lwIP does, for what it is given).
Bytes ipv4_syn() {
  Bytes packet = {0x45, 0x00, 0x00, 0x28, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00,  // IPv4
                  10,   0,    0,    2,    192,  0,    2,    7,  // addresses
                  0x9C, 0x40, 0x01, 0xBB, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00,  // TCP
                  0x50, 0x02, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00};
  return packet;
}

// A TCP SYN from [2001:db8::2]:40000 to [2001:db8::7]:80, with a hop-by-hop header first.
Bytes ipv6_syn_with_extension() {
  Bytes packet(40 + 8 + 20, 0);
  packet[0] = 0x60;
  packet[5] = 28;  // payload length
  packet[6] = 0;   // hop-by-hop
  packet[7] = 64;
  const std::uint8_t source[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  const std::uint8_t destination[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7};
  std::copy(source, source + 16, packet.begin() + 8);
  std::copy(destination, destination + 16, packet.begin() + 24);
  packet[40] = 6;  // next: TCP; length 0 = 8 bytes
  const std::size_t tcp = 48;
  packet[tcp] = 0x9C;
  packet[tcp + 1] = 0x40;
  packet[tcp + 3] = 80;
  packet[tcp + 7] = 9;  // seq 9
  packet[tcp + 12] = 0x50;
  packet[tcp + 13] = 0x02;
  return packet;
}

// Verifying a checksum: summing the covered bytes (checksum included) gives zero.
bool ipv4_header_ok(const Bytes& packet) {
  return internet_checksum(PacketView(packet).first(20)) == 0;
}

}  // namespace

TEST_CASE("ipv4_syn_is_classified_with_its_four_tuple") {
  const Bytes syn = ipv4_syn();
  auto info = classify(syn);
  REQUIRE(info.has_value());
  CHECK(info->version == 4);
  CHECK(info->is_tcp());
  CHECK(info->is_tcp_syn());
  CHECK_FALSE(info->fragment);
  CHECK(info->flow.source.to_string() == "10.0.0.2:40000");
  CHECK(info->flow.destination.to_string() == "192.0.2.7:443");
  CHECK(info->tcp_seq == 0x01020304);
  CHECK(info->total_length == 40);
}

TEST_CASE("syn_ack_and_padding_are_told_apart") {
  Bytes packet = ipv4_syn();
  packet[33] = 0x12;  // SYN+ACK
  CHECK_FALSE(classify(packet)->is_tcp_syn());
  packet = ipv4_syn();
  packet.resize(60, 0xEE);  // trailing bytes beyond the IP total length
  CHECK(classify(packet)->total_length == 40);
}

TEST_CASE("ipv6_syn_behind_an_extension_header") {
  const Bytes syn = ipv6_syn_with_extension();
  auto info = classify(syn);
  REQUIRE(info.has_value());
  CHECK(info->version == 6);
  CHECK(info->ip_header_length == 48);
  CHECK(info->is_tcp_syn());
  CHECK(info->flow.destination.to_string() == "[2001:db8::7]:80");
}

TEST_CASE("malformed_packets_are_dropped_with_a_reason") {
  CHECK(classify(Bytes{}).error() == DropReason::too_short);
  CHECK(classify(Bytes{0x45, 0x00}).error() == DropReason::too_short);
  CHECK(classify(Bytes(40, 0x00)).error() == DropReason::bad_version);
  Bytes packet = ipv4_syn();
  packet[0] = 0x44;  // IHL 16 bytes
  CHECK(classify(packet).error() == DropReason::bad_header_length);
  packet = ipv4_syn();
  packet[3] = 0xFF;  // total length beyond the read
  CHECK(classify(packet).error() == DropReason::bad_total_length);
  Bytes v6 = ipv6_syn_with_extension();
  v6[41] = 200;  // extension header longer than the packet
  CHECK(classify(v6).error() == DropReason::bad_header_length);
  v6 = ipv6_syn_with_extension();
  v6[4] = 0;
  v6[5] = 0;  // jumbogram marker
  CHECK(classify(v6).error() == DropReason::bad_total_length);
}

TEST_CASE("every_prefix_of_a_packet_is_handled") {
  for (const Bytes& full : {ipv4_syn(), ipv6_syn_with_extension()}) {
    for (std::size_t size = 0; size < full.size(); ++size) {
      Bytes cut(full.begin(), full.begin() + static_cast<long>(size));
      auto info = classify(cut);
      // A cut packet is never taken for a whole TCP segment.
      CHECK((!info.has_value() || !info->is_tcp()));
    }
  }
}

TEST_CASE("ipv4_fragments_carry_no_ports") {
  Bytes packet = ipv4_syn();
  packet[6] = 0x00;
  packet[7] = 0x10;  // offset 16 * 8 bytes
  auto info = classify(packet);
  REQUIRE(info.has_value());
  CHECK(info->fragment);
  CHECK_FALSE(info->has_ports);
}

TEST_CASE("reset_answers_the_syn_from_its_destination") {
  const Bytes syn = ipv4_syn();
  auto info = classify(syn);
  const Bytes reset = build_refusal(*info, syn, Refusal::reset);
  REQUIRE(reset.size() == 40);
  CHECK(ipv4_header_ok(reset));
  auto parsed = classify(reset);
  REQUIRE(parsed.has_value());
  CHECK(parsed->flow.source == info->flow.destination);
  CHECK(parsed->flow.destination == info->flow.source);
  CHECK(parsed->tcp_flags == (tcp_flag::rst | tcp_flag::ack));
  CHECK(parsed->tcp_seq == 0);
  // ACK number = SYN's sequence + 1.
  CHECK(reset[28] == 0x01);
  CHECK(reset[29] == 0x02);
  CHECK(reset[30] == 0x03);
  CHECK(reset[31] == 0x05);
  const std::uint32_t pseudo =
      pseudo_header_sum(parsed->flow.source.ip, parsed->flow.destination.ip, kProtoTcp, 20);
  CHECK(internet_checksum(PacketView(reset).subspan(20), pseudo) == 0);
}

TEST_CASE("icmp_unreachable_quotes_the_syn") {
  const Bytes syn = ipv4_syn();
  auto info = classify(syn);
  const Bytes host = build_refusal(*info, syn, Refusal::host_unreachable);
  REQUIRE(host.size() == 20 + 8 + syn.size());
  CHECK(ipv4_header_ok(host));
  CHECK(host[9] == kProtoIcmp);
  CHECK(host[20] == 3);
  CHECK(host[21] == 1);
  CHECK(internet_checksum(PacketView(host).subspan(20)) == 0);
  CHECK(Bytes(host.begin() + 28, host.end()) == syn);
  const Bytes net = build_refusal(*info, syn, Refusal::network_unreachable);
  CHECK(net[21] == 0);
}

TEST_CASE("ipv6_reset_and_unreachable_have_valid_checksums") {
  const Bytes syn = ipv6_syn_with_extension();
  auto info = classify(syn);
  const Bytes reset = build_refusal(*info, syn, Refusal::reset);
  REQUIRE(reset.size() == 60);
  auto parsed = classify(reset);
  REQUIRE(parsed.has_value());
  CHECK(parsed->tcp_flags == (tcp_flag::rst | tcp_flag::ack));
  CHECK(internet_checksum(PacketView(reset).subspan(40),
                          pseudo_header_sum(parsed->flow.source.ip, parsed->flow.destination.ip,
                                            kProtoTcp, 20)) == 0);
  const Bytes unreachable = build_refusal(*info, syn, Refusal::host_unreachable);
  auto icmp = classify(unreachable);
  REQUIRE(icmp.has_value());
  CHECK(icmp->protocol == kProtoIcmpv6);
  CHECK(unreachable[40] == 1);
  CHECK(unreachable[41] == 3);
  CHECK(internet_checksum(PacketView(unreachable).subspan(40),
                          pseudo_header_sum(icmp->flow.source.ip, icmp->flow.destination.ip,
                                            kProtoIcmpv6, unreachable.size() - 40)) == 0);
}
