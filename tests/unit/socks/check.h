// Test support for the SOCKS codec: byte builders, printers for doctest, and the generic
// checks every message type goes through (every split point, one byte at a time, reads
// driven by `missing`, pipelined bytes, exact writer output, round trips, refusals).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>

#include <doctest/doctest.h>

#include "socks/codec.h"

namespace tunsocks::socks {

// Printers, so that a failed CHECK shows the values (found by doctest through ADL).
std::ostream& operator<<(std::ostream& os, const Errc& code);
std::ostream& operator<<(std::ostream& os, const Error& error);
std::ostream& operator<<(std::ostream& os, const Address& address);
std::ostream& operator<<(std::ostream& os, const Socks4Request& m);
std::ostream& operator<<(std::ostream& os, const Socks4Response& m);
std::ostream& operator<<(std::ostream& os, const Socks5Greeting& m);
std::ostream& operator<<(std::ostream& os, const Socks5MethodSelection& m);
std::ostream& operator<<(std::ostream& os, const UserPassRequest& m);
std::ostream& operator<<(std::ostream& os, const UserPassStatus& m);
std::ostream& operator<<(std::ostream& os, const Socks5Request& m);
std::ostream& operator<<(std::ostream& os, const Socks5Response& m);
std::ostream& operator<<(std::ostream& os, const UdpHeader& m);

}  // namespace tunsocks::socks

