// The tunnel's own parsers of untrusted packets: classify, the UDP reassembler, the UDP
// header, the DNS question and the ICMP echo. One input is a sequence of packets, each
// prefixed by a 2-byte big-endian length, fed in order as if read from the TUN one second
// apart (so that reassembly timeouts happen too).
#include "invariants.h"
#include "tunnel/dns.h"
#include "tunnel/icmp_echo.h"
#include "tunnel/packet.h"
#include "tunnel/udp_packet.h"

namespace {

using namespace tunsocks;
using namespace tunsocks::tunnel;
using tunsocks::socks::fuzz::expect;

// A datagram that came whole out of the parsers is written back the other way round: the
// packets built must classify as UDP with checksums that verify.
void check_reply(const UdpDatagramView& datagram) {
  const auto packets =
      build_udp_packets(datagram.destination, datagram.source, datagram.payload, 1500);
  if (datagram.payload.size() + 28 > 0xFFFF) return;
  expect(!packets.empty());
  if (packets.size() != 1) return;
  auto info = classify(packets[0]);
  expect(info.has_value() && info->protocol == kProtoUdp && !info->fragment);
  const PacketView udp = PacketView(packets[0]).subspan(info->ip_header_length);
  expect(internet_checksum(udp, pseudo_header_sum(info->flow.source.ip, info->flow.destination.ip,
                                                  kProtoUdp, udp.size())) == 0);
}

void check_dns(PacketView payload) {
  auto query = parse_dns_query(payload);
  if (!query) return;
  expect(query->question_end <= payload.size() && query->name.size() <= 253);
  const auto response = build_dns_response(*query, payload, net::IpAddress::v4(0xC6120001), 30);
  expect(response.size() == query->question_end + 16);
  auto again = parse_dns_query(response);
  expect(!again.has_value());  // a response is never taken for a query
}

// What tunsocks writes back for a refused SYN is a packet it would itself accept, going
// the other way: a TCP reset, or an ICMP error that quotes the SYN.
void check_refusals(const PacketInfo& syn, PacketView packet) {
  for (Refusal refusal :
       {Refusal::reset, Refusal::network_unreachable, Refusal::host_unreachable}) {
    const PacketBytes answer = build_refusal(syn, packet, refusal);
    const auto back = classify(answer);
    expect(back.has_value() && back->version == syn.version);
    expect(back->flow.source.ip == syn.flow.destination.ip &&
           back->flow.destination.ip == syn.flow.source.ip);
    if (refusal == Refusal::reset) {
      expect(back->protocol == kProtoTcp && back->flow.source.port == syn.flow.destination.port &&
             back->flow.destination.port == syn.flow.source.port);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  UdpReassembler reassembler(
      {.max_datagrams = 4, .max_fragments = 8, .max_bytes = 16384, .timeout_ms = 3000});
  std::uint64_t now = 0;
  std::size_t offset = 0;
  while (offset + 2 <= size) {
    const std::size_t length = std::size_t{data[offset]} << 8 | data[offset + 1];
    offset += 2;
    const PacketView packet(data + offset, std::min(length, size - offset));
    offset += packet.size();
    now += 1000;
    auto info = classify(packet);
    if (!info) {
      expect(!describe(info.error()).empty());
      continue;
    }
    expect(info->total_length <= packet.size() && info->ip_header_length <= info->total_length);
    (void)FlowKeyHash{}(info->flow);
    if (info->is_tcp_syn()) check_refusals(*info, packet.first(info->total_length));
    if (info->protocol == kProtoIcmp || info->protocol == kProtoIcmpv6) {
      if (auto reply = build_echo_reply(*info, packet)) expect(classify(*reply).has_value());
      continue;
    }
    if (info->protocol != kProtoUdp) continue;
    const PacketView ip = packet.first(info->total_length);
    if (info->fragment) {
      UdpReassembler::Complete whole;
      const auto result = reassembler.add(*info, ip, now, whole);
      expect(reassembler.pending() <= 4 && reassembler.bytes_held() <= 16384);
      if (result != UdpReassembler::Result::complete) continue;
      if (auto datagram = parse_udp(whole.source, whole.destination, whole.transport)) {
        check_reply(*datagram);
        check_dns(datagram->payload);
      }
      continue;
    }
    if (auto datagram = parse_udp(info->flow.source.ip, info->flow.destination.ip,
                                  ip.subspan(info->ip_header_length))) {
      check_reply(*datagram);
      check_dns(datagram->payload);
    }
  }
  return 0;
}
