// SOCKS5 method negotiation (RFC 1928, section 3) and username/password authentication
// (RFC 1929), both directions.
#include "check.h"

namespace tunsocks::socks::test {
namespace {

TEST_CASE("socks5_greeting_no_auth") {
  check_vector(hex("05 01 00"), Socks5Greeting{{method::no_auth}});
}

TEST_CASE("socks5_greeting_no_auth_and_user_pass") {
  const Socks5Greeting greeting{{method::no_auth, method::user_pass}};
  check_vector(hex("05 02 00 02"), greeting);
  CHECK(greeting.offers(method::user_pass));
  CHECK_FALSE(greeting.offers(method::gssapi));
}

TEST_CASE("socks5_greeting_zero_methods_parses_to_empty_list") {
  // NMETHODS 0 cannot be written (RFC 1928 says 1 to 255), but a server must answer it (0xFF).
  check_decodes(hex("05 00"), Socks5Greeting{});
  check_refuses(Socks5Greeting{}, Errc::empty_field, "METHODS");
}

TEST_CASE("socks5_greeting_255_methods") {
  Socks5Greeting greeting;
  for (unsigned m = 0; m < 255; ++m)
    greeting.methods.push_back(static_cast<std::uint8_t>(m));
  check_vector(cat({hex("05 FF"), greeting.methods}), greeting);
}

TEST_CASE("socks5_greeting_writer_refuses_256_methods") {
  check_refuses(Socks5Greeting{Bytes(256, method::no_auth)}, Errc::field_too_long, "METHODS");
}

TEST_CASE("socks5_greeting_bad_version") {
  // A SOCKS4 client on a SOCKS5-only port; a greeting has no reply code to send.
  check_rejects<Socks5Greeting>(hex("04 01 00 50"), Error{Errc::bad_version, 0, 0, "VER"});
}

TEST_CASE("socks5_greeting_missing_counts") {
  check_missing<Socks5Greeting>({}, 2);
  check_missing<Socks5Greeting>(hex("05"), 1);
  check_missing<Socks5Greeting>(hex("05 03"), 3);
  check_missing<Socks5Greeting>(hex("05 03 00 02"), 1);
}

TEST_CASE("socks5_method_selection_every_kind") {
  for (const std::uint8_t m : {method::no_auth, method::gssapi, method::user_pass,
                               std::uint8_t{0x80}, method::no_acceptable}) {
    CAPTURE(unsigned{m});
    check_vector(cat({hex("05"), Bytes{m}}), Socks5MethodSelection{m});
  }
}

TEST_CASE("socks5_method_selection_bad_version") {
  check_rejects<Socks5MethodSelection>(hex("04 00"), Error{Errc::bad_version, 0, 0, "VER"});
  check_rejects<Socks5MethodSelection>(hex("01 00"), Error{Errc::bad_version, 0, 0, "VER"});
}

TEST_CASE("socks5_method_selection_not_offered") {
  // A hostile upstream picks a method the client never offered.
  const Socks5Greeting offered{{method::no_auth, method::user_pass}};
  CHECK(check_method_selection(offered, {method::no_auth}).has_value());
  CHECK(check_method_selection(offered, {method::user_pass}).has_value());
  CHECK(check_method_selection(offered, {method::no_acceptable}).has_value());
  for (const std::uint8_t m : {method::gssapi, std::uint8_t{0x03}, std::uint8_t{0x80}}) {
    CAPTURE(unsigned{m});
    const auto checked = check_method_selection(offered, {m});
    REQUIRE_FALSE(checked.has_value());
    CHECK(checked.error() == Error{Errc::bad_method, 0, 0, "METHOD"});
  }
}

TEST_CASE("user_pass_request_rfc1929_layout") {
  check_vector(cat({hex("01 04"), text("Fred"), hex("06"), text("secret")}),
               UserPassRequest{"Fred", "secret"});
}

TEST_CASE("user_pass_request_empty_password") {
  check_vector(cat({hex("01 04"), text("Fred"), hex("00")}), UserPassRequest{"Fred", ""});
}

TEST_CASE("user_pass_request_empty_username_parses_but_is_not_written") {
  check_decodes(cat({hex("01 00 06"), text("secret")}), UserPassRequest{"", "secret"});
  check_decodes(hex("01 00 00"), UserPassRequest{"", ""});
  check_refuses(UserPassRequest{"", "secret"}, Errc::empty_field, "UNAME");
}

TEST_CASE("user_pass_request_255_byte_fields") {
  const std::string longest(255, 'p');
  check_vector(cat({hex("01 01"), text("u"), hex("FF"), text(longest)}),
               UserPassRequest{"u", longest});
  check_vector(cat({hex("01 FF"), text(longest), hex("FF"), text(longest)}),
               UserPassRequest{longest, longest});
}

TEST_CASE("user_pass_request_round_trips") {
  check_round_trip(UserPassRequest{"u", ""});
  check_round_trip(UserPassRequest{std::string(255, '\0'), std::string(255, '\xff')});
  check_round_trip(UserPassRequest{"user:name", "pass\nword"});
}

TEST_CASE("user_pass_request_bad_version") {
  // A client that sends its SOCKS5 request without authenticating first.
  check_rejects<UserPassRequest>(hex("05 01 00 01"), Error{Errc::bad_auth_version, 0, 0x01, "VER"});
}

TEST_CASE("user_pass_writer_refuses_fields_over_255_bytes") {
  check_refuses(UserPassRequest{std::string(256, 'u'), "p"}, Errc::field_too_long, "UNAME");
  check_refuses(UserPassRequest{"u", std::string(256, 'p')}, Errc::field_too_long, "PASSWD");
}

TEST_CASE("user_pass_request_missing_counts") {
  check_missing<UserPassRequest>({}, 3);
  check_missing<UserPassRequest>(hex("01"), 2);
  check_missing<UserPassRequest>(hex("01 04"), 5);  // UNAME and PLEN
  check_missing<UserPassRequest>(cat({hex("01 04"), text("Fred")}), 1);
  check_missing<UserPassRequest>(cat({hex("01 04"), text("Fred"), hex("06")}), 6);
}

TEST_CASE("user_pass_status_success_and_failure") {
  check_vector(hex("01 00"), UserPassStatus{0x00});
  check_vector(hex("01 01"), UserPassStatus{0x01});
  check_vector(hex("01 FF"), UserPassStatus{0xFF});
  CHECK(UserPassStatus{0x00}.ok());
  CHECK_FALSE(UserPassStatus{0x01}.ok());
  CHECK_FALSE(UserPassStatus{0xFF}.ok());
}

TEST_CASE("user_pass_status_bad_version") {
  check_rejects<UserPassStatus>(hex("05 00"), Error{Errc::bad_auth_version, 0, 0, "VER"});
}

}  // namespace
}  // namespace tunsocks::socks::test
