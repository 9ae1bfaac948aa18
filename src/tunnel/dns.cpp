#include "tunnel/dns.h"

#include <algorithm>

namespace tunsocks::tunnel {
namespace {

constexpr std::size_t kHeader = 12;
constexpr std::size_t kMaxName = 253;  // text form, without the trailing dot

std::uint16_t load16(PacketView bytes, std::size_t offset) {
  return static_cast<std::uint16_t>(bytes[offset] << 8 | bytes[offset + 1]);
}

void append16(PacketBytes& out, std::uint16_t value) {
  out.push_back(static_cast<std::uint8_t>(value >> 8));
  out.push_back(static_cast<std::uint8_t>(value));
}

}  // namespace

std::optional<DnsQuery> parse_dns_query(PacketView message) {
  if (message.size() < kHeader) return std::nullopt;
  const std::uint16_t flags = load16(message, 2);
  const bool response = (flags & 0x8000) != 0;
  const unsigned opcode = (flags >> 11) & 0xF;
  if (response || opcode != 0 || load16(message, 4) != 1) return std::nullopt;
  DnsQuery query;
  query.id = load16(message, 0);
  query.recursion_desired = (flags & 0x0100) != 0;
  std::size_t offset = kHeader;
  for (;;) {
    if (offset >= message.size()) return std::nullopt;
    const std::size_t length = message[offset++];
    if (length == 0) break;
    // 0xC0: a compression pointer; 0x40/0x80: label types nobody uses.
    if (length > 63 || offset + length > message.size()) return std::nullopt;
    if (!query.name.empty()) query.name += '.';
    for (std::size_t i = 0; i < length; ++i) {
      const auto c = static_cast<char>(message[offset + i]);
      // Names go upstream as ATYP 3 and into logs: only what a host name may hold.
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_';
      if (!ok) return std::nullopt;
      query.name += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    offset += length;
    if (query.name.size() > kMaxName) return std::nullopt;
  }
  if (offset + 4 > message.size()) return std::nullopt;
  query.type = load16(message, offset);
  query.klass = load16(message, offset + 2);
  query.question_end = offset + 4;
  return query;
}

PacketBytes build_dns_response(const DnsQuery& query, PacketView message,
                               const std::optional<net::IpAddress>& address, std::uint32_t ttl,
                               std::uint8_t rcode) {
  PacketBytes out;
  out.reserve(query.question_end + 16 + 16);
  append16(out, query.id);
  // QR, RD as asked, RA: we answer as a recursive resolver would.
  append16(out, static_cast<std::uint16_t>(0x8000 | (query.recursion_desired ? 0x0100 : 0) |
                                           0x0080 | (rcode & 0xF)));
  append16(out, 1);
  append16(out, address ? 1 : 0);
  append16(out, 0);
  append16(out, 0);  // the query's EDNS record is not echoed: a plain answer is valid
  out.insert(out.end(), message.begin() + kHeader,
             message.begin() + static_cast<std::ptrdiff_t>(query.question_end));
  if (!address) return out;
  append16(out, 0xC000 | kHeader);  // the name: a pointer to the question's
  append16(out, address->is_v4() ? kDnsTypeA : kDnsTypeAaaa);
  append16(out, kDnsClassIn);
  append16(out, static_cast<std::uint16_t>(ttl >> 16));
  append16(out, static_cast<std::uint16_t>(ttl));
  const auto bytes = address->bytes();
  append16(out, static_cast<std::uint16_t>(bytes.size()));
  out.insert(out.end(), bytes.begin(), bytes.end());
  return out;
}

}  // namespace tunsocks::tunnel
