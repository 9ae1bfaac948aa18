#include "tunnel/client_handshake.h"

#include <doctest/doctest.h>

namespace {

using namespace tunsocks;
using tunnel::ClientHandshake;
using tunnel::HandshakeFailure;
using tunnel::HandshakeOptions;
using tunnel::SocksVersion;
using Bytes = socks::Bytes;

const socks::Address kDestination = socks::Address::ipv4({192, 0, 2, 7}, 443);

HandshakeOptions socks5(bool with_auth = false, bool pipeline = false) {
  HandshakeOptions options;
  options.version = SocksVersion::socks5;
  if (with_auth) options.credentials = tunnel::Credentials{"alice", "pw"};
  options.pipeline_request = pipeline;
  return options;
}

const Bytes kRequest = {0x05, 0x01, 0x00, 0x01, 192, 0, 2, 7, 0x01, 0xBB};
const Bytes kSuccess = {0x05, 0x00, 0x00, 0x01, 10, 0, 0, 1, 0x30, 0x39};

}  // namespace

TEST_CASE("socks5_no_auth_greeting_then_request_then_success") {
  ClientHandshake handshake(socks5(), socks::Command::connect, kDestination);
  CHECK(handshake.take_output() == Bytes{0x05, 0x01, 0x00});
  CHECK(handshake.take_output().empty());
  CHECK(handshake.feed(Bytes{0x05, 0x00}) == 2);
  CHECK(handshake.take_output() == kRequest);
  CHECK(handshake.feed(kSuccess) == kSuccess.size());
  CHECK(handshake.status() == ClientHandshake::Status::succeeded);
  CHECK(handshake.bound() == socks::Address::ipv4({10, 0, 0, 1}, 12345));
  CHECK(handshake.reply_text() == "succeeded");
}

TEST_CASE("socks5_reply_followed_by_payload_leaves_payload_unconsumed") {
  ClientHandshake handshake(socks5(), socks::Command::connect, kDestination);
  (void)handshake.take_output();
  Bytes input = {0x05, 0x00};
  input.insert(input.end(), kSuccess.begin(), kSuccess.end());
  input.insert(input.end(), {'S', 'S', 'H', '-'});
  // Method selection, then the reply arrive in one read, payload behind them.
  CHECK(handshake.feed(input) == input.size() - 4);
  CHECK(handshake.status() == ClientHandshake::Status::succeeded);
}

TEST_CASE("socks5_reply_split_one_byte_at_a_time") {
  ClientHandshake handshake(socks5(), socks::Command::connect, kDestination);
  (void)handshake.take_output();
  Bytes stream = {0x05, 0x00};
  stream.insert(stream.end(), kSuccess.begin(), kSuccess.end());
  Bytes pending;
  for (std::uint8_t byte : stream) {
    pending.push_back(byte);
    const std::size_t used = handshake.feed(pending);
    pending.erase(pending.begin(), pending.begin() + static_cast<long>(used));
  }
  CHECK(pending.empty());
  CHECK(handshake.status() == ClientHandshake::Status::succeeded);
}

// The flow, the UDP association and DNS over TCP hand each read to feed() once and reuse
// their buffer: a message cut by TCP must not lose its first bytes.
TEST_CASE("socks5_reply_in_pieces_each_fed_once") {
  ClientHandshake handshake(socks5(true), socks::Command::connect, kDestination);
  (void)handshake.take_output();
  Bytes reply = {0x05, 0x00, 0x00, 0x03, 13};
  for (char c : std::string("proxy.example"))
    reply.push_back(static_cast<std::uint8_t>(c));
  reply.insert(reply.end(), {0x9C, 0x40, 'P', 'A', 'Y'});
  CHECK(handshake.feed(Bytes{0x05}) == 1);
  CHECK(handshake.feed(Bytes{0x02, 0x01}) == 2);  // selection's end, the status's start
  CHECK(handshake.status() == ClientHandshake::Status::in_progress);
  CHECK(handshake.feed(Bytes{0x00}) == 1);
  CHECK(handshake.status() == ClientHandshake::Status::in_progress);
  for (std::size_t i = 0; i + 1 < reply.size() - 3; ++i) {
    CHECK(handshake.feed(Bytes{reply[i]}) == 1);
    CHECK(handshake.status() == ClientHandshake::Status::in_progress);
  }
  // The reply's last byte and the first payload bytes in one read.
  CHECK(handshake.feed(Bytes(reply.end() - 4, reply.end())) == 1);
  CHECK(handshake.status() == ClientHandshake::Status::succeeded);
  CHECK(handshake.bound() == socks::Address::name("proxy.example", 40000));
}

TEST_CASE("socks5_pipelined_request_goes_out_with_the_greeting") {
  ClientHandshake handshake(socks5(false, true), socks::Command::connect, kDestination);
  Bytes expected = {0x05, 0x01, 0x00};
  expected.insert(expected.end(), kRequest.begin(), kRequest.end());
  CHECK(handshake.take_output() == expected);
  CHECK(handshake.feed(Bytes{0x05, 0x00}) == 2);
  CHECK(handshake.take_output().empty());  // not sent twice
}

