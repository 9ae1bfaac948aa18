// SOCKS5 (RFC 1928): the method negotiation (section 3) and the request and its replies
// (sections 4 and 6). The address block is in address.cpp.
#include <algorithm>

#include "socks/codec.h"
#include "socks/wire.h"

namespace tunsocks::socks {

namespace {

using wire::fail;
using wire::refuse;

constexpr std::size_t kMaxMethods = 255;
constexpr std::size_t kSelectionSize = 2;  // VER METHOD
constexpr std::size_t kHeaderSize = 3;     // VER CMD|REP RSV, before the address block
// The shortest address block: ATYP, LEN, a one-byte name, PORT.
constexpr std::size_t kShortestMessage = kHeaderSize + 1 + 1 + 1 + 2;

bool is_command(std::uint8_t value) {
  return value >= static_cast<std::uint8_t>(Command::connect) &&
         value <= static_cast<std::uint8_t>(Command::udp_associate);
}

bool is_reply_code(std::uint8_t value) {
  return value <= static_cast<std::uint8_t>(Socks5Reply::address_type_not_supported);
}

}  // namespace

bool Socks5Greeting::offers(std::uint8_t m) const {
  return std::find(methods.begin(), methods.end(), m) != methods.end();
}

ParseResult<Socks5Greeting> parse_socks5_greeting(ByteView in) {
  if (in.size() > 0 && in[0] != wire::kSocks5Version) return fail(Errc::bad_version, 0, 0, "VER");
  if (in.size() < 2) return wire::need_more<Socks5Greeting>(2, in.size());
  // NMETHODS 0 parses (to an empty list, which the server answers with 0xFF).
  const std::size_t end = 2 + std::size_t{in[1]};
  if (in.size() < end) return wire::need_more<Socks5Greeting>(end, in.size());
  Socks5Greeting greeting;
  greeting.methods.assign(in.begin() + 2, in.begin() + static_cast<std::ptrdiff_t>(end));
  return wire::complete(std::move(greeting), end);
}

void write_socks5_method_selection(const Socks5MethodSelection& selection, Bytes& out) {
  out.push_back(wire::kSocks5Version);
  out.push_back(selection.method);
}

std::expected<void, Error> write_socks5_greeting(const Socks5Greeting& greeting, Bytes& out) {
  // RFC 1928 gives METHODS 1 to 255 octets.
  if (greeting.methods.empty()) return refuse(Errc::empty_field, "METHODS");
  if (greeting.methods.size() > kMaxMethods) return refuse(Errc::field_too_long, "METHODS");
  out.push_back(wire::kSocks5Version);
  out.push_back(static_cast<std::uint8_t>(greeting.methods.size()));
  out.insert(out.end(), greeting.methods.begin(), greeting.methods.end());
  return {};
}

ParseResult<Socks5MethodSelection> parse_socks5_method_selection(ByteView in) {
  if (in.size() > 0 && in[0] != wire::kSocks5Version) return fail(Errc::bad_version, 0, 0, "VER");
  if (in.size() < kSelectionSize) {
    return wire::need_more<Socks5MethodSelection>(kSelectionSize, in.size());
  }
  return wire::complete(Socks5MethodSelection{in[1]}, kSelectionSize);
}

std::expected<void, Error> check_method_selection(const Socks5Greeting& offered,
                                                  const Socks5MethodSelection& selection) {
  if (selection.method == method::no_acceptable || offered.offers(selection.method)) return {};
  return refuse(Errc::bad_method, "METHOD");
}

ParseResult<Socks5Request> parse_socks5_request(ByteView in) {
  if (in.size() > 0 && in[0] != wire::kSocks5Version) {
    return fail(Errc::bad_version, 0, wire::kGeneralFailure, "VER");
  }
  if (in.size() > 1 && !is_command(in[1])) {
    return fail(Errc::bad_command, 1, wire::kCommandNotSupported, "CMD");
  }
  if (in.size() > 2 && in[2] != 0) return fail(Errc::bad_reserved, 2, wire::kGeneralFailure, "RSV");
  if (in.size() < kHeaderSize) return wire::need_more<Socks5Request>(kShortestMessage, in.size());

  auto tail = wire::read_address(in, kHeaderSize, wire::kRequestAddress);
  if (!tail) return std::unexpected(tail.error());
  if (!tail->address) return wire::need_more<Socks5Request>(tail->end, in.size());
  return wire::complete(Socks5Request{static_cast<Command>(in[1]), std::move(*tail->address)},
                        tail->end);
}

ParseResult<Socks5Response> parse_socks5_response(ByteView in) {
  // A reply comes from an upstream we do not trust more than a client: same checks.
  if (in.size() > 0 && in[0] != wire::kSocks5Version) return fail(Errc::bad_version, 0, 0, "VER");
  if (in.size() > 1 && !is_reply_code(in[1])) return fail(Errc::bad_reply_code, 1, 0, "REP");
  if (in.size() > 2 && in[2] != 0) return fail(Errc::bad_reserved, 2, 0, "RSV");
  if (in.size() < kHeaderSize) return wire::need_more<Socks5Response>(kShortestMessage, in.size());

  auto tail = wire::read_address(in, kHeaderSize, wire::kReplyAddress);
  if (!tail) return std::unexpected(tail.error());
  if (!tail->address) return wire::need_more<Socks5Response>(tail->end, in.size());
  return wire::complete(Socks5Response{static_cast<Socks5Reply>(in[1]), std::move(*tail->address)},
                        tail->end);
}

std::expected<void, Error> write_socks5_request(const Socks5Request& request, Bytes& out) {
  if (!is_command(static_cast<std::uint8_t>(request.command))) {
    return refuse(Errc::bad_command, "CMD");
  }
  if (auto ok = wire::check_encodable(request.destination, "DST.ADDR"); !ok) return ok;
  out.push_back(wire::kSocks5Version);
  out.push_back(static_cast<std::uint8_t>(request.command));
  out.push_back(0);
  wire::append_address(request.destination, out);
  return {};
}

std::expected<void, Error> write_socks5_response(const Socks5Response& response, Bytes& out) {
  if (!is_reply_code(static_cast<std::uint8_t>(response.code))) {
    return refuse(Errc::bad_reply_code, "REP");
  }
  if (auto ok = wire::check_encodable(response.bound, "BND.ADDR"); !ok) return ok;
  out.push_back(wire::kSocks5Version);
  out.push_back(static_cast<std::uint8_t>(response.code));
  out.push_back(0);
  wire::append_address(response.bound, out);
  return {};
}

}  // namespace tunsocks::socks