namespace tunsocks::socks::test {

// "04 01 00 50": whitespace-separated hex bytes.
Bytes hex(std::string_view text);
Bytes text(std::string_view text);
Bytes repeat(std::uint8_t byte, std::size_t count);
Bytes cat(std::initializer_list<Bytes> parts);
std::string name_of_length(std::size_t length);  // "aaaa...", a valid domain label

// One parser/writer pair per message type, so the checks below can be written once.
template <class Message>
struct Codec;

// Adapts a parser and a writer (either form: refusing, or void for messages that cannot be
// invalid) to one interface.
template <class Message, auto parse_fn, auto write_fn>
struct CodecOf {
  static ParseResult<Message> parse(ByteView in) { return parse_fn(in); }
  static std::expected<void, Error> write(const Message& message, Bytes& out) {
    if constexpr (std::is_void_v<
                      std::invoke_result_t<decltype(write_fn), const Message&, Bytes&>>) {
      write_fn(message, out);
      return {};
    } else {
      return write_fn(message, out);
    }
  }
};

template <>
struct Codec<Socks4Request> : CodecOf<Socks4Request, &parse_socks4_request, &write_socks4_request> {
};
template <>
struct Codec<Socks4Response>
    : CodecOf<Socks4Response, &parse_socks4_response, &write_socks4_response> {};
template <>
struct Codec<Socks5Greeting>
    : CodecOf<Socks5Greeting, &parse_socks5_greeting, &write_socks5_greeting> {};
template <>
struct Codec<Socks5MethodSelection> : CodecOf<Socks5MethodSelection, &parse_socks5_method_selection,
                                              &write_socks5_method_selection> {};
template <>
struct Codec<UserPassRequest>
    : CodecOf<UserPassRequest, &parse_user_pass_request, &write_user_pass_request> {};
template <>
struct Codec<UserPassStatus>
    : CodecOf<UserPassStatus, &parse_user_pass_status, &write_user_pass_status> {};
template <>
struct Codec<Socks5Request> : CodecOf<Socks5Request, &parse_socks5_request, &write_socks5_request> {
};
template <>
struct Codec<Socks5Response>
    : CodecOf<Socks5Response, &parse_socks5_response, &write_socks5_response> {};

// Bytes that follow a message in the same buffer (the next message, or relayed data).
inline const Bytes kPipelined = {0x05, 0x01, 0x00, 0xFF, 0x00, 0x04};

// Parses the first `n` bytes of `wire` so that reading past them is noticed: once from a
// heap block of exactly `n` bytes (AddressSanitizer reports any read beyond it), once from a
// buffer where the bytes after the prefix are the complement of the real ones (a parser that
// peeks ahead sees wrong values). Both must agree.
template <class Message>
ParseResult<Message> parse_prefix(const Bytes& wire, std::size_t n) {
  const Bytes exact(wire.begin(), wire.begin() + static_cast<std::ptrdiff_t>(n));
  Bytes poisoned = wire;
  for (std::size_t i = n; i < poisoned.size(); ++i)
    poisoned[i] = static_cast<std::uint8_t>(~wire[i]);
  auto result = Codec<Message>::parse(exact);
  const auto again = Codec<Message>::parse(ByteView(poisoned).first(n));
  REQUIRE(result.has_value() == again.has_value());
  if (result.has_value()) {
    REQUIRE(result->message == again->message);
    REQUIRE(result->consumed == again->consumed);
    REQUIRE(result->missing == again->missing);
  } else {
    REQUIRE(result.error() == again.error());
  }
  return result;
}

// `wire` holds exactly one message, `expected`, however it arrives.
template <class Message>
void check_decodes(const Bytes& wire, const Message& expected) {
  using C = Codec<Message>;
  const ByteView all(wire);

  INFO("whole message");
  const auto whole = C::parse(all);
  REQUIRE(whole.has_value());
  REQUIRE(whole->complete());
  CHECK(*whole->message == expected);
  CHECK(whole->consumed == wire.size());
  CHECK(whole->missing == 0);

  // Every split point: whatever arrived first is "incomplete", consumes nothing, and asks for
  // at least one byte but never more than the message still holds (a caller that reads
  // exactly `missing` bytes must not swallow what comes after the message).
  for (std::size_t n = 0; n < wire.size(); ++n) {
    CAPTURE(n);
    const auto part = parse_prefix<Message>(wire, n);
    REQUIRE(part.has_value());
    REQUIRE_FALSE(part->complete());
    REQUIRE(part->consumed == 0);
    REQUIRE(part->missing >= 1);
    REQUIRE(part->missing <= wire.size() - n);
  }

  INFO("one byte at a time into a growing buffer");
  Bytes slow;
  for (std::size_t n = 0; n < wire.size(); ++n) {
    slow.push_back(wire[n]);
    slow.shrink_to_fit();  // no spare capacity behind the bytes that arrived
    const auto step = C::parse(slow);
    CAPTURE(n);
    REQUIRE(step.has_value());
    REQUIRE(step->complete() == (n + 1 == wire.size()));
  }
  const auto last = C::parse(slow);
  REQUIRE(last.has_value());
  CHECK(*last->message == expected);
  CHECK(last->consumed == wire.size());

  INFO("reads of exactly `missing` bytes from a stream that goes on after the message");
  const Bytes stream = cat({wire, kPipelined});
  std::size_t have = 0;
  for (;;) {
    const auto step = C::parse(ByteView(stream).first(have));
    REQUIRE(step.has_value());
    if (step->complete()) {
      CHECK(*step->message == expected);
      CHECK(step->consumed == wire.size());
      break;
    }
    have += step->missing;
    REQUIRE(have <= wire.size());
  }
  CHECK(have == wire.size());

  INFO("pipelined bytes after the message are left alone");
  const auto piped = C::parse(stream);
  REQUIRE(piped.has_value());
  REQUIRE(piped->complete());
  CHECK(*piped->message == expected);
  CHECK(piped->consumed == wire.size());
}

// The writer turns `message` into exactly `wire`, appended after what `out` held.
template <class Message>
void check_encodes(const Message& message, const Bytes& wire) {
  Bytes out = {0xEE};
  const auto written = Codec<Message>::write(message, out);
  REQUIRE(written.has_value());
  CHECK(out == cat({Bytes{0xEE}, wire}));
}

// A test vector in both directions.
template <class Message>
void check_vector(const Bytes& wire, const Message& message) {
  check_decodes(wire, message);
  check_encodes(message, wire);
}

// Write, then parse the bytes written back into the same message, through every check above.
template <class Message>
void check_round_trip(const Message& message) {
  Bytes out;
  const auto written = Codec<Message>::write(message, out);
  REQUIRE(written.has_value());
  check_decodes(out, message);
}

// `wire` is refused with `expected`, as soon as the offending byte has arrived: shorter
// prefixes are merely incomplete, longer ones fail the same way.
template <class Message>
void check_rejects(const Bytes& wire, const Error& expected) {
  const auto whole = parse_prefix<Message>(wire, wire.size());
  REQUIRE_FALSE(whole.has_value());
  CHECK(whole.error() == expected);
  REQUIRE(expected.offset < wire.size());
  for (std::size_t n = 0; n < wire.size(); ++n) {
    CAPTURE(n);
    const auto part = parse_prefix<Message>(wire, n);
    if (n <= expected.offset) {
      REQUIRE(part.has_value());
      REQUIRE_FALSE(part->complete());
      REQUIRE(part->missing >= 1);
    } else {
      REQUIRE_FALSE(part.has_value());
      REQUIRE(part.error() == expected);
    }
  }
}

// The writer refuses `message` and leaves the output as it was.
template <class Message>
void check_refuses(const Message& message, Errc code, std::string_view field) {
  Bytes out = {0xEE};
  const auto written = Codec<Message>::write(message, out);
  REQUIRE_FALSE(written.has_value());
  CHECK(written.error().code == code);
  CHECK(written.error().field == field);
  CHECK(written.error().reply == 0);
  CHECK(out == Bytes{0xEE});
}

// While incomplete, the parser asks for exactly `missing` more bytes.
template <class Message>
void check_missing(const Bytes& prefix, std::size_t missing) {
  const auto part = Codec<Message>::parse(prefix);
  REQUIRE(part.has_value());
  REQUIRE_FALSE(part->complete());
  CHECK(part->consumed == 0);
  CHECK(part->missing == missing);
}

}  // namespace tunsocks::socks::test
