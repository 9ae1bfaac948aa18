// The DNS message parser of fake-ip mode (src/tunnel/dns.cpp) on its own: one input is one
// UDP payload sent to port 53, as any application (or attacker) in the client namespace
// may send it. tunnel_packet_fuzz reaches the parser only behind valid IP and UDP headers;
// here every byte goes to it.
#include <algorithm>
#include <array>
#include <cstdint>

#include "invariants.h"
#include "tunnel/dns.h"

namespace {

using namespace tunsocks;
using namespace tunsocks::tunnel;
using tunsocks::socks::fuzz::expect;

constexpr std::size_t kHeader = 12;

std::uint16_t load16(const PacketBytes& bytes, std::size_t offset) {
  return static_cast<std::uint16_t>(bytes[offset] << 8 | bytes[offset + 1]);
}

bool same_query(const DnsQuery& a, const DnsQuery& b) {
  return a.id == b.id && a.recursion_desired == b.recursion_desired && a.name == b.name &&
         a.type == b.type && a.klass == b.klass && a.question_end == b.question_end;
}

// What a parsed question promises: a name a host may carry (it goes upstream as a SOCKS
// domain and into logs), within the message, in the wire form the bytes hold.
void check_query(const DnsQuery& query, PacketView message) {
  expect(query.id == (message[0] << 8 | message[1]));
  expect(query.name.size() <= 253);
  std::size_t label = 0;
  for (std::size_t i = 0; i < query.name.size(); ++i) {
    const char c = query.name[i];
    if (c == '.') {
      expect(label >= 1);  // no empty label: no leading dot, no ".."
      label = 0;
      continue;
    }
    expect((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_');
    expect(++label <= 63);
  }
  expect(query.name.empty() || label >= 1);  // no trailing dot
  // Uncompressed wire form: one length byte per label plus the root's zero byte.
  const std::size_t wire_name = query.name.empty() ? 1 : query.name.size() + 2;
  expect(query.question_end == kHeader + wire_name + 4);
  expect(query.question_end <= message.size());
}

// A response: the query's ID and question, QR set, the counts and sizes it claims.
void check_response(const DnsQuery& query, PacketView message, const PacketBytes& response,
                    std::size_t answer_size, std::uint8_t rcode) {
  expect(response.size() == query.question_end + answer_size);
  expect(load16(response, 0) == query.id);
  const std::uint16_t flags = load16(response, 2);
  expect((flags & 0x8000) != 0 && (flags & 0x7800) == 0 && (flags & 0xF) == (rcode & 0xF));
  expect(((flags & 0x0100) != 0) == query.recursion_desired);
  expect(load16(response, 4) == 1 && load16(response, 6) == (answer_size ? 1 : 0));
  expect(std::equal(response.begin() + kHeader,
                    response.begin() + static_cast<std::ptrdiff_t>(query.question_end),
                    message.begin() + kHeader));
  if (answer_size != 0) expect(load16(response, query.question_end) == (0xC000 | kHeader));
  // A response is never taken for a query (tunsocks must not answer its own answers)...
  expect(!parse_dns_query(response).has_value());
  // ...but with QR cleared it holds the very same question.
  PacketBytes as_query = response;
  as_query[2] &= 0x7F;
  const auto again = parse_dns_query(as_query);
  expect(again.has_value() && same_query(*again, query));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const PacketView message(data, size);
  const auto query = parse_dns_query(message);
  const auto twice = parse_dns_query(message);  // no hidden state between calls
  expect(query.has_value() == twice.has_value());
  if (!query) return 0;
  expect(same_query(*query, *twice));
  check_query(*query, message);
  // The question needs all its bytes: no shorter prefix holds it. Bytes after it (EDNS,
  // answers, garbage) change nothing.
  for (std::size_t n = 0; n < query->question_end; ++n) {
    expect(!parse_dns_query(message.first(n)).has_value());
  }
  const auto whole_question = parse_dns_query(message.first(query->question_end));
  expect(whole_question.has_value() && same_query(*whole_question, *query));

  check_response(*query, message,
                 build_dns_response(*query, message, net::IpAddress::v4(0xC6120001), 600), 16, 0);
  std::array<std::uint8_t, 16> v6{0xfc};
  v6[15] = 1;
  check_response(*query, message, build_dns_response(*query, message, net::IpAddress::v6(v6), 1),
                 28, 0);
  for (const std::uint8_t rcode : {0, 2, 5, 0xFF}) {
    check_response(*query, message, build_dns_response(*query, message, std::nullopt, 0, rcode), 0,
                   rcode);
  }
  return 0;
}