TEST_CASE("socks5_pipelined_credentials_and_request_go_out_with_the_greeting") {
  const Bytes auth = {0x01, 5, 'a', 'l', 'i', 'c', 'e', 2, 'p', 'w'};
  ClientHandshake ok(socks5(true, true), socks::Command::connect, kDestination);
  Bytes expected = {0x05, 0x01, 0x02};
  expected.insert(expected.end(), auth.begin(), auth.end());
  expected.insert(expected.end(), kRequest.begin(), kRequest.end());
  CHECK(ok.take_output() == expected);
  // All three answers in one read, then the first payload byte.
  Bytes answers = {0x05, 0x02, 0x01, 0x00};
  answers.insert(answers.end(), kSuccess.begin(), kSuccess.end());
  answers.push_back('x');
  CHECK(ok.feed(answers) == answers.size() - 1);
  CHECK(ok.status() == ClientHandshake::Status::succeeded);
  CHECK(ok.take_output().empty());  // nothing sent twice

  ClientHandshake rejected(socks5(true, true), socks::Command::connect, kDestination);
  (void)rejected.take_output();
  rejected.feed(Bytes{0x05, 0x02, 0x01, 0x01});
  CHECK(rejected.status() == ClientHandshake::Status::failed);
  CHECK(rejected.failure() == HandshakeFailure::auth_rejected);
  CHECK(rejected.take_output().empty());
}

TEST_CASE("socks5_user_pass_success_and_rejection") {
  ClientHandshake ok(socks5(true), socks::Command::connect, kDestination);
  CHECK(ok.take_output() == Bytes{0x05, 0x01, 0x02});
  ok.feed(Bytes{0x05, 0x02});
  CHECK(ok.take_output() == Bytes{0x01, 5, 'a', 'l', 'i', 'c', 'e', 2, 'p', 'w'});
  ok.feed(Bytes{0x01, 0x00});
  CHECK(ok.take_output() == kRequest);

  ClientHandshake rejected(socks5(true), socks::Command::connect, kDestination);
  (void)rejected.take_output();
  rejected.feed(Bytes{0x05, 0x02});
  (void)rejected.take_output();
  rejected.feed(Bytes{0x01, 0x01});
  CHECK(rejected.status() == ClientHandshake::Status::failed);
  CHECK(rejected.failure() == HandshakeFailure::auth_rejected);
  CHECK(rejected.take_output().empty());
}

TEST_CASE("socks5_no_acceptable_method_and_unoffered_method_fail") {
  ClientHandshake none(socks5(), socks::Command::connect, kDestination);
  (void)none.take_output();
  none.feed(Bytes{0x05, 0xFF});
  CHECK(none.failure() == HandshakeFailure::no_acceptable_method);

  ClientHandshake unoffered(socks5(), socks::Command::connect, kDestination);
  (void)unoffered.take_output();
  unoffered.feed(Bytes{0x05, 0x02});  // user/pass, which we did not offer
  CHECK(unoffered.status() == ClientHandshake::Status::failed);
  CHECK(unoffered.failure() == HandshakeFailure::no_acceptable_method);
}

TEST_CASE("socks5_every_refusal_code_is_reported") {
  for (std::uint8_t code = 0x01; code <= 0x08; ++code) {
    ClientHandshake handshake(socks5(), socks::Command::connect, kDestination);
    (void)handshake.take_output();
    handshake.feed(Bytes{0x05, 0x00});
    Bytes reply = kSuccess;
    reply[1] = code;
    CHECK(handshake.feed(reply) == reply.size());
    CHECK(handshake.status() == ClientHandshake::Status::failed);
    CHECK(handshake.failure() == HandshakeFailure::request_rejected);
    CHECK(handshake.reply_code() == code);
  }
}

TEST_CASE("hostile_upstream_bytes_fail_cleanly") {
  ClientHandshake wrong_version(socks5(), socks::Command::connect, kDestination);
  (void)wrong_version.take_output();
  wrong_version.feed(Bytes{0x04, 0x00});
  CHECK(wrong_version.failure() == HandshakeFailure::protocol_error);
  CHECK_FALSE(wrong_version.detail().empty());

  ClientHandshake empty_domain(socks5(), socks::Command::connect, kDestination);
  (void)empty_domain.take_output();
  empty_domain.feed(Bytes{0x05, 0x00});
  empty_domain.feed(Bytes{0x05, 0x00, 0x00, 0x03, 0x00, 0x00, 0x50});
  CHECK(empty_domain.failure() == HandshakeFailure::protocol_error);
}

TEST_CASE("socks4_and_socks4a_requests") {
  HandshakeOptions options;
  options.version = SocksVersion::socks4;
  options.credentials = tunnel::Credentials{"Fred", ""};
  ClientHandshake v4(options, socks::Command::connect, socks::Address::ipv4({66, 102, 7, 99}, 80));
  CHECK(v4.take_output() ==
        Bytes{0x04, 0x01, 0x00, 0x50, 0x42, 0x66, 0x07, 0x63, 0x46, 0x72, 0x65, 0x64, 0x00});
  CHECK(v4.feed(Bytes{0x00, 0x5A, 0x00, 0x50, 1, 2, 3, 4}) == 8);
  CHECK(v4.status() == ClientHandshake::Status::succeeded);
  CHECK(v4.reply_text() == "granted");

  options.credentials.reset();
  ClientHandshake v4a(options, socks::Command::connect, socks::Address::name("a.b", 80));
  CHECK(v4a.take_output() == Bytes{0x04, 0x01, 0x00, 0x50, 0, 0, 0, 1, 0x00, 'a', '.', 'b', 0x00});
  v4a.feed(Bytes{0x00, 0x5B, 0, 0, 0, 0, 0, 0});
  CHECK(v4a.failure() == HandshakeFailure::request_rejected);

  std::array<std::uint8_t, 16> v6{};
  ClientHandshake ipv6(options, socks::Command::connect, socks::Address::ipv6(v6, 80));
  CHECK(ipv6.status() == ClientHandshake::Status::failed);
  CHECK(ipv6.failure() == HandshakeFailure::unsupported);
}
