// The SOCKS5 UDP request header (RFC 1928, section 7). A datagram is whole: where a stream
// parser waits for more, this one reports truncation.
#include "check.h"

namespace tunsocks::socks::test {
namespace {

// `datagram` is `header` followed by `payload`; every shorter cut of the header is truncated,
// and the writers produce exactly the header bytes.
void check_datagram(const Bytes& datagram, const UdpHeader& header, const Bytes& payload) {
  const auto parsed = parse_udp_datagram(datagram);
  REQUIRE(parsed.has_value());
  CHECK(parsed->header == header);
  CHECK(Bytes(parsed->payload.begin(), parsed->payload.end()) == payload);
  // The payload is a view into the datagram, not a copy.
  CHECK(parsed->payload.data() + parsed->payload.size() == datagram.data() + datagram.size());

  const std::size_t header_size = datagram.size() - payload.size();
  for (std::size_t n = 0; n < header_size; ++n) {
    CAPTURE(n);
    const auto cut = parse_udp_datagram(ByteView(datagram).first(n));
    REQUIRE_FALSE(cut.has_value());
    REQUIRE(cut.error().code == Errc::truncated);
    REQUIRE(cut.error().offset == n);
    REQUIRE_FALSE(cut.error().field.empty());
  }

  Bytes appended = {0xEE};
  REQUIRE(append_udp_header(header, appended).has_value());
  CHECK(appended == cat({Bytes{0xEE}, Bytes(datagram.begin(),
                                            datagram.begin() + static_cast<long>(header_size))}));

  // Written into headroom in front of a payload that is already in place.
  Bytes buffer = cat({repeat(0xEE, header_size), payload});
  const auto written = write_udp_header(header, buffer);
  REQUIRE(written.has_value());
  CHECK(*written == header_size);
  CHECK(buffer == datagram);
}

TEST_CASE("udp_datagram_ipv4_with_payload") {
  check_datagram(cat({hex("00 00 00 01 0A 00 00 01 00 35"), text("query")}),
                 UdpHeader{0, Address::ipv4({10, 0, 0, 1}, 53)}, text("query"));
}

TEST_CASE("udp_datagram_domain_with_payload") {
  check_datagram(cat({hex("00 00 00 03 0B"), text("example.com"), hex("00 35"), hex("AB CD")}),
                 UdpHeader{0, Address::name("example.com", 53)}, hex("AB CD"));
}

TEST_CASE("udp_datagram_ipv6_with_payload") {
  check_datagram(
      hex("00 00 00 04 20 01 0D B8 00 00 00 00 00 00 00 00 00 00 00 01 00 35 FF"),
      UdpHeader{0, Address::ipv6({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 53)},
      hex("FF"));
}

TEST_CASE("udp_datagram_empty_payload") {
  check_datagram(hex("00 00 00 01 01 02 03 04 00 50"),
                 UdpHeader{0, Address::ipv4({1, 2, 3, 4}, 80)}, {});
}

TEST_CASE("udp_datagram_domain_lengths_1_and_255") {
  check_datagram(cat({hex("00 00 00 03 01 61 00 50"), text("x")}),
                 UdpHeader{0, Address::name("a", 80)}, text("x"));
  const std::string longest = name_of_length(255);
  check_datagram(cat({hex("00 00 00 03 FF"), text(longest), hex("00 50"), text("x")}),
                 UdpHeader{0, Address::name(longest, 80)}, text("x"));
}

TEST_CASE("udp_datagram_fragment_number_is_reported") {
  // Relays that do not reassemble drop FRAG != 0 (RFC 1928); the parser only reports it.
  check_datagram(hex("00 00 81 01 01 02 03 04 00 50 AA"),
                 UdpHeader{0x81, Address::ipv4({1, 2, 3, 4}, 80)}, hex("AA"));
}

TEST_CASE("udp_datagram_nonzero_reserved") {
  for (const auto& [datagram, offset] :
       {std::pair{hex("01 00 00 01 01 02 03 04 00 50"), std::size_t{0}},
        std::pair{hex("00 01 00 01 01 02 03 04 00 50"), std::size_t{1}},
        std::pair{hex("00 80"), std::size_t{1}}}) {
    const auto parsed = parse_udp_datagram(datagram);
    REQUIRE_FALSE(parsed.has_value());
    CHECK(parsed.error() == Error{Errc::bad_reserved, offset, 0, "RSV"});
  }
}

TEST_CASE("udp_datagram_unknown_address_type") {
  const auto parsed = parse_udp_datagram(hex("00 00 00 02 01 02 03 04 00 50"));
  REQUIRE_FALSE(parsed.has_value());
  CHECK(parsed.error() == Error{Errc::bad_address_type, 3, 0, "ATYP"});
}

TEST_CASE("udp_datagram_empty_domain") {
  const auto parsed = parse_udp_datagram(hex("00 00 00 03 00 00 50"));
  REQUIRE_FALSE(parsed.has_value());
  CHECK(parsed.error() == Error{Errc::empty_domain, 4, 0, "DST.ADDR"});
}

TEST_CASE("udp_datagram_truncated_names_the_field") {
  const auto field_of = [](const Bytes& datagram) {
    const auto parsed = parse_udp_datagram(datagram);
    REQUIRE_FALSE(parsed.has_value());
    CHECK(parsed.error().code == Errc::truncated);
    CHECK(parsed.error().offset == datagram.size());
    return std::string(parsed.error().field);
  };
  CHECK(field_of({}) == "RSV");
  CHECK(field_of(hex("00 00")) == "FRAG");
  CHECK(field_of(hex("00 00 00")) == "ATYP");
  CHECK(field_of(hex("00 00 00 01 01 02")) == "DST.ADDR");
  CHECK(field_of(hex("00 00 00 03")) == "DST.ADDR");
  CHECK(field_of(hex("00 00 00 03 05 61 62")) == "DST.ADDR");
  CHECK(field_of(hex("00 00 00 01 01 02 03 04 00")) == "DST.PORT");
}

TEST_CASE("udp_header_into_too_small_buffer") {
  const UdpHeader header{0, Address::name("example.com", 53)};
  const std::size_t size = 3 + encoded_size(header.address);
  Bytes buffer = repeat(0xEE, size - 1);
  const auto written = write_udp_header(header, buffer);
  REQUIRE_FALSE(written.has_value());
  CHECK(written.error().code == Errc::buffer_too_small);
  CHECK(buffer == repeat(0xEE, size - 1));

  Bytes exact = repeat(0xEE, size);
  REQUIRE(write_udp_header(header, exact).has_value());
  CHECK(exact == cat({hex("00 00 00 03 0B"), text("example.com"), hex("00 35")}));
}

TEST_CASE("udp_header_writers_refuse_unencodable_domains") {
  for (const auto& [name, code] : {std::pair{std::string{}, Errc::empty_domain},
                                   std::pair{name_of_length(256), Errc::field_too_long}}) {
    const UdpHeader header{0, Address::name(name, 53)};
    Bytes out = {0xEE};
    const auto appended = append_udp_header(header, out);
    REQUIRE_FALSE(appended.has_value());
    CHECK(appended.error().code == code);
    CHECK(out == Bytes{0xEE});

    Bytes buffer = repeat(0xEE, 300);
    const auto written = write_udp_header(header, buffer);
    REQUIRE_FALSE(written.has_value());
    CHECK(written.error().code == code);
    CHECK(buffer == repeat(0xEE, 300));
  }
}

}  // namespace
}  // namespace tunsocks::socks::test
