#include "server/handshake.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

using tunsocks::server::Handshake;
using tunsocks::server::HandshakeFailure;
using tunsocks::server::Protocol;
using tunsocks::socks::Address;
using tunsocks::socks::AddressType;
using tunsocks::socks::Bytes;
using tunsocks::socks::ByteView;
using tunsocks::socks::Command;
using tunsocks::socks::Socks5Reply;
using Step = Handshake::Step;

namespace {

Bytes hex(std::string_view text) {
  Bytes out;
  std::string digits;
  for (char c : text) {
    if (c == ' ') continue;
    digits.push_back(c);
    if (digits.size() == 2) {
      out.push_back(static_cast<std::uint8_t>(std::stoul(digits, nullptr, 16)));
      digits.clear();
    }
  }
  return out;
}

Bytes bytes(std::string_view text) {
  return Bytes(text.begin(), text.end());
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts)
    out.insert(out.end(), p.begin(), p.end());
  return out;
}

// Feeds one byte at a time; every step before the last byte must be need_more.
Step feed_bytewise(Handshake& h, const Bytes& input, Bytes& output) {
  Step step = Step::need_more;
  for (std::size_t i = 0; i < input.size(); ++i) {
    step = h.feed(ByteView(&input[i], 1));
    auto out = h.take_output();
    output.insert(output.end(), out.begin(), out.end());
    if (i + 1 < input.size() && step != Step::need_more) return step;
  }
  return step;
}

const Bytes kGreetingNoAuth = hex("05 01 00");
const Bytes kGreetingBoth = hex("05 02 00 02");
const Bytes kUserPassAlice = cat({hex("01 05"), bytes("alice"), hex("06"), bytes("s3cret")});
// CONNECT 127.0.0.1:8080
const Bytes kRequestV4 = hex("05 01 00 01 7f 00 00 01 1f 90");
// CONNECT example.com:443
const Bytes kRequestDomain = cat({hex("05 01 00 03 0b"), bytes("example.com"), hex("01 bb")});
// CONNECT [2001:db8::1]:80
const Bytes kRequestV6 = hex("05 01 00 04 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01 00 50");
// The SOCKS4 seed example: Fred to 66.102.7.99:80.
const Bytes kFred = hex("04 01 00 50 42 66 07 63 46 72 65 64 00");

}  // namespace

TEST_CASE("socks5_no_auth_byte_by_byte") {
  Handshake h(false);
  Bytes out;
  CHECK(feed_bytewise(h, kGreetingNoAuth, out) == Step::need_more);
  CHECK(out == hex("05 00"));
  CHECK(h.protocol() == Protocol::socks5);
  out.clear();
  CHECK(feed_bytewise(h, kRequestV4, out) == Step::request);
  CHECK(out.empty());
  CHECK(h.command() == Command::connect);
  CHECK(h.destination() == Address::ipv4({127, 0, 0, 1}, 8080));
  CHECK(h.user().empty());
  CHECK(h.pipelined_size() == 0);
}

TEST_CASE("socks5_every_address_type") {
  for (const Bytes& request : {kRequestV4, kRequestDomain, kRequestV6}) {
    Handshake h(false);
    Bytes out;
    CHECK(feed_bytewise(h, cat({kGreetingNoAuth, request}), out) == Step::request);
    CHECK(out == hex("05 00"));
  }
  Handshake h(false);
  CHECK(h.feed(cat({kGreetingNoAuth, kRequestDomain})) == Step::request);
  CHECK(h.destination().type == AddressType::domain);
  CHECK(h.destination().domain == "example.com");
  CHECK(h.destination().port == 443);
}

TEST_CASE("socks5_pipelined_request_and_data_after_greeting") {
  Handshake h(false);
  Bytes data = bytes("GET / HTTP/1.0\r\n\r\n");
  CHECK(h.feed(cat({kGreetingNoAuth, kRequestV4, data})) == Step::request);
  CHECK(h.take_output() == hex("05 00"));
  CHECK(h.pipelined_size() == data.size());
  // Bytes arriving after the request are kept for the destination, never parsed.
  CHECK(h.feed(hex("05 01 00")) == Step::request);
  CHECK(h.take_pipelined() == cat({data, hex("05 01 00")}));
}

