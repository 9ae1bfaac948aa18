// SOCKS5 requests (server side) and replies (client side), RFC 1928 sections 4 to 6.
#include "check.h"

namespace tunsocks::socks::test {
namespace {

constexpr std::uint8_t kGeneralFailure = 0x01;
constexpr std::uint8_t kCommandNotSupported = 0x07;
constexpr std::uint8_t kAddressTypeNotSupported = 0x08;

const std::array<std::uint8_t, 16> kDocumentationIpv6 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                                         0,    0,    0,    0,    0, 0, 0, 1};

// One address of each type, with its encoding.
struct AddressVector {
  Address address;
  Bytes wire;
};

std::vector<AddressVector> address_vectors() {
  return {
      {Address::ipv4({1, 2, 3, 4}, 80), hex("01 01 02 03 04 00 50")},
      {Address::ipv4({0, 0, 0, 0}, 0), hex("01 00 00 00 00 00 00")},
      {Address::name("example.com", 443), cat({hex("03 0B"), text("example.com"), hex("01 BB")})},
      {Address::name("a", 1), hex("03 01 61 00 01")},
      {Address::name(name_of_length(255), 65535),
       cat({hex("03 FF"), text(name_of_length(255)), hex("FF FF")})},
      {Address::ipv6(kDocumentationIpv6, 8080),
       hex("04 20 01 0D B8 00 00 00 00 00 00 00 00 00 00 00 01 1F 90")},
  };
}

TEST_CASE("socks5_request_connect_ipv4_rfc1928_layout") {
  check_vector(hex("05 01 00 01 01 02 03 04 00 50"),
               Socks5Request{Command::connect, Address::ipv4({1, 2, 3, 4}, 80)});
}

TEST_CASE("socks5_request_connect_domain") {
  check_vector(cat({hex("05 01 00 03 0B"), text("example.com"), hex("01 BB")}),
               Socks5Request{Command::connect, Address::name("example.com", 443)});
}

TEST_CASE("socks5_request_connect_ipv6") {
  check_vector(hex("05 01 00 04 20 01 0D B8 00 00 00 00 00 00 00 00 00 00 00 01 01 BB"),
               Socks5Request{Command::connect, Address::ipv6(kDocumentationIpv6, 443)});
}

TEST_CASE("socks5_request_udp_associate_any_address") {
  // A client that does not know its UDP source yet sends 0.0.0.0:0.
  check_vector(hex("05 03 00 01 00 00 00 00 00 00"),
               Socks5Request{Command::udp_associate, Address::ipv4({0, 0, 0, 0}, 0)});
}

TEST_CASE("socks5_request_every_command_and_address_type") {
  for (const Command command : {Command::connect, Command::bind, Command::udp_associate}) {
    for (const AddressVector& v : address_vectors()) {
      CAPTURE(describe(command));
      CAPTURE(v.address);
      check_vector(cat({hex("05"), Bytes{static_cast<std::uint8_t>(command)}, hex("00"), v.wire}),
                   Socks5Request{command, v.address});
    }
  }
}

TEST_CASE("socks5_request_domain_length_255") {
  check_round_trip(Socks5Request{Command::connect, Address::name(name_of_length(255), 80)});
}

TEST_CASE("socks5_request_domain_with_any_bytes_round_trips") {
  // Length-prefixed: NUL and control bytes are carried, not interpreted.
  check_round_trip(Socks5Request{Command::connect, Address::name(std::string("a\0\r\n", 4), 1)});
}

TEST_CASE("socks5_request_unknown_command_gets_0x07") {
  for (const std::uint8_t command : {0x00, 0x04, 0xFF}) {
    CAPTURE(unsigned{command});
    check_rejects<Socks5Request>(cat({hex("05"), Bytes{command}, hex("00 01 01 02 03 04 00 50")}),
                                 Error{Errc::bad_command, 1, kCommandNotSupported, "CMD"});
  }
}

TEST_CASE("socks5_request_unknown_address_type_gets_0x08") {
  for (const std::uint8_t atyp : {0x00, 0x02, 0x05, 0xFF}) {
    CAPTURE(unsigned{atyp});
    check_rejects<Socks5Request>(
        cat({hex("05 01 00"), Bytes{atyp}, hex("01 02 03 04 00 50")}),
        Error{Errc::bad_address_type, 3, kAddressTypeNotSupported, "ATYP"});
  }
}

TEST_CASE("socks5_request_bad_version_gets_0x01") {
  check_rejects<Socks5Request>(hex("04 01 00 01 01 02 03 04 00 50"),
                               Error{Errc::bad_version, 0, kGeneralFailure, "VER"});
}

TEST_CASE("socks5_request_nonzero_reserved_gets_0x01") {
  check_rejects<Socks5Request>(hex("05 01 01 01 01 02 03 04 00 50"),
                               Error{Errc::bad_reserved, 2, kGeneralFailure, "RSV"});
}

TEST_CASE("socks5_request_empty_domain_gets_0x01") {
  check_rejects<Socks5Request>(hex("05 01 00 03 00 00 50"),
                               Error{Errc::empty_domain, 4, kGeneralFailure, "DST.ADDR"});
}

TEST_CASE("socks5_request_missing_counts") {
  check_missing<Socks5Request>({}, 8);  // header and the shortest address (a 1-byte name)
  check_missing<Socks5Request>(hex("05 01"), 6);
  check_missing<Socks5Request>(hex("05 01 00"), 5);
  check_missing<Socks5Request>(hex("05 01 00 01"), 6);
  check_missing<Socks5Request>(hex("05 01 00 04"), 18);
  check_missing<Socks5Request>(hex("05 01 00 03"), 4);
  check_missing<Socks5Request>(hex("05 01 00 03 0B"), 13);
  check_missing<Socks5Request>(hex("05 01 00 01 01 02 03 04 00"), 1);
}

TEST_CASE("socks5_writer_refuses_domains_that_cannot_be_encoded") {
  check_refuses(Socks5Request{Command::connect, Address::name("", 80)}, Errc::empty_domain,
                "DST.ADDR");
  check_refuses(Socks5Request{Command::connect, Address::name(name_of_length(256), 80)},
                Errc::field_too_long, "DST.ADDR");
  check_refuses(Socks5Response{Socks5Reply::succeeded, Address::name("", 80)}, Errc::empty_domain,
                "BND.ADDR");
  check_refuses(Socks5Response{Socks5Reply::succeeded, Address::name(name_of_length(256), 80)},
                Errc::field_too_long, "BND.ADDR");
}

TEST_CASE("socks5_writer_refuses_unknown_codes") {
  Address bad_type = Address::ipv4({1, 2, 3, 4}, 80);
  bad_type.type = static_cast<AddressType>(0x02);
  check_refuses(Socks5Request{Command::connect, bad_type}, Errc::bad_address_type, "ATYP");
  check_refuses(Socks5Response{Socks5Reply::succeeded, bad_type}, Errc::bad_address_type, "ATYP");
  check_refuses(Socks5Request{static_cast<Command>(0x04), Address::ipv4({1, 2, 3, 4}, 80)},
                Errc::bad_command, "CMD");
  check_refuses(Socks5Response{static_cast<Socks5Reply>(0x09), Address::ipv4({1, 2, 3, 4}, 80)},
                Errc::bad_reply_code, "REP");
}

TEST_CASE("socks5_response_every_reply_code") {
  for (unsigned rep = 0x00; rep <= 0x08; ++rep) {
    const auto code = static_cast<Socks5Reply>(rep);
    CAPTURE(describe(code));
    check_vector(
        cat({hex("05"), Bytes{static_cast<std::uint8_t>(rep)}, hex("00 01 0A 00 00 01 04 38")}),
        Socks5Response{code, Address::ipv4({10, 0, 0, 1}, 1080)});
  }
}

TEST_CASE("socks5_response_every_address_type") {
  for (const AddressVector& v : address_vectors()) {
    CAPTURE(v.address);
    check_vector(cat({hex("05 00 00"), v.wire}), Socks5Response{Socks5Reply::succeeded, v.address});
  }
}

TEST_CASE("socks5_response_bound_domain_of_every_length") {
  // BND.ADDR from an upstream may be a name of any length 1..255.
  for (std::size_t length = 1; length <= kMaxDomainLength; ++length) {
    CAPTURE(length);
    const Address bound = Address::name(name_of_length(length), 1080);
    check_vector(cat({hex("05 00 00 03"), Bytes{static_cast<std::uint8_t>(length)},
                      text(bound.domain), hex("04 38")}),
                 Socks5Response{Socks5Reply::succeeded, bound});
  }
}

TEST_CASE("socks5_response_empty_bound_domain") {
  check_rejects<Socks5Response>(hex("05 00 00 03 00 04 38"),
                                Error{Errc::empty_domain, 4, 0, "BND.ADDR"});
}

TEST_CASE("socks5_response_unknown_reply_code") {
  for (const std::uint8_t rep : {0x09, 0x5A, 0xFF}) {
    CAPTURE(unsigned{rep});
    check_rejects<Socks5Response>(cat({hex("05"), Bytes{rep}, hex("00 01 01 02 03 04 00 50")}),
                                  Error{Errc::bad_reply_code, 1, 0, "REP"});
  }
}

TEST_CASE("socks5_response_bad_version") {
  // A SOCKS4 reply where a SOCKS5 one was due.
  check_rejects<Socks5Response>(hex("00 5A 00 50 01 02 03 04"),
                                Error{Errc::bad_version, 0, 0, "VER"});
}

TEST_CASE("socks5_response_nonzero_reserved") {
  check_rejects<Socks5Response>(hex("05 00 80 01 01 02 03 04 00 50"),
                                Error{Errc::bad_reserved, 2, 0, "RSV"});
}

TEST_CASE("socks5_response_unknown_address_type") {
  check_rejects<Socks5Response>(hex("05 00 00 02 01 02 03 04 00 50"),
                                Error{Errc::bad_address_type, 3, 0, "ATYP"});
}

TEST_CASE("socks5_bind_two_replies_back_to_back") {
  // BIND answers twice; both may arrive in one read, and the first parse leaves the second.
  const Socks5Response first{Socks5Reply::succeeded, Address::ipv4({192, 0, 2, 1}, 40000)};
  const Socks5Response second{Socks5Reply::succeeded, Address::name("peer.example", 20)};
  Bytes stream;
  REQUIRE(write_socks5_response(first, stream).has_value());
  const std::size_t first_size = stream.size();
  REQUIRE(write_socks5_response(second, stream).has_value());

  const auto one = parse_socks5_response(stream);
  REQUIRE(one.has_value());
  REQUIRE(one->complete());
  CHECK(*one->message == first);
  CHECK(one->consumed == first_size);
  const auto two = parse_socks5_response(ByteView(stream).subspan(one->consumed));
  REQUIRE(two.has_value());
  REQUIRE(two->complete());
  CHECK(*two->message == second);
  CHECK(one->consumed + two->consumed == stream.size());
}

}  // namespace
}  // namespace tunsocks::socks::test
