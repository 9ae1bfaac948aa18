#include "tunnel/dns.h"

#include <string>
#include <vector>

#include <doctest/doctest.h>

namespace {

using namespace tunsocks;
using namespace tunsocks::tunnel;
using Bytes = std::vector<std::uint8_t>;

// A query as dig sends it: id 0x1234, RD, one question, and an EDNS OPT record.
Bytes query(const std::string& name, std::uint16_t type, std::uint16_t flags = 0x0100) {
  Bytes out = {0x12,
               0x34,
               static_cast<std::uint8_t>(flags >> 8),
               static_cast<std::uint8_t>(flags),
               0,
               1,
               0,
               0,
               0,
               0,
               0,
               1};
  std::size_t start = 0;
  while (start <= name.size()) {
    const std::size_t dot = std::min(name.find('.', start), name.size());
    out.push_back(static_cast<std::uint8_t>(dot - start));
    out.insert(out.end(), name.begin() + static_cast<std::ptrdiff_t>(start),
               name.begin() + static_cast<std::ptrdiff_t>(dot));
    start = dot + 1;
  }
  out.push_back(0);
  out.push_back(static_cast<std::uint8_t>(type >> 8));
  out.push_back(static_cast<std::uint8_t>(type));
  out.push_back(0);
  out.push_back(1);
  const Bytes opt = {0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0};
  out.insert(out.end(), opt.begin(), opt.end());
  return out;
}

}  // namespace

TEST_CASE("dns_query_question_is_read_in_lower_case") {
  const Bytes message = query("WWW.Example.com", kDnsTypeA);
  auto parsed = parse_dns_query(message);
  REQUIRE(parsed.has_value());
  CHECK(parsed->id == 0x1234);
  CHECK(parsed->recursion_desired);
  CHECK(parsed->name == "www.example.com");
  CHECK(parsed->type == kDnsTypeA);
  CHECK(parsed->klass == kDnsClassIn);
  CHECK(parsed->question_end == message.size() - 11);
}

TEST_CASE("dns_responses_and_odd_queries_are_not_answered") {
  CHECK_FALSE(parse_dns_query(query("example.com", kDnsTypeA, 0x8180)).has_value());  // response
  CHECK_FALSE(parse_dns_query(query("example.com", kDnsTypeA, 0x2800)).has_value());  // UPDATE
  Bytes two = query("example.com", kDnsTypeA);
  two[5] = 2;  // QDCOUNT 2
  CHECK_FALSE(parse_dns_query(two).has_value());
  Bytes pointer = query("example.com", kDnsTypeA);
  pointer[12] = 0xC0;  // a compression pointer in a question
  CHECK_FALSE(parse_dns_query(pointer).has_value());
  Bytes odd = query("exa mple.com", kDnsTypeA);  // not a host name
  CHECK_FALSE(parse_dns_query(odd).has_value());
}

TEST_CASE("dns_query_truncated_anywhere_is_refused") {
  const Bytes message = query("example.com", kDnsTypeAaaa);
  const std::size_t end = parse_dns_query(message)->question_end;
  for (std::size_t size = 0; size < end; ++size)
    CHECK_FALSE(parse_dns_query(PacketView(message).first(size)).has_value());
}

TEST_CASE("dns_response_carries_the_question_and_one_address") {
  const Bytes message = query("example.com", kDnsTypeA);
  auto parsed = parse_dns_query(message);
  REQUIRE(parsed.has_value());
  const Bytes response = build_dns_response(*parsed, message, net::IpAddress::v4(0xC6120001), 30);
  REQUIRE(response.size() == parsed->question_end + 16);
  CHECK(response[0] == 0x12);
  CHECK(response[1] == 0x34);
  CHECK(response[2] == 0x81);  // QR, RD
  CHECK(response[3] == 0x80);  // RA, NOERROR
  CHECK(response[5] == 1);     // QDCOUNT
  CHECK(response[7] == 1);     // ANCOUNT
  CHECK(response[11] == 0);    // ARCOUNT: the OPT record is not echoed
  CHECK(std::equal(message.begin() + 12,
                   message.begin() + static_cast<std::ptrdiff_t>(parsed->question_end),
                   response.begin() + 12));
  const Bytes answer(response.begin() + static_cast<std::ptrdiff_t>(parsed->question_end),
                     response.end());
  CHECK(answer == Bytes{0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 198, 18, 0, 1});
}

TEST_CASE("dns_response_without_address_is_empty_with_its_rcode") {
  const Bytes message = query("example.com", kDnsTypeAaaa);
  auto parsed = parse_dns_query(message);
  REQUIRE(parsed.has_value());
  const Bytes response = build_dns_response(*parsed, message, std::nullopt, 30, 2);
  CHECK(response.size() == parsed->question_end);
  CHECK(response[3] == 0x82);  // RA, SERVFAIL
  CHECK(response[7] == 0);
}
