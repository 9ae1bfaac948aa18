// Just enough DNS (RFC 1035) for fake-ip answers (DESIGN.md, "DNS and names"): read the one
// question of a standard query, and write the answer tunsocks gives by itself. Anything
// else (other opcodes, several questions, responses) is not for us and goes upstream
// untouched. Untrusted bytes: every length is checked, compression pointers in a question
// are refused (a query has nothing to point back to).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "net/ip.h"
#include "tunnel/packet.h"

namespace tunsocks::tunnel {

inline constexpr std::uint16_t kDnsTypeA = 1;
inline constexpr std::uint16_t kDnsTypeAaaa = 28;
inline constexpr std::uint16_t kDnsClassIn = 1;

struct DnsQuery {
  std::uint16_t id = 0;
  bool recursion_desired = false;
  std::string name;  // lower case, no trailing dot ("example.com"); "" for the root
  std::uint16_t type = 0;
  std::uint16_t klass = 0;
  std::size_t question_end = 0;  // the question's bytes are [12, question_end)
};

// The question of a standard query (QR = 0, OPCODE = 0, QDCOUNT = 1); nullopt otherwise.
[[nodiscard]] std::optional<DnsQuery> parse_dns_query(PacketView message);

// The response to `query` (read from `message`): its question, and one answer record with
// `address` (its family must match A or AAAA) and `ttl`; with no address, an empty answer
// with RCODE `rcode` (0: no data of this type, 2: server failure).
[[nodiscard]] PacketBytes build_dns_response(const DnsQuery& query, PacketView message,
                                             const std::optional<net::IpAddress>& address,
                                             std::uint32_t ttl, std::uint8_t rcode = 0);

}  // namespace tunsocks::tunnel