TEST_CASE("socks5_every_split_point_gives_the_same_result") {
  const Bytes all = cat({kGreetingBoth, kUserPassAlice, kRequestDomain, bytes("tail")});
  for (std::size_t split = 0; split <= all.size(); ++split) {
    Handshake h(true);
    Bytes out;
    Step step = h.feed(ByteView(all.data(), split));
    auto o = h.take_output();
    out.insert(out.end(), o.begin(), o.end());
    if (step == Step::authenticate) {
      CHECK(h.credentials().user == "alice");
      step = h.auth_result(true);
      o = h.take_output();
      out.insert(out.end(), o.begin(), o.end());
    }
    step = h.feed(ByteView(all.data() + split, all.size() - split));
    o = h.take_output();
    out.insert(out.end(), o.begin(), o.end());
    if (step == Step::authenticate) {
      step = h.auth_result(true);
      o = h.take_output();
      out.insert(out.end(), o.begin(), o.end());
    }
    CHECK_MESSAGE(step == Step::request, "split at ", split);
    CHECK_MESSAGE(out == hex("05 02 01 00"), "split at ", split);
    CHECK(h.user() == "alice");
    CHECK(h.destination().domain == "example.com");
    CHECK(h.take_pipelined() == bytes("tail"));
  }
}

TEST_CASE("socks5_auth_success_byte_by_byte_then_pipelined_request") {
  Handshake h(true);
  Bytes out;
  CHECK(feed_bytewise(h, kGreetingBoth, out) == Step::need_more);
  CHECK(out == hex("05 02"));  // user/password chosen although no-auth was offered too
  out.clear();
  CHECK(feed_bytewise(h, kUserPassAlice, out) == Step::authenticate);
  CHECK(h.credentials().user == "alice");
  CHECK(h.credentials().password == "s3cret");
  // The request arrives while the verdict is pending: it waits.
  CHECK(h.feed(kRequestV4) == Step::authenticate);
  CHECK(h.auth_result(true) == Step::request);
  CHECK(h.take_output() == hex("01 00"));
  CHECK(h.credentials().password.empty());  // wiped once used
  CHECK(h.user() == "alice");
  CHECK(h.destination() == Address::ipv4({127, 0, 0, 1}, 8080));
}

TEST_CASE("socks5_auth_failure_answers_status_1_and_ignores_the_rest") {
  Handshake h(true);
  CHECK(h.feed(cat({kGreetingBoth, kUserPassAlice, kRequestV4})) == Step::authenticate);
  CHECK(h.take_output() == hex("05 02"));
  CHECK(h.auth_result(false) == Step::failed);
  CHECK(h.take_output() == hex("01 01"));
  CHECK(h.failure() == HandshakeFailure::auth_failed);
  CHECK(h.user().empty());
  CHECK(h.credentials().password.empty());
  // A request pipelined after a failed authentication is never answered.
  CHECK(h.feed(kRequestV4) == Step::failed);
  CHECK(!h.has_output());
  CHECK(h.take_pipelined().empty());
}

TEST_CASE("socks5_no_acceptable_method_gets_0xff") {
  struct Case {
    bool require_auth;
    Bytes greeting;
  };
  for (const Case& c : {Case{true, hex("05 01 00")}, Case{false, hex("05 01 02")},
                        Case{false, hex("05 01 01")}, Case{true, hex("05 01 01")},
                        Case{false, hex("05 00")}, Case{true, hex("05 03 01 03 80")}}) {
    Handshake h(c.require_auth);
    Bytes out;
    CHECK(feed_bytewise(h, c.greeting, out) == Step::failed);
    CHECK(out == hex("05 ff"));
    CHECK(h.failure() == HandshakeFailure::no_acceptable_method);
  }
}

TEST_CASE("socks5_bad_user_pass_version_answers_failure_status") {
  Handshake h(true);
  CHECK(h.feed(kGreetingBoth) == Step::need_more);
  (void)h.take_output();
  CHECK(h.feed(cat({hex("02 05"), bytes("alice"), hex("01 78")})) == Step::failed);
  CHECK(h.failure() == HandshakeFailure::protocol_error);
  auto out = h.take_output();
  REQUIRE(out.size() == 2);
  CHECK(out[1] != 0);
}

TEST_CASE("socks5_bad_command_and_address_type_get_their_reply_codes") {
  {
    Handshake h(false);
    CHECK(h.feed(cat({kGreetingNoAuth, hex("05 09 00 01 7f 00 00 01 00 50")})) == Step::failed);
    CHECK(h.take_output() == hex("05 00 05 07 00 01 00 00 00 00 00 00"));
    CHECK(h.reply_name() == "command_not_supported");
    CHECK(!h.has_request());
  }
  {
    Handshake h(false);
    CHECK(h.feed(cat({kGreetingNoAuth, hex("05 01 00 05 7f 00 00 01 00 50")})) == Step::failed);
    CHECK(h.take_output() == hex("05 00 05 08 00 01 00 00 00 00 00 00"));
    CHECK(h.reply_name() == "address_type_not_supported");
  }
}

