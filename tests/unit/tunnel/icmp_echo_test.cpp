#include "tunnel/icmp_echo.h"

#include <vector>

#include <doctest/doctest.h>

namespace {

using namespace tunsocks;
using namespace tunsocks::tunnel;
using Bytes = std::vector<std::uint8_t>;

// An echo request from 10.0.0.2 to 192.0.2.7, id 0x0102, sequence 3, 4 bytes of data.
Bytes ipv4_echo_request() {
  Bytes packet = {0x45, 0, 0, 32, 0, 1, 0, 0, 64, kProtoIcmp, 0, 0, 10,  0,   0,   2,
                  192,  0, 2, 7,  8, 0, 0, 0, 1,  2,          0, 3, 'p', 'i', 'n', 'g'};
  const std::uint16_t sum = internet_checksum(PacketView(packet).subspan(20));
  packet[22] = static_cast<std::uint8_t>(sum >> 8);
  packet[23] = static_cast<std::uint8_t>(sum);
  return packet;
}

Bytes ipv6_echo_request() {
  Bytes packet(40 + 12, 0);
  packet[0] = 0x60;
  packet[5] = 12;
  packet[6] = kProtoIcmpv6;
  packet[7] = 64;
  packet[8] = 0xfd;
  packet[23] = 2;  // fd00::2
  packet[24] = 0x20;
  packet[25] = 0x01;
  packet[26] = 0x0d;
  packet[27] = 0xb8;
  packet[39] = 7;  // 2001:db8::7
  const Bytes icmp = {128, 0, 0, 0, 1, 2, 0, 3, 'p', 'i', 'n', 'g'};
  std::copy(icmp.begin(), icmp.end(), packet.begin() + 40);
  return packet;
}

}  // namespace

TEST_CASE("ipv4_echo_request_is_answered_from_the_address_pinged") {
  const Bytes request = ipv4_echo_request();
  auto info = classify(request);
  REQUIRE(info.has_value());
  auto reply = build_echo_reply(*info, request);
  REQUIRE(reply.has_value());
  auto reply_info = classify(*reply);
  REQUIRE(reply_info.has_value());
  CHECK(reply_info->flow.source.ip.to_string() == "192.0.2.7");
  CHECK(reply_info->flow.destination.ip.to_string() == "10.0.0.2");
  CHECK(internet_checksum(PacketView(*reply).first(20)) == 0);
  CHECK(internet_checksum(PacketView(*reply).subspan(20)) == 0);
  CHECK((*reply)[20] == 0);  // echo reply
  CHECK(Bytes(reply->begin() + 24, reply->end()) == Bytes(request.begin() + 24, request.end()));
}

TEST_CASE("ipv6_echo_request_is_answered_with_a_pseudo_header_checksum") {
  const Bytes request = ipv6_echo_request();
  auto info = classify(request);
  REQUIRE(info.has_value());
  auto reply = build_echo_reply(*info, request);
  REQUIRE(reply.has_value());
  auto reply_info = classify(*reply);
  REQUIRE(reply_info.has_value());
  CHECK(reply_info->flow.source.ip.to_string() == "2001:db8::7");
  CHECK(reply_info->flow.destination.ip.to_string() == "fd00::2");
  CHECK((*reply)[40] == 129);
  CHECK(internet_checksum(PacketView(*reply).subspan(40),
                          pseudo_header_sum(reply_info->flow.source.ip,
                                            reply_info->flow.destination.ip, kProtoIcmpv6, 12)) ==
        0);
}

TEST_CASE("other_icmp_messages_are_not_answered") {
  Bytes reply_packet = ipv4_echo_request();
  reply_packet[20] = 0;  // an echo reply is not answered
  auto info = classify(reply_packet);
  REQUIRE(info.has_value());
  CHECK_FALSE(build_echo_reply(*info, reply_packet).has_value());
  Bytes short_packet = ipv4_echo_request();
  short_packet.resize(24);
  short_packet[3] = 24;
  info = classify(short_packet);
  REQUIRE(info.has_value());
  CHECK_FALSE(build_echo_reply(*info, short_packet).has_value());
}
