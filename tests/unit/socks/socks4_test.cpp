// SOCKS4 and SOCKS4a: requests (server side) and replies (client side).
#include "check.h"

namespace tunsocks::socks::test {
namespace {

constexpr std::uint8_t kRejected = 0x5B;

Socks4Request request(Command command, std::uint16_t port, std::array<std::uint8_t, 4> ip,
                      std::string user_id, std::string domain = {}) {
  return Socks4Request{command, port, ip, std::move(user_id), std::move(domain)};
}

TEST_CASE("socks4_request_fred_seed_example") {
  // The seed document's CONNECT for user "Fred" to 66.102.7.99:80, byte for byte.
  const Bytes wire = hex("04 01 00 50 42 66 07 63 46 72 65 64 00");
  const Socks4Request fred = request(Command::connect, 80, {66, 102, 7, 99}, "Fred");
  check_vector(wire, fred);
  CHECK_FALSE(fred.is_socks4a());
  CHECK(fred.destination() == Address::ipv4({66, 102, 7, 99}, 80));
}

TEST_CASE("socks4_request_bind_with_empty_user_id") {
  check_vector(hex("04 02 1F 90 0A 00 00 01 00"), request(Command::bind, 8080, {10, 0, 0, 1}, ""));
}

TEST_CASE("socks4a_request_domain_follows_user_id") {
  const Bytes wire = cat(
      {hex("04 01 01 BB 00 00 00 01"), text("Fred"), hex("00"), text("example.com"), hex("00")});
  const Socks4Request fred = request(Command::connect, 443, {0, 0, 0, 1}, "Fred", "example.com");
  check_vector(wire, fred);
  CHECK(fred.is_socks4a());
  CHECK(fred.destination() == Address::name("example.com", 443));
}

TEST_CASE("socks4a_bind_with_empty_user_id") {
  check_vector(cat({hex("04 02 00 15 00 00 00 01 00"), text("ftp.example"), hex("00")}),
               request(Command::bind, 21, {0, 0, 0, 1}, "", "ftp.example"));
}

TEST_CASE("socks4a_marker_other_than_0_0_0_1_is_kept") {
  // Any 0.0.0.x with x != 0 marks SOCKS4a; the writer keeps the peer's x (exact round trip).
  check_vector(cat({hex("04 01 00 50 00 00 00 FF 00"), text("a"), hex("00")}),
               request(Command::connect, 80, {0, 0, 0, 255}, "", "a"));
}

TEST_CASE("socks4a_writer_sets_marker_when_ip_is_not_one") {
  check_encodes(
      request(Command::connect, 80, {1, 2, 3, 4}, "u", "example.com"),
      cat({hex("04 01 00 50 00 00 00 01"), text("u"), hex("00"), text("example.com"), hex("00")}));
}

TEST_CASE("socks4_request_to_0_0_0_0_is_plain_socks4") {
  // x == 0 is not the SOCKS4a marker: no domain is read, the next byte is not consumed.
  check_vector(hex("04 01 00 50 00 00 00 00 00"), request(Command::connect, 80, {0, 0, 0, 0}, ""));
}

TEST_CASE("socks4_user_id_of_255_bytes") {
  const std::string user(255, 'u');
  check_vector(cat({hex("04 01 00 50 01 02 03 04"), text(user), hex("00")}),
               request(Command::connect, 80, {1, 2, 3, 4}, user));
}

TEST_CASE("socks4_user_id_without_nul_is_cut_off_after_255_bytes") {
  const Bytes head = hex("04 01 00 50 01 02 03 04");
  // 255 bytes and no NUL yet: still waiting for exactly the NUL.
  check_missing<Socks4Request>(cat({head, repeat('u', 255)}), 1);
  // The 256th byte is not a NUL: the limit is passed, whatever follows.
  check_rejects<Socks4Request>(cat({head, repeat('u', 256), hex("00")}),
                               Error{Errc::field_too_long, 8 + 255, kRejected, "USERID"});
}

TEST_CASE("socks4a_domain_of_255_bytes") {
  const std::string name = name_of_length(255);
  check_vector(cat({hex("04 01 00 50 00 00 00 01 00"), text(name), hex("00")}),
               request(Command::connect, 80, {0, 0, 0, 1}, "", name));
}

TEST_CASE("socks4a_domain_without_nul_is_cut_off_after_255_bytes") {
  const Bytes head = hex("04 01 00 50 00 00 00 01 46 00");  // user "F"
  check_missing<Socks4Request>(cat({head, repeat('d', 255)}), 1);
  check_rejects<Socks4Request>(cat({head, repeat('d', 256)}),
                               Error{Errc::field_too_long, 10 + 255, kRejected, "DOMAIN"});
}

TEST_CASE("socks4a_empty_domain") {
  check_rejects<Socks4Request>(hex("04 01 00 50 00 00 00 01 46 00 00"),
                               Error{Errc::empty_domain, 10, kRejected, "DOMAIN"});
}

TEST_CASE("socks4_request_bad_version") {
  check_rejects<Socks4Request>(hex("05 01 00 50 01 02 03 04 00"),
                               Error{Errc::bad_version, 0, kRejected, "VN"});
  check_rejects<Socks4Request>(hex("00 01 00 50 01 02 03 04 00"),
                               Error{Errc::bad_version, 0, kRejected, "VN"});
}

TEST_CASE("socks4_request_command_other_than_connect_or_bind") {
  for (const std::uint8_t command : {0x00, 0x03, 0x04, 0xFF}) {
    CAPTURE(unsigned{command});
    check_rejects<Socks4Request>(cat({hex("04"), Bytes{command}, hex("00 50 01 02 03 04 00")}),
                                 Error{Errc::bad_command, 1, kRejected, "CD"});
  }
}

TEST_CASE("socks4_request_missing_counts") {
  check_missing<Socks4Request>({}, 9);                                 // header and a NUL
  check_missing<Socks4Request>(hex("04 01 00 50 01 02 03"), 2);        // one IP byte, a NUL
  check_missing<Socks4Request>(hex("04 01 00 50 01 02 03 04"), 1);     // the USERID NUL
  check_missing<Socks4Request>(hex("04 01 00 50 01 02 03 04 46"), 1);  // still the NUL
  check_missing<Socks4Request>(hex("04 01 00 50 00 00 00 01"), 3);     // NUL, name, NUL
  check_missing<Socks4Request>(hex("04 01 00 50 00 00 00 01 00"), 2);  // name byte and NUL
  check_missing<Socks4Request>(hex("04 01 00 50 00 00 00 01 00 61"), 1);
}

TEST_CASE("socks4_request_round_trips") {
  for (const Command command : {Command::connect, Command::bind}) {
    check_round_trip(request(command, 1, {192, 0, 2, 1}, ""));
    check_round_trip(request(command, 65535, {192, 0, 2, 1}, std::string(255, '\xff')));
    check_round_trip(request(command, 0, {0, 0, 0, 1}, "", "a"));
    check_round_trip(request(command, 0, {0, 0, 0, 9}, "u", name_of_length(255)));
  }
}

TEST_CASE("socks4_writer_refuses_nul_inside_user_id_or_domain") {
  check_refuses(request(Command::connect, 80, {1, 2, 3, 4}, std::string("a\0b", 3)),
                Errc::embedded_nul, "USERID");
  check_refuses(request(Command::connect, 80, {0, 0, 0, 1}, "", std::string("a\0b", 3)),
                Errc::embedded_nul, "DOMAIN");
}

TEST_CASE("socks4_writer_refuses_fields_over_255_bytes") {
  check_refuses(request(Command::connect, 80, {1, 2, 3, 4}, std::string(256, 'u')),
                Errc::field_too_long, "USERID");
  check_refuses(request(Command::connect, 80, {0, 0, 0, 1}, "", name_of_length(256)),
                Errc::field_too_long, "DOMAIN");
}

TEST_CASE("socks4_writer_refuses_udp_associate") {
  check_refuses(request(Command::udp_associate, 53, {1, 2, 3, 4}, ""), Errc::bad_command, "CD");
}

TEST_CASE("socks4_writer_refuses_socks4a_marker_without_domain") {
  // The server would read a domain that never comes.
  check_refuses(request(Command::connect, 80, {0, 0, 0, 7}, "u"), Errc::empty_domain, "DOMAIN");
}

TEST_CASE("socks4_response_granted_seed_example") {
  // The seed's "OK" reply: VN 0, CD 0x5A; DSTPORT and DSTIP are not looked at by clients.
  check_vector(hex("00 5A 12 34 0A 0B 0C 0D"),
               Socks4Response{Socks4Reply::granted, 0x1234, {10, 11, 12, 13}});
}

TEST_CASE("socks4_response_every_reply_code") {
  for (const Socks4Reply code : {Socks4Reply::granted, Socks4Reply::rejected,
                                 Socks4Reply::no_identd, Socks4Reply::identd_mismatch}) {
    CAPTURE(describe(code));
    check_vector(cat({hex("00"), Bytes{static_cast<std::uint8_t>(code)}, hex("00 00 00 00 00 00")}),
                 Socks4Response{code, 0, {0, 0, 0, 0}});
  }
}

TEST_CASE("socks4_response_unknown_reply_code") {
  for (const std::uint8_t code : {0x00, 0x59, 0x5E, 0xFF}) {
    CAPTURE(unsigned{code});
    check_rejects<Socks4Response>(cat({hex("00"), Bytes{code}, hex("00 50 01 02 03 04")}),
                                  Error{Errc::bad_reply_code, 1, 0, "CD"});
  }
}

TEST_CASE("socks4_response_version_must_be_zero") {
  // A server answering with VN 4 (or a SOCKS5 server answering a SOCKS4 request).
  check_rejects<Socks4Response>(hex("04 5A 00 50 01 02 03 04"),
                                Error{Errc::bad_version, 0, 0, "VN"});
  check_rejects<Socks4Response>(hex("05 FF"), Error{Errc::bad_version, 0, 0, "VN"});
}

TEST_CASE("socks4_response_missing_counts") {
  check_missing<Socks4Response>({}, 8);
  check_missing<Socks4Response>(hex("00 5A 00"), 5);
}

}  // namespace
}  // namespace tunsocks::socks::test