TEST_CASE("socks5_replies_encode_bound_address") {
  Handshake h(false);
  CHECK(h.feed(cat({kGreetingNoAuth, kRequestV4})) == Step::request);
  (void)h.take_output();
  CHECK(h.reply_name() == "-");
  h.reply(Socks5Reply::succeeded, Address::ipv4({10, 1, 2, 3}, 4660));
  CHECK(h.take_output() == hex("05 00 00 01 0a 01 02 03 12 34"));
  CHECK(h.reply_name() == "succeeded");
  h.reply(Socks5Reply::connection_refused, Address::ipv4({}, 0));
  CHECK(h.take_output() == hex("05 05 00 01 00 00 00 00 00 00"));
  CHECK(h.reply_name() == "connection_refused");
}

TEST_CASE("socks4_fred_byte_by_byte") {
  Handshake h(false);
  Bytes out;
  CHECK(feed_bytewise(h, kFred, out) == Step::request);
  CHECK(out.empty());
  CHECK(h.protocol() == Protocol::socks4);
  CHECK(h.command() == Command::connect);
  CHECK(h.destination() == Address::ipv4({66, 102, 7, 99}, 80));
  CHECK(h.socks4_user_id() == "Fred");
  CHECK(h.user().empty());  // a USERID is not an authenticated user
  h.reply(Socks5Reply::succeeded, Address::ipv4({192, 0, 2, 1}, 1234));
  CHECK(h.take_output() == hex("00 5a 04 d2 c0 00 02 01"));
  CHECK(h.reply_name() == "succeeded");
}

TEST_CASE("socks4_failures_map_to_0x5b") {
  Handshake h(false);
  CHECK(h.feed(kFred) == Step::request);
  h.reply(Socks5Reply::host_unreachable, Address::ipv4({}, 0));
  CHECK(h.take_output() == hex("00 5b 00 00 00 00 00 00"));
  CHECK(h.reply_name() == "host_unreachable");  // the log keeps the reason
}

TEST_CASE("socks4a_domain_byte_by_byte_with_pipelined_data") {
  Handshake h(false);
  Bytes request = cat(
      {hex("04 01 00 50 00 00 00 01"), bytes("fred"), hex("00"), bytes("example.com"), hex("00")});
  Bytes out;
  CHECK(feed_bytewise(h, request, out) == Step::request);
  CHECK(h.protocol() == Protocol::socks4a);
  CHECK(h.destination().type == AddressType::domain);
  CHECK(h.destination().domain == "example.com");
  CHECK(h.destination().port == 80);
  CHECK(h.feed(bytes("hello")) == Step::request);
  CHECK(h.take_pipelined() == bytes("hello"));
}

TEST_CASE("socks4_bind_request") {
  Handshake h(false);
  CHECK(h.feed(hex("04 02 00 00 7f 00 00 01 00")) == Step::request);
  CHECK(h.command() == Command::bind);
}

TEST_CASE("socks4_refused_when_users_are_required") {
  Handshake h(true);
  CHECK(h.feed(kFred) == Step::failed);
  CHECK(h.has_request());  // parsed, then refused: the log can still name it
  CHECK(h.destination() == Address::ipv4({66, 102, 7, 99}, 80));
  CHECK(h.failure() == HandshakeFailure::auth_failed);
  CHECK(h.take_output() == hex("00 5b 00 00 00 00 00 00"));
}

TEST_CASE("socks4_unterminated_userid_is_cut_off") {
  Handshake h(false);
  Bytes request = hex("04 01 00 50 7f 00 00 01");
  request.insert(request.end(), 300, 'A');
  CHECK(h.feed(request) == Step::failed);
  CHECK(h.failure() == HandshakeFailure::protocol_error);
  CHECK(h.take_output() == hex("00 5b 00 00 00 00 00 00"));
}

TEST_CASE("not_socks_is_closed_without_answer") {
  for (const Bytes& input :
       {bytes("GET / HTTP/1.1\r\n"), hex("16 03 01 00 a5"), hex("00"), hex("06 01 00")}) {
    Handshake h(false);
    CHECK(h.feed(input) == Step::failed);
    CHECK(h.failure() == HandshakeFailure::protocol_error);
    CHECK(!h.has_output());
    CHECK(h.protocol() == Protocol::unknown);
  }
}

TEST_CASE("handshake_waits_on_empty_input") {
  Handshake h(false);
  CHECK(h.feed({}) == Step::need_more);
  CHECK(h.step() == Step::need_more);
  CHECK(to_string(h.protocol()) == "-");
}
